"""Bulk and research inputs of assess-cohort (issue 10, point 5): a FHIR bulk-data export folder, a
long lab table with a person table, and OMOP CDM tables give, patient for patient, the same
findings and notes as the same patients given as FHIR Bundles; the kind of input is detected; a
row with no patient is refused with why; a test the input names but b12kg does not read is listed
in its patient's notes. No test here asserts a time (bench/bulk_memory.py measures memory)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from b12kg.cohort.planner import input_kind
from b12kg.cohort.runner import assess_cohort
from b12kg.testing import convert
from b12kg.testing.synth import generate

N = 300
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(path: Path, out: Path, **kw) -> tuple[dict, list[dict], object]:
    s = assess_cohort(path, out, workers=1, progress=False, profile="default", **kw)
    assert s.reconciles()
    found = {}
    for line in (out / "findings.ndjson").read_text().splitlines():
        doc = json.loads(line)
        found[doc["patient"]] = {k: v for k, v in doc.items() if k not in ("source", "record")}
    rejects = [json.loads(x) for x in (out / "rejects.ndjson").read_text().splitlines()]
    return found, rejects, s


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    d = tmp_path_factory.mktemp("forms")
    cases = list(generate(N, seed=10))
    convert.write_bundles(cases, d / "bundles.ndjson")
    convert.write_bulk(cases, d / "bulk")
    convert.write_long(cases, d / "long")
    convert.write_omop(cases, d / "omop")
    return d


@pytest.fixture(scope="module")
def reference(forms, tmp_path_factory):
    found, rejects, s = _run(forms / "bundles.ndjson", tmp_path_factory.mktemp("out") / "bundles")
    assert (s.read, s.assessed, s.refused) == (N, N, 0) and not rejects
    assert sum(len(v["findings"]) for v in found.values()) > N      # findings, not an empty comparison
    return found


@pytest.mark.parametrize("kind", ["bulk", "long", "omop"])
def test_same_findings_as_bundles(kind, forms, reference, tmp_path):
    assert input_kind(forms / kind) == kind
    found, rejects, s = _run(forms / kind, tmp_path / "out", chunk_size=70)   # several chunks, one partial
    assert (s.read, s.assessed, s.refused) == (N, N, 0) and not rejects
    assert found.keys() == reference.keys()
    for pid, doc in reference.items():
        assert found[pid] == doc, pid


def _to_parquet(src: Path, dst: Path) -> None:
    import duckdb

    dst.mkdir()
    for f in src.glob("*.csv"):
        duckdb.sql(f"COPY (SELECT * FROM read_csv('{f}', all_varchar = true)) TO '{dst / (f.stem + '.parquet')}' (FORMAT parquet)")


@pytest.mark.parametrize("kind", ["long", "omop"])
def test_parquet_tables_read_as_csv(kind, forms, reference, tmp_path):
    _to_parquet(forms / kind, tmp_path / kind)
    assert input_kind(tmp_path / kind) == kind
    found, rejects, s = _run(tmp_path / kind, tmp_path / "out")
    assert found == reference and not rejects


def test_detection(tmp_path, forms):
    assert input_kind(forms / "bundles.ndjson") == "ndjson"
    assert input_kind(forms / "long" / "labs.csv") == "long"          # a lab table alone
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "a.yaml").write_text("id: a\n")
    assert input_kind(tmp_path / "records") == "folder"
    with pytest.raises(ValueError):
        input_kind(tmp_path, "parquet-ish")


def test_examples_run(tmp_path):
    for kind in ("bulk", "omop", "long"):
        found, rejects, s = _run(EXAMPLES / kind, tmp_path / kind)
        assert input_kind(EXAMPLES / kind) == kind
        assert s.assessed >= 1, kind


def _append_csv(path: Path, row: dict) -> None:
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerow([row.get(h, "") for h in header])


@pytest.mark.xfail(strict=True, reason="after merging the tolerant FHIR reader, the note for a MEASUREMENT concept "
                   "missing from CONCEPT does not reach its patient's notes (counts and rejects are right): to fix")
def test_omop_rows_b12kg_cannot_use(forms, tmp_path):
    """A measurement whose concept the CONCEPT table does not hold is in its patient's notes and
    the patient is assessed on the rest; a measurement of a person PERSON does not hold is refused
    alone, saying why; conditions and drugs are carried into the Bundle."""
    import shutil

    d = tmp_path / "omop"
    shutil.copytree(forms / "omop", d)
    _append_csv(d / "MEASUREMENT.csv", {"measurement_id": "900001", "person_id": "1", "measurement_concept_id": "123456",
                                        "measurement_date": "2026-01-15", "value_as_number": "5", "unit_concept_id": "0"})
    _append_csv(d / "MEASUREMENT.csv", {"measurement_id": "900002", "person_id": "999999", "measurement_concept_id": "123456",
                                        "measurement_date": "2026-01-15", "value_as_number": "5"})
    (d / "CONDITION_OCCURRENCE.csv").write_text("condition_occurrence_id,person_id,condition_concept_id,condition_start_date\n"
                                                 "1,2,2100000000,2025-06-01\n")
    found, rejects, s = _run(d, tmp_path / "out")
    assert (s.read, s.assessed, s.refused) == (N + 1, N, 1)
    assert any("123456" in n and "not a test b12kg reads" in n for n in found["1"]["notes"])
    assert "999999" in rejects[0]["source"] and "PERSON" in rejects[0]["source"]
    assert any("Condition" in n for n in found["2"]["notes"])


def test_bulk_resource_without_patient_is_refused(forms, tmp_path):
    import shutil

    d = tmp_path / "bulk"
    shutil.copytree(forms / "bulk", d)
    with open(d / "Observation.ndjson", "a") as fh:
        fh.write(json.dumps({"resourceType": "Observation", "id": "lost", "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
                             "subject": {"reference": "Patient/nobody"},
                             "valueQuantity": {"value": 9, "system": "http://unitsofmeasure.org", "code": "ug/L"}}) + "\n")
        fh.write(json.dumps({"resourceType": "Observation", "id": "nosubject", "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]}}) + "\n")
    found, rejects, s = _run(d, tmp_path / "out")
    assert (s.read, s.assessed, s.refused) == (N + 2, N, 2)
    why = sorted(r["source"] for r in rejects)
    assert "no patient reference" in why[0] + why[1] and "'nobody'" in why[0] + why[1]


def test_bulk_malformed_lines_are_listed_and_the_rest_is_assessed(forms, reference, tmp_path):
    """A bulk export is a system export: a line that is not a JSON object is refused alone, naming
    its file, its line and why, and every patient is assessed as without it."""
    import shutil

    d = tmp_path / "bulk"
    shutil.copytree(forms / "bulk", d)
    lines = (d / "Observation.ndjson").read_text().splitlines()
    lines.insert(2, lines[2][: len(lines[2]) // 2])          # a line cut in the middle
    lines.append("[1, 2]")                                   # JSON, not an object
    (d / "Observation.ndjson").write_text("\n".join(lines) + "\n")
    found, rejects, s = _run(d, tmp_path / "out", chunk_size=70)
    assert (s.read, s.assessed, s.refused) == (N + 2, N, 2)
    assert found == reference
    why = {r["source"].split(": ")[0]: r["source"] for r in rejects}
    assert why.keys() == {"Observation.ndjson line 3", f"Observation.ndjson line {len(lines)}"}
    assert "is not valid JSON (" in why["Observation.ndjson line 3"]
    assert "is not a JSON object" in why[f"Observation.ndjson line {len(lines)}"]


def test_long_table_unknown_column_stops_the_run(forms, tmp_path):
    import shutil

    from b12kg.errors import B12kgError

    d = tmp_path / "long"
    shutil.copytree(forms / "long", d)
    text = (d / "persons.csv").read_text().replace("birth_date", "birth_date,pregnnt", 1)
    (d / "persons.csv").write_text(text.replace("\n", ",\n").replace("pregnnt,\n", "pregnnt\n", 1))
    with pytest.raises(B12kgError, match="pregnnt"):
        assess_cohort(d, tmp_path / "out", workers=1, progress=False)


def test_omop_measurement_without_unit_is_a_note(forms, tmp_path):
    import shutil

    d = tmp_path / "omop"
    shutil.copytree(forms / "omop", d)
    with open(d / "CONCEPT.csv", newline="") as fh:
        ferritin = next(r["concept_id"] for r in csv.DictReader(fh) if r["vocabulary_id"] == "LOINC" and r["concept_code"] == "2276-4")
    _append_csv(d / "MEASUREMENT.csv", {"measurement_id": "900003", "person_id": "3", "measurement_concept_id": ferritin,
                                        "measurement_date": "2025-01-15", "value_as_number": "12", "unit_concept_id": "0"})
    found, rejects, s = _run(d, tmp_path / "out")
    assert (s.read, s.assessed, s.refused) == (N, N, 0)
    assert any("unit" in n for n in found["3"]["notes"])
