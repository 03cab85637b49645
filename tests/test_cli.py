"""The command line: subcommands, formats and exit codes (0 ok, 1 failed cases or invalid input,
2 usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyoxigraph as ox
import pytest

from b12kg.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "vendor" / "shared" / "cases"
P03 = SHARED / "valid" / "p03-pernicious-anemia-high-ferritin.yaml"
BUNDLE = SHARED / "fhir" / "p21-dual-deficiency.bundle.json"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_assess_fhir_bundle_as_json_reports_findings_with_evidence_thresholds_sources_and_rules(capsys):
    code, out, _ = run(capsys, "assess", BUNDLE, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    by_code = {f["code"]: f for f in doc["findings"]}
    for c in ("CombinedB12IronDeficiency", "LowB12", "LowFerritin", "IntramuscularB12Replacement"):
        assert c in by_code
    low_b12 = by_code["LowB12"]
    assert low_b12["evidence"][0]["value_as_given"] == "140" and low_b12["evidence"][0]["unit_as_given"] == "pg/mL"
    assert low_b12["thresholds"][0]["source"] == "NICE NG239 (2024)" and low_b12["thresholds"][0]["compared_limit"] == "< 180 ng/L"
    assert low_b12["rule_ids"] == ["cls-low-b12"] and low_b12["explanation"]
    for f in doc["findings"]:
        assert f["rule_ids"] and f["explanation"] and f["kind"] in ("interpretation", "diagnosis", "recommendation")
        assert f["evidence"] or f["based_on"] or f["context"], f["code"]


def test_assess_text_report_has_sections(capsys):
    code, out, _ = run(capsys, "assess", P03)
    assert code == 0
    for s in ("DIAGNOSES", "CAUTIONS", "NEXT STEPS", "ineffective erythropoiesis", "NICE NG239"):
        assert s in out


@pytest.mark.parametrize("fmt,marker", [("turtle", "b12:hasFinding"), ("jsonld", '"@context"')])
def test_assess_rdf_formats(capsys, fmt, marker):
    code, out, _ = run(capsys, "assess", P03, "--format", fmt)
    assert code == 0 and marker in out


def test_assess_with_pyshacl_engine_gives_the_same_findings(capsys):
    _, a, _ = run(capsys, "assess", P03, "--format", "json")
    _, b, _ = run(capsys, "assess", P03, "--format", "json", "--engine", "pyshacl")
    fa, fb = json.loads(a), json.loads(b)
    assert [f["code"] for f in fa["findings"]] == [f["code"] for f in fb["findings"]]
    assert fb["engine"] == "pyshacl"


def test_invalid_input_exits_1_and_names_the_problem(capsys):
    code, _, err = run(capsys, "assess", SHARED / "invalid" / "i01-ferritin-wrong-unit.yaml")
    assert code == 1 and "ferritin" in err and "g/dL" in err


def test_validate(capsys):
    code, out, _ = run(capsys, "validate", P03, SHARED / "invalid" / "i04-not-a-number.yaml")
    assert code == 1 and "valid (5 results)" in out and "INVALID" in out and "abc" in out


def test_explain_one_finding(capsys):
    code, out, _ = run(capsys, "explain", P03, "--finding", "IronDeficiencyMaskingRisk")
    assert code == 0 and "ineffective erythropoiesis" in out
    code, _, err = run(capsys, "explain", P03, "--finding", "IronDeficiency")
    assert code == 1 and "no finding IronDeficiency" in err


def test_query_runs_a_query_file_over_assessed_records(capsys):
    code, out, _ = run(capsys, "query", ROOT / "queries" / "explain" / "cohort-counts.rq", P03, BUNDLE)
    assert code == 0
    # the SPARQL 1.1 TSV results format, read back by pyoxigraph's parser
    res = ox.parse_query_results(out.encode(), format=ox.QueryResultsFormat.TSV)
    rows = {s["code"].value: int(s["patients"].value) for s in res}
    assert rows["VitaminB12Deficiency"] == 2 and rows["IronDeficiencyMaskingRisk"] == 1


def test_query_refuses_a_second_patient_of_the_same_id_not_merging_them(capsys, tmp_path):
    """Two records of one id were merged into one patient node of the query's store (issue 11)."""
    twin = tmp_path / "twin.yaml"
    twin.write_text(P03.read_text(encoding="utf-8"), encoding="utf-8")
    code, out, err = run(capsys, "query", ROOT / "queries" / "explain" / "cohort-counts.rq", P03, twin)
    assert code == 1 and f"{twin}: refused: patient id" in err and "would merge into one patient" in err
    # the SPARQL 1.1 TSV results format: literals in RDF syntax ("VitaminB12Deficiency", 1)
    rows = {k.strip('"'): v.split("^^")[0].strip('"') for k, v in (line.split("\t")[:2] for line in out.strip().splitlines()[1:])}
    assert rows["VitaminB12Deficiency"] == "1"        # the first one only


def test_cases_counts_and_exit_code(capsys, tmp_path):
    code, out, _ = run(capsys, "cases", SHARED / "invalid")
    n = len(list((SHARED / "invalid").glob("*.yaml")))
    assert code == 0 and out.strip().endswith(f"{n} passed, 0 failed")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("id: w\npatient: {sex: male, age_years: 50}\nobservations:\n  ferritin: {value: 500, unit: ug/L}\n"
                     "expect:\n  findings: [IronDeficiency]\n")
    code, out, _ = run(capsys, "cases", tmp_path)
    assert code == 1 and "FAIL w: missing IronDeficiency" in out and out.strip().endswith("0 passed, 1 failed")


def test_usage_error_exits_2():
    r = subprocess.run([sys.executable, "-m", "b12kg.cli", "assess"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "b12kg.cli", "assess", str(P03), "--engine", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_query_with_a_service_clause_is_refused_before_anything_runs(capsys, tmp_path, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    q = tmp_path / "service.rq"
    q.write_text("PREFIX b12: <https://w3id.org/b12kg/>\nSELECT * WHERE { { ?p b12:hasFinding ?f } UNION "
                 "{ SERVICE SILENT <http://example.org/sparql> { ?s ?p2 ?o } } }\n")
    code, _, err = run(capsys, "query", q, P03)
    assert code == 1 and "SERVICE" in err
