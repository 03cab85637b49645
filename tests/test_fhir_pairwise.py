"""Pairwise (issue 10): the same patient written as a case file and as a FHIR Bundle gives the same
findings. The Bundle is written from the case by b12kg.testing.convert (``context=True``): its
results as Observations, its pregnancy as LOINC 82810-3 and 11884-4, each context word and symptom
as a Condition or MedicationStatement with the code the ontology maps to it. A word no mapped code
says cannot be written in FHIR: it is taken out of the case for the comparison, and counted."""

from __future__ import annotations

import json

import pytest

from b12kg import assess, load_record
from b12kg.inputs.files import read_file
from b12kg.testing import convert
from b12kg.testing.synth import generate


def _words_case(case: dict) -> dict:
    """The case without its expectations and without the words no FHIR code says."""
    drop = set(convert.uncarried_words(case))
    out = {k: v for k, v in case.items() if k not in ("expect", "claims")}
    vocab_aliases = {**_vocab().context_aliases, **_vocab().symptom_aliases}
    for key in ("context", "symptoms"):
        if key in out:
            out[key] = [w for w in out[key] if vocab_aliases.get(w, w) not in drop]
    return out


def _vocab():
    from b12kg.kb import vocabulary

    return vocabulary()


def _compare(case: dict) -> tuple[tuple, tuple, object, object]:
    words = _words_case(case)
    pid = str(case.get("id") or "p")
    bundle = json.loads(convert.dumps(convert.case_bundle(case, pid, context=True)))
    rec_words, rec_fhir = load_record(words), load_record(bundle, profile=words.get("profile"))
    a_words, a_fhir = assess(rec_words), assess(rec_fhir)
    return tuple(sorted(a_words.codes)), tuple(sorted(a_fhir.codes)), rec_words, rec_fhir


def _same_facts(rec_words, rec_fhir) -> None:
    assert (sorted(rec_fhir.contexts), sorted(rec_fhir.symptoms)) == (sorted(rec_words.contexts), sorted(rec_words.symptoms))
    assert rec_fhir.pregnant == rec_words.pregnant
    assert rec_fhir.gestational_weeks == rec_words.gestational_weeks
    assert rec_fhir.unmapped_codes == [] and rec_fhir.unusable_results == {}


def _shared_cases() -> list:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases" / "valid"
    return sorted(root.rglob("*.yaml"))


SHARED = [p for p in _shared_cases() if "input" not in read_file(p)]   # a case naming an input file is itself a file


def test_the_shared_cases_compared_are_nearly_all():
    assert len(SHARED) >= len(_shared_cases()) - 5 and len(SHARED) >= 40


@pytest.mark.parametrize("path", SHARED, ids=[p.stem for p in SHARED])
def test_a_shared_case_as_a_fhir_bundle_gives_the_same_findings(path):
    case = dict(read_file(path))
    words, fhir, rec_words, rec_fhir = _compare(case)
    _same_facts(rec_words, rec_fhir)
    assert fhir == words


@pytest.mark.slow
def test_generated_patients_with_context_words_give_the_same_findings_as_bundles():
    cases = list(generate(80, seed=1010))
    with_words = [c for c in cases if c.get("context") or c.get("symptoms")]
    carried = 0
    for case in cases:
        words, fhir, rec_words, rec_fhir = _compare(case)
        _same_facts(rec_words, rec_fhir)
        assert fhir == words, case.get("id")
        carried += len(rec_fhir.contexts) + len(rec_fhir.symptoms)
    assert len(with_words) >= 20 and carried >= 20       # the words were compared, not only the labs
    assert any(c.get("patient", {}).get("pregnant") for c in cases)
