"""A patient record as RDF in the project's patient vocabulary (ontology/modules/core.ttl).

IRIs are minted safely: the patient id is percent-encoded whole (no character of it survives
unescaped except unreserved ones), so no id can break an IRI or a query. Literals are escaped per
the N-Triples grammar. The loader makes the closed-world defaults explicit (sex not recorded,
not pregnant when not stated, comparator '=' for exact values), so the rules read facts, not gaps."""

from __future__ import annotations

import re

from .. import units
from ..inputs.record import PatientRecord, Result
from ..kb import vocabulary
from .terms import (B12NS, DEFAULT_BASE, RDF_TYPE as RDF_TYPE_IRI, XSD_NS as XSD, patient_iri, postpartum_status_iri,
                    result_iri as _result_iri)

RDF_TYPE = f"<{RDF_TYPE_IRI}>"

_TRIMESTER = {None: "NoTrimester", "first": "FirstTrimester", "second": "SecondTrimester",
              "third": "ThirdTrimester", "unknown": "TrimesterUnknown"}


def _iri(s: str) -> str:
    return f"<{s}>"


def _b(local: str) -> str:
    return f"<{B12NS}{local}>"


_ESC = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\\ud800-\udfff]')


def lit(text: str) -> str:
    """An N-Triples string literal, every character that needs it escaped."""
    if not _NEEDS_ESCAPE.search(text):
        return '"' + text + '"'
    out = []
    for ch in text:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04X}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def dec(value) -> str:
    return f'"{units.to_decimal_string(value)}"^^<{XSD}decimal>'


def result_iri(p: str, r: Result, n: int | None = None) -> str:
    return _result_iri(p, r.key, n)


def patient_links(rec: PatientRecord) -> list[tuple[str, str]]:
    """The patient's links to individuals of the ontology, as (property IRI, object IRI): profile,
    sex, pregnancy status, trimester, whether the age is recorded, postpartum status (findings.md v2),
    symptoms and context. The
    closed-world defaults are explicit."""
    vocab = vocabulary()
    links = [(B12NS + "profile", vocab.profiles[rec.profile]),
             (B12NS + "sex", B12NS + {"female": "Female", "male": "Male", None: "SexNotRecorded"}[rec.sex]),
             (B12NS + "pregnancyStatus", B12NS + ("Pregnant" if rec.pregnant else "NotPregnant")),
             (B12NS + "trimester", B12NS + _TRIMESTER[rec.trimester]),
             (B12NS + "ageStatus", B12NS + ("AgeNotRecorded" if rec.age_years is None else "AgeRecorded")),
             (B12NS + "postpartumStatus", postpartum_status_iri(rec.contexts))]
    links += [(B12NS + "hasSymptom", vocab.symptoms[w]) for w in rec.symptoms]
    links += [(B12NS + "hasContext", vocab.contexts[w]) for w in rec.contexts]
    return links


def record_to_ntriples(rec: PatientRecord, base: str = DEFAULT_BASE) -> str:
    """The patient graph as N-Triples text."""
    p = patient_iri(rec.id, base)
    P = _iri(p)
    t: list[str] = [
        f"{P} {RDF_TYPE} {_b('Patient')} .",
        f"{P} {_b('patientId')} {lit(rec.id)} .",
    ]
    t += [f"{P} <{pred}> <{obj}> ." for pred, obj in patient_links(rec)]
    if rec.pregnant is None:
        t.append(f'{P} {_b("pregnancyStatusAssumed")} "true"^^<{XSD}boolean> .')
    if rec.age_years is not None:
        t.append(f"{P} {_b('ageYears')} {dec(rec.age_years)} .")
    if rec.gestational_weeks is not None:
        t.append(f"{P} {_b('gestationalWeeks')} {dec(rec.gestational_weeks)} .")
    for w in rec.unrecognised_contexts:
        t.append(f"{P} {_b('unrecognisedContext')} {lit(w)} .")
    iris: dict[str, str] = {}
    for key, r in sorted(rec.results.items()):
        iris[key] = result_iri(p, r)
    for key, r in sorted(rec.results.items()):
        ri = iris[key]
        t.append(f"{P} {_b('hasResult')} {_iri(ri)} .")
        t.extend(_result_triples(ri, r, iris))
    for n, r in enumerate(rec.superseded):
        ri = result_iri(p, r, n)
        t.append(f"{P} {_b('hasSupersededResult')} {_iri(ri)} .")
        t.extend(_result_triples(ri, r, iris))
    vocab = vocabulary()
    for key, why in sorted(rec.unusable_results.items()):
        ui = _result_iri(p, key, None) + "/unusable"
        t.append(f"{P} {_b('hasUnusableResult')} {_iri(ui)} .")
        if key not in rec.results:
            # reported but unusable, and no usable result of the test: the test was measured, and
            # every comparison on it is undecided (rules/derive.ttl drv-compare-unusable; findings.md v2, S1)
            t.append(f"{P} {_b('hasResult')} {_iri(ui)} .")
        t.append(f"{_iri(ui)} {RDF_TYPE} {_b('UnusableResult')} .")
        if key in vocab.tests_by_key:
            t.append(f"{_iri(ui)} {_b('test')} {_iri(vocab.tests_by_key[key].iri)} .")
        t.append(f"{_iri(ui)} {_b('unusableReason')} {lit(why)} .")
    for code in sorted(set(rec.unmapped_codes)):
        t.append(f"{P} {_b('hasUnmappedClinicalCode')} {lit(code)} .")
    return "\n".join(t) + "\n"


def _result_triples(ri: str, r: Result, iris: dict[str, str]) -> list[str]:
    R = _iri(ri)
    t = [f"{R} {RDF_TYPE} {_b('LabResult')} .",
         f"{R} {_b('test')} {_iri(r.test_iri)} .",
         f"{R} {_b('valueAsGiven')} {lit(r.value_as_given)} .",
         f"{R} {_b('sourceRecord')} {lit(r.source)} ."]
    if r.qualitative:
        t.append(f"{R} {_b('qualitativeValue')} {_iri(r.qualitative)} .")
    else:
        t.append(f"{R} {_b('comparator')} {lit(r.comparator)} .")
        t.append(f"{R} {_b('comparedValue')} {dec(r.compared_value)} .")
        t.append(f"{R} {_b('comparedUnit')} {lit(r.compared_unit or '')} .")
        if r.unit_as_given is not None:
            t.append(f"{R} {_b('unitAsGiven')} {lit(r.unit_as_given)} .")
    if r.ref_high_compared is not None:
        t.append(f"{R} {_b('referenceHighCompared')} {dec(r.ref_high_compared)} .")
        t.append(f"{R} {_b('referenceHighAsGiven')} {lit(r.ref_high_as_given or '')} .")
    if r.ref_low_compared is not None:
        t.append(f"{R} {_b('referenceLowCompared')} {dec(r.ref_low_compared)} .")
        t.append(f"{R} {_b('referenceLowAsGiven')} {lit(r.ref_low_as_given or '')} .")
    if r.time is not None:
        t.append(f'{R} {_b("effectiveTime")} "{r.time.isoformat()}"^^<{XSD}dateTime> .')
    if r.loinc:
        t.append(f"{R} {_b('loincCode')} {lit(r.loinc)} .")
    for k in r.derived_from:
        if k in iris:
            t.append(f"{R} {_b('derivedFromResult')} {_iri(iris[k])} .")
    if r.derivation:
        t.append(f"{R} {_b('derivationMethod')} {lit(r.derivation)} .")
    return t
