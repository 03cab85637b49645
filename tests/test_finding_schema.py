"""One JSON shape for a finding: `assess --format json` and the cohort's findings.ndjson both
validate against schema/finding.schema.json, and for the same patient the cohort's finding holds
the same values under the same names as the API's (fields left out, none renamed)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
import pytest

import b12kg
from b12kg.cohort import assess_cohort
from b12kg.testing import synth

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "schema" / "finding.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CASES = sorted((REPO / "vendor" / "shared" / "cases" / "valid").glob("*.yaml"))


def _errors(finding: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(finding)]


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_schema_refuses_a_renamed_field():
    ok = {"code": "LowFerritin", "kind": "interpretation", "rule_ids": ["cls-low-ferritin"], "evidence": [],
          "thresholds": [], "based_on": []}
    assert not _errors(ok)
    renamed = dict(ok)
    renamed["rules"] = renamed.pop("rule_ids")       # the cohort's old name
    assert _errors(renamed)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_assess_json_findings_follow_the_schema(case):
    doc = json.loads(json.dumps(b12kg.assess(case).to_json()))
    for f in doc["findings"] + doc["unassessed"]:
        assert not _errors(f), (f["code"], _errors(f))
    assert all(f["status"] == "derived" for f in doc["findings"])
    assert all(f["status"] == "unassessed" for f in doc["unassessed"])


S1_CASES = sorted((Path(__file__).resolve().parent / "cases" / "s1").glob("*.yaml"))


@pytest.mark.parametrize("case", S1_CASES, ids=[c.stem for c in S1_CASES])
def test_unassessed_findings_follow_the_schema(case):
    """The cases of tests/cases/s1 have unassessed findings: their JSON follows the one shape."""
    record = {k: v for k, v in yaml.safe_load(case.read_text(encoding="utf-8")).items() if k not in ("expect", "claims")}
    doc = json.loads(json.dumps(b12kg.assess(record).to_json()))
    for f in doc["findings"] + doc["unassessed"]:
        assert not _errors(f), (f["code"], _errors(f))


def test_cohort_findings_follow_the_schema_and_match_the_api(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    cases = list(synth.generate(60, seed=11))
    for c in cases:
        (folder / f"{c['id']}.json").write_text(json.dumps(c), encoding="utf-8")
    out = tmp_path / "out"
    assess_cohort(folder, out, workers=1, progress=False)
    lines = [json.loads(x) for x in (out / "findings.ndjson").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(cases)
    seen = 0
    for line in lines:
        api = {f["code"]: f for f in json.loads(json.dumps(b12kg.assess(folder / f"{line['patient']}.json")
                                                          .to_json()))["findings"]}
        assert sorted(api) == sorted(f["code"] for f in line["findings"])
        for f in line["findings"]:
            assert not _errors(f), (f["code"], _errors(f))
            a = api[f["code"]]
            for key, value in f.items():
                if key == "evidence":
                    by = {e["analyte"]: e for e in a["evidence"]}
                    for e in value:
                        assert {k: v for k, v in e.items()} == {k: by[e["analyte"]][k] for k in e}, f["code"]
                elif key == "thresholds":
                    by = {t["id"]: t for t in a["thresholds"]}
                    for t in value:
                        assert t == {k: by[t["id"]][k] for k in t}, f["code"]
                else:
                    assert value == a[key], (f["code"], key)
            seen += 1
    assert seen > 100
