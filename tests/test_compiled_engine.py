"""The compiled engine: the same SPARQL rules compiled to array operations. It must infer the
very same triples as the SPARQL engines, and refuse any rule form it cannot compile exactly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rdflib.plugins.sparql import prepareQuery

from b12kg.testing import synth
from b12kg.api import assess, load_record
from b12kg.engines import compiled
from b12kg.engines import oxigraph as oe
from b12kg.errors import RuleError
from b12kg.rdf.patient import DEFAULT_BASE, record_to_ntriples
from b12kg.inputs.case import record_from_case
from b12kg.rules import load_rules

SHARED = Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases"


def _oxigraph(records) -> set[str]:
    nt = "".join(record_to_ntriples(r, DEFAULT_BASE) for r in records)
    return set(oe.inferred_ntriples(oe.reason(nt, full=False)).splitlines())


def _compiled(records) -> set[str]:
    return set(compiled.run(records, base=DEFAULT_BASE, want_graph=True)[1].splitlines())


def test_every_rule_compiles():
    prog = compiled.program()
    assert {c.rule.id for c in prog} == {r.id for r in load_rules()}


def test_same_inferred_graph_as_oxigraph_on_the_shared_cases():
    records = [load_record(p) for p in sorted((SHARED / "valid").glob("*.yaml"))]
    got, want = _compiled(records), _oxigraph(records)
    assert got == want and len(got) > 3000


@pytest.mark.slow
def test_same_inferred_graph_as_oxigraph_on_generated_patients():
    records = [record_from_case(c) for c in synth.generate(2000, seed=20261124)]
    got, want = _compiled(records), _oxigraph(records)
    assert got == want
    assert len(want) > 100_000


def test_batch_equals_one_by_one():
    records = [record_from_case(c) for c in synth.generate(60, seed=3)]
    together = _compiled(records)
    alone = set().union(*(_compiled([r]) for r in records))
    assert together == alone


def test_assess_with_the_compiled_engine_matches_oxigraph():
    for p in sorted((SHARED / "valid").glob("p0*.yaml")):
        a, b = assess(p), assess(p, engine="compiled")
        assert a.to_json()["findings"] == b.to_json()["findings"]


def test_records_beyond_float_exactness_go_to_the_sparql_engine():
    rec = record_from_case({"id": "x", "patient": {"sex": "female", "age_years": 40},
                            "observations": {"ferritin": {"value": "29.9999999999999999", "unit": "ug/L"}}})
    assert not compiled.exact_for(rec)
    found = compiled.CompiledEngine().reason([rec], base=DEFAULT_BASE).findings
    assert "LowFerritin" in next(iter(found.values()))


def test_unsupported_forms_are_refused_not_approximated():
    for text in ("CONSTRUCT { $this <urn:p> ?x } WHERE { $this <urn:q> ?x OPTIONAL { ?x <urn:r> ?y } }",
                 "CONSTRUCT { $this <urn:p> ?x } WHERE { $this <urn:q> ?x FILTER (REGEX(STR(?x), \"a\")) }"):
        q = prepareQuery(text)
        with pytest.raises(RuleError):
            for conj in compiled.normalise(q.algebra["p"]):
                c = compiled.compile_conj(load_rules()[0], conj, list(q.algebra["template"]))
                batch = compiled.Batch([])
                for row in c.kb_rows:
                    compiled.patient_mask(batch, c, row)
