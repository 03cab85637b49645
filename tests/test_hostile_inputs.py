"""Odd and hostile inputs that gave a wrong answer, lost data or crashed without a word (issue 11),
each now a located refusal; every test is named by what it guards."""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import b12kg
from b12kg import InputError

REPO = Path(__file__).resolve().parents[1]
BASE = {"id": "h", "patient": {"sex": "female", "age_years": 40}}


def _case(**observations):
    return dict(BASE, observations=observations)


def test_numpy_numbers_are_read_as_the_numbers_they_are():
    """numpy.float64 is a float whose repr is 'np.float64(8.0)': it crashed the API."""
    a = b12kg.assess(_case(ferritin={"value": np.float64(8.0), "unit": "ug/L"}, hemoglobin={"value": np.int64(101),
                                                                                             "unit": "g/L"}))
    plain = b12kg.assess(_case(ferritin={"value": 8.0, "unit": "ug/L"}, hemoglobin={"value": 101, "unit": "g/L"}))
    assert a.codes == plain.codes and "LowFerritin" in a.codes


def test_a_numpy_boolean_is_not_a_number():
    with pytest.raises(InputError, match="observations.ferritin.value"):
        b12kg.load_record(_case(ferritin={"value": np.bool_(True), "unit": "ug/L"}))


@pytest.mark.parametrize("text", ["2020-01-01garbage", "2020-01-01 and later", "2020-13-01"])
def test_a_date_with_more_after_it_is_refused_not_truncated(text):
    rec = dict(BASE, patient={"sex": "female", "birth_date": text, "specimen_date": "2024-01-01"},
               observations={"ferritin": {"value": 20, "unit": "ug/L"}})
    with pytest.raises(InputError, match="patient.birth_date"):
        b12kg.load_record(rec)


def test_a_full_date_time_still_gives_its_day():
    rec = dict(BASE, patient={"sex": "female", "birth_date": "1984-01-01", "specimen_date": "2024-01-01T08:30:00Z"},
               observations={"ferritin": {"value": 20, "unit": "ug/L"}})
    assert b12kg.load_record(rec).age_years == Decimal(40)


def test_serum_iron_above_tibc_is_refused_naming_both():
    with pytest.raises(InputError) as exc:
        b12kg.load_record(_case(iron={"value": 60, "unit": "umol/L"}, tibc={"value": 40, "unit": "umol/L"}))
    assert "observations.iron" in str(exc.value) and "over 100 %" in str(exc.value)


def test_fields_beside_input_are_refused_not_dropped(tmp_path):
    (tmp_path / "b.json").write_text((REPO / "examples" / "04-fhir-dual-deficiency.bundle.json").read_text())
    with pytest.raises(InputError, match="contxt"):
        b12kg.load_record({"id": "x", "input": "b.json", "contxt": ["vegan-diet"]}, base_dir=tmp_path)
    assert b12kg.load_record({"id": "x", "input": "b.json", "expect": {}}, base_dir=tmp_path).results


def test_an_unknown_profile_with_a_bundle_is_a_located_refusal():
    with pytest.raises(InputError, match="profile: 'nope' is not a profile"):
        b12kg.assess(REPO / "examples" / "04-fhir-dual-deficiency.bundle.json", profile="nope")


def test_a_fifo_named_yaml_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "patient.yaml"
    os.mkfifo(fifo)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(_refusal(fifo)), daemon=True)
    t.start()
    t.join(60)          # a generous bound on a thread that, before, never returned
    if t.is_alive():    # unblock the reader so the test process can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO waited for a writer")
    assert outcome and "is a pipe or a socket" in outcome[0]


def _refusal(path) -> str:
    try:
        b12kg.load_record(path)
    except InputError as exc:
        return str(exc)
    return "accepted"


def test_a_csv_cell_over_128_kb_refuses_its_row_not_the_run(tmp_path):
    from b12kg.cohort import assess_cohort
    from b12kg.inputs.csv import write_csv
    from b12kg.testing import synth

    cases = list(synth.generate(5, seed=1))
    cases[2] = dict(cases[2], id="x" * 200_000)
    path = tmp_path / "c.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        write_csv(cases, fh)
    s = assess_cohort(path, tmp_path / "out", workers=1, progress=False)
    assert s.read == 5 and s.reconciles()


def test_a_header_of_100000_unknown_columns_gives_a_short_message():
    from b12kg.inputs.csv import check_csv_header

    problems = check_csv_header([f"col{i}" for i in range(100_000)])
    assert len(problems) == 21 and problems[-1] == "and 99980 more column problems"
    assert len("; ".join(problems)) < 2000


def test_a_reported_but_unusable_result_is_not_assessed_as_absent():
    """A FHIR record holding a result of a test the rules read that cannot be used is assessed,
    and what depends on that result is unassessed, never false (findings.md v2, S1): an unusable
    haemoglobin leaves Anemia and SevereAnemia unassessed, so 'no SevereAnemia' cannot choose oral
    B12. The evidence names the result and why it is unusable."""
    import json as _json

    from b12kg.inputs.normalise import RULES_READ_UNUSABLE_RESULTS

    assert RULES_READ_UNUSABLE_RESULTS
    bundle = _json.loads((REPO / "examples" / "04-fhir-dual-deficiency.bundle.json").read_text())
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "718-7":
            r.pop("valueQuantity")
            r["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                 "code": "error"}]}
    rec = b12kg.load_record(bundle)
    assert "hemoglobin" in rec.unusable_results and "hemoglobin" not in rec.results
    a = b12kg.assess(bundle)
    unassessed = {f.code: f for f in a.unassessed}
    assert {"Anemia", "SevereAnemia"} <= set(unassessed) and not {"Anemia", "SevereAnemia"} & set(a.codes)
    assert "OralB12Replacement" not in a.codes
    assert any(e.unusable and "error" in e.unusable for e in unassessed["Anemia"].evidence)


