"""Three values and two negations (findings.md v2, S1-S3): the generated companions of the rules
(rules/unassessed.ttl) are what b12kg.rules.threevalued writes from the hand-written rules, every
finding rule has one, the generator refuses what it cannot read, and every engine gives the same
derived AND unassessed findings. The clinical behaviour itself is tested as data: the cases of
tests/cases/s1 (run by tests/test_rules_cases.py with `expect.unassessed`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from b12kg import engines
from b12kg.errors import RuleError
from b12kg.inputs import load_record
from b12kg.rules import threevalued as tv
from b12kg.rules.base import rules_graph
from b12kg.testing import synth

REPO = Path(__file__).resolve().parent.parent
S1_CASES = sorted((REPO / "tests" / "cases" / "s1").glob("*.yaml"))


def test_generated_companions_are_up_to_date():
    """rules/unassessed.ttl is exactly what the generator writes from the current rules and
    priorities (regenerate with `python -m b12kg.rules.threevalued`)."""
    assert tv.generated_path().read_text(encoding="utf-8") == tv.companions(tv.hand_written_rules())


def test_every_finding_rule_has_one_companion_of_the_kind_its_priority_asks():
    prio = tv.priorities()
    ids = {str(r.id) for r in tv.load_rules()}
    for rule in tv.hand_written_rules():
        if rule.finding is None:
            continue
        fires = prio.get(rule.finding) in tv.NEVER_UNASSESSED
        assert tv.companion_id(rule, fires=fires) in ids, rule.id
        assert tv.companion_id(rule, fires=not fires) not in ids, rule.id


def test_priorities_are_data_for_every_recommendation_with_a_known_rank():
    prio = tv.priorities()
    assert prio["MonitorPotassium"] == "UrgentPriority"
    assert prio["AvoidFolateMonotherapy"] == "CautionPriority"
    assert prio["MeasureCRP"] == "TestPriority"
    assert prio["OralIronReplacement"] == "TreatPriority"


def _rule(rule_id: str):
    return next(r for r in tv.hand_written_rules() if r.id == rule_id)


def test_the_generator_refuses_a_value_read_in_a_finding_rule():
    rule = _rule("cls-low-b12")
    bad = dataclasses.replace(rule, construct=rule.construct.replace(
        "?r b12:satisfies ?t .", "?r b12:comparedValue ?v . FILTER (?v < 133)"))
    with pytest.raises(RuleError, match="comparedValue"):
        tv.companion_body(bad, "LowB12", fires=False, strict=False)


def test_the_generator_refuses_a_comparison_it_cannot_read():
    rule = _rule("cls-low-b12")
    bad = dataclasses.replace(rule, construct=rule.construct.replace(
        "?r b12:test b12:SerumB12Test .\n                ?r b12:satisfies ?t .",
        "?r b12:test b12:SerumB12Test ; b12:satisfies ?t ."))
    with pytest.raises(RuleError, match="form the companion does not read"):
        tv.companion_body(bad, "LowB12", fires=False, strict=False)


def test_no_x_is_relaxed_and_decided_negations_are_kept():
    """'no X' loses its unassessed half in the companion; a rule marked b12:negationsDecided
    (OralB12Replacement: 'each of these decided false') keeps it."""
    oral = _rule("rec-oral-b12")
    assert tv.decided_negations(oral)
    strict = tv.companion_body(oral, "OralB12Replacement", fires=False, strict=True)
    relaxed = tv.companion_body(oral, "OralB12Replacement", fires=False, strict=False)
    assert "b12:unassessedFinding b12:SevereAnemia" in strict
    assert "b12:unassessedFinding b12:SevereAnemia" not in relaxed.split("UNION")[-1].split("BIND")[-1]


def _case_records():
    out = []
    for p in S1_CASES:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
        out.append(load_record({k: v for k, v in d.items() if k not in ("expect", "claims")}))
    return out


def _records():
    recs = _case_records() + [load_record(d) for d in synth.generate(300, seed=20261203, edge_cases=True)]
    return [dataclasses.replace(r, id=f"{i}-{r.id}") for i, r in enumerate(recs)]


def test_compiled_and_oxigraph_agree_on_derived_and_unassessed_findings():
    recs = _records()
    a = engines.get("oxigraph").reason(recs)
    b = engines.get("compiled").reason(recs)
    assert a.findings == b.findings
    assert {p: set(u) for p, u in a.unassessed.items()} == {p: set(u) for p, u in b.unassessed.items()}
    assert a.unassessed == {p: u for p, u in b.unassessed.items()}
    assert any(a.unassessed.values()), "no generated patient has an unassessed finding: the test proves nothing"


def test_pyshacl_agrees_on_the_s1_cases():
    recs = _case_records()
    a = engines.get("oxigraph").reason(recs)
    b = engines.get("pyshacl").reason(recs)
    assert a.findings == b.findings and a.unassessed == b.unassessed


def test_compiled_reads_an_unmapped_code_as_the_sparql_engines_do():
    """A FHIR Condition code b12kg cannot map blocks oral B12 (findings.md v2); the compiled engine
    reads ``$this b12:hasUnmappedClinicalCode ?c`` as a patient fact, as the SPARQL engines do."""
    import json

    bundle = json.loads((REPO / "examples" / "04-fhir-dual-deficiency.bundle.json").read_text(encoding="utf-8"))
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    ref = patient.get("fullUrl") or f"Patient/{patient['resource']['id']}"
    bundle["entry"].append({"resource": {
        "resourceType": "Condition", "id": "unmapped-1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1234567000"}]},
        "subject": {"reference": ref}}})
    rec = load_record(bundle)
    assert rec.unmapped_codes, "the test Condition was not listed as unmapped"
    plain = dataclasses.replace(rec, id="plain", unmapped_codes=[])
    for name in ("oxigraph", "compiled"):
        r = engines.get(name).reason([rec, plain])
        found = {iri.rsplit("/", 1)[-1]: set(f) for iri, f in r.findings.items()}
        assert "OralB12Replacement" not in found[rec.id], name
    a = engines.get("oxigraph").reason([rec, plain])
    b = engines.get("compiled").reason([rec, plain])
    assert a.findings == b.findings and a.unassessed == b.unassessed
