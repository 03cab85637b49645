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


# ---------------------------------------------------------------------------------------------
# Pregnancy and clinical context from long tables and OMOP: the same findings as the same facts
# written as words in a case file
# ---------------------------------------------------------------------------------------------
WHEN = "2026-05-04T09:00:00+00:00"


def _case(pid: str, *, b12=None, context=(), symptoms=(), **patient) -> dict:
    observations = {"hemoglobin": {"value": 11.5, "unit": "g/dL", "time": WHEN}}
    if b12 is not None:
        observations["b12"] = {"value": b12, "unit": "pg/mL", "time": WHEN}
    return {"id": pid, "patient": {"sex": "female", "birth_date": "1995-02-01", **patient},
            "observations": observations, "context": list(context), "symptoms": list(symptoms)}


def _codes_of(doc: dict) -> list[str]:
    return sorted(f["code"] for f in doc["findings"])


def _case_codes(case: dict) -> list[str]:
    from b12kg import assess

    return sorted(assess(case).codes)


def _write(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_long_table_pregnancy_rows_give_the_pregnancy_cut_offs(tmp_path):
    d = tmp_path / "long"
    d.mkdir()
    _write(d / "persons.csv", [["patient_id", "sex", "birth_date"],
                               *[[p, "female", "1995-02-01"] for p in ("p1", "p2", "p3", "p4")]])
    _write(d / "labs.csv", [["patient_id", "loinc", "value", "unit", "time"],
                            *[[p, "718-7", "11.5", "g/dL", WHEN] for p in ("p1", "p2", "p3")],
                            ["p1", "82810-3", "LA15173-0", "", WHEN], ["p1", "11884-4", "20", "wk", WHEN],
                            ["p3", "82810-3", "http://snomed.info/sct|77386006", "", WHEN],
                            ["p4", "718-7", "11.5", "g/dL", WHEN], ["p4", "93857-1", "2026-04-10", "", WHEN]])
    found, rejects, s = _run(d, tmp_path / "out")
    assert (s.assessed, s.refused) == (4, 0)
    assert any("postpartum" in n and "delivered 2026-04-10" in n for n in found["p4"]["notes"])
    pregnant, not_pregnant = _case_codes(_case("p1", pregnant=True, gestational_weeks=20)), _case_codes(_case("p2"))
    assert pregnant != not_pregnant                     # Hb 115 g/L: anaemia outside pregnancy only
    assert _codes_of(found["p1"]) == pregnant and _codes_of(found["p2"]) == not_pregnant
    assert any(n.startswith("Gestational age 20 weeks") for n in found["p1"]["notes"])
    assert _codes_of(found["p3"]) == _case_codes(_case("p3", pregnant=True))


OMOP_CONCEPTS = [  # concept_id, name, domain, vocabulary, class, standard, code (local ids, > 2,000,000,000)
    (8532, "FEMALE", "Gender", "Gender", "Gender", "S", "F"),
    (2000000001, "Hemoglobin [Mass/volume] in Blood", "Measurement", "LOINC", "Lab Test", "S", "718-7"),
    (2000000002, "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "S", "2132-9"),
    (2000000003, "gram per deciliter", "Unit", "UCUM", "Unit", "S", "g/dL"),
    (2000000004, "picogram per milliliter", "Unit", "UCUM", "Unit", "S", "pg/mL"),
    (2000000005, "week", "Unit", "UCUM", "Unit", "S", "wk"),
    (2000000006, "Pregnancy status", "Observation", "LOINC", "Clinical Observation", "S", "82810-3"),
    (2000000007, "Pregnant", "Meas Value", "LOINC", "Answer", "S", "LA15173-0"),
    (2000000008, "Gestational age Estimated", "Observation", "LOINC", "Clinical Observation", "S", "11884-4"),
    (2000000009, "Pernicious anemia", "Condition", "SNOMED", "Disorder", "S", "84027009"),
    (2000000010, "metformin", "Drug", "RxNorm", "Ingredient", "S", "6809"),
    (2000000011, "Paresthesia", "Observation", "SNOMED", "Clinical Finding", "S", "91019004"),
]


def test_omop_pregnancy_conditions_drugs_and_findings_read_as_the_words(tmp_path):
    d = tmp_path / "omop"
    d.mkdir()
    t = "2026-05-04 09:00:00"
    _write(d / "CONCEPT.csv", [["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                                "standard_concept", "concept_code"], *OMOP_CONCEPTS])
    _write(d / "PERSON.csv", [["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth"],
                              *[[p, 8532, 1995, 2, 1] for p in (1, 2, 3, 4)]])
    _write(d / "MEASUREMENT.csv", [["measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                                    "measurement_datetime", "operator_concept_id", "value_as_number",
                                    "value_as_concept_id", "unit_concept_id"],
                                   *[[p, p, 2000000001, t[:10], t, 0, "11.5", 0, 2000000003] for p in (1, 2, 3, 4)],
                                   *[[10 + p, p, 2000000002, t[:10], t, 0, "150", 0, 2000000004] for p in (2, 3)]])
    _write(d / "OBSERVATION.csv", [["observation_id", "person_id", "observation_concept_id", "observation_date",
                                    "observation_datetime", "value_as_number", "value_as_string", "value_as_concept_id",
                                    "unit_concept_id"],
                                   [1, 1, 2000000006, t[:10], t, "", "", 2000000007, ""],
                                   [2, 1, 2000000008, t[:10], t, "20", "", "", 2000000005],
                                   [4, 3, 2000000011, t[:10], t, "", "", "", ""]])
    _write(d / "CONDITION_OCCURRENCE.csv", [["condition_occurrence_id", "person_id", "condition_concept_id",
                                             "condition_start_date", "condition_end_date"],
                                            [1, 2, 2000000009, "2020-01-01", ""],
                                            [2, 3, 2000000009, "2020-01-01", "2021-01-01"]])   # ended: resolved
    _write(d / "DRUG_EXPOSURE.csv", [["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                                      "drug_exposure_end_date"], [1, 2, 2000000010, "2019-01-01", ""],
                                     [2, 3, 2000000010, "2019-01-01", ""]])
    found, rejects, s = _run(d, tmp_path / "out")
    assert (s.assessed, s.refused) == (4, 0) and not rejects
    assert _codes_of(found["1"]) == _case_codes(_case("1", pregnant=True, gestational_weeks=20))
    assert any(n.startswith("Gestational age 20 weeks") for n in found["1"]["notes"])
    assert any(n.startswith("Pregnancy status pregnant is read from") for n in found["1"]["notes"])
    assert _codes_of(found["4"]) == _case_codes(_case("4")) != _codes_of(found["1"])
    metformin = _case_codes(_case("2", b12=150, context=["metformin"]))
    assert "OralB12Replacement" in metformin                  # each fact below changes the B12 route
    assert _codes_of(found["2"]) == _case_codes(_case("2", b12=150, context=["pernicious-anemia", "metformin"])) != metformin
    assert _codes_of(found["3"]) == _case_codes(_case("3", b12=150, context=["metformin"], symptoms=["tingling"])) != metformin
    assert any("'pernicious-anemia' is read from" in n and "Condition/c1" in n for n in found["2"]["notes"])
    assert any("Condition/c2" in n and "clinicalStatus resolved" in n for n in found["3"]["notes"])


@pytest.mark.parametrize("kind", ["bulk", "omop"])
def test_pregnancy_conditions_and_medicines_read_as_their_bundles(kind, tmp_path):
    """Generated patients with pregnancy, context words and symptoms written as a bulk export (one
    file per resource type: Patient, Observation, Condition, MedicationStatement) or as OMOP tables
    (OBSERVATION, CONDITION_OCCURRENCE, DRUG_EXPOSURE) give the findings of the same patients as
    Bundles; the notes agree but for the place of each resource (entry number and id)."""
    import re

    cases = list(generate(120, seed=12))
    convert.write_bundles(cases, tmp_path / "bundles.ndjson", context=True)
    {"bulk": convert.write_bulk, "omop": convert.write_omop}[kind](cases, tmp_path / kind, context=True)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / kind).iterdir()}
    assert all(sizes[f] > 100 for f in ({"bulk": ("Condition.ndjson", "MedicationStatement.ndjson"),
                                          "omop": ("OBSERVATION.csv", "CONDITION_OCCURRENCE.csv",
                                                   "DRUG_EXPOSURE.csv")}[kind]))
    ref, rejects_ref, _s = _run(tmp_path / "bundles.ndjson", tmp_path / "out-bundles")
    found, rejects, s = _run(tmp_path / kind, tmp_path / "out", chunk_size=50)
    assert (s.read, s.assessed, s.refused) == (120, 120, 0) and not rejects and not rejects_ref

    def notes(doc):
        return sorted(re.sub(r"Bundle\.entry\[\d+\]\.resource\([^)]*\)", "<resource>", n) for n in doc["notes"])

    assert found.keys() == ref.keys()
    for pid, doc in ref.items():
        assert found[pid]["findings"] == doc["findings"], pid
        assert notes(found[pid]) == notes(doc), pid
    for out in (ref, found):                                                    # words were carried
        assert sum("is read from" in n for d in out.values() for n in d["notes"]) >= 30
