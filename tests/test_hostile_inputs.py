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
from rdflib import URIRef

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


# -- identity and time (issue 11, point 2) ------------------------------------------------------
FHIR_EXAMPLE = REPO / "vendor" / "shared" / "cases" / "fhir" / "p21-dual-deficiency.bundle.json"


def _bundle() -> dict:
    return json.loads(FHIR_EXAMPLE.read_text())


def _b12_entry(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
                and e["resource"]["code"]["coding"][0]["code"] == "2132-9")


@pytest.mark.parametrize("subject, why", [
    ({"reference": "Patient/someone-else"}, "does not refer to the Bundle's Patient"),
    ({"identifier": {"system": "urn:mrn", "value": "999"}}, "is not an identifier of the Bundle's Patient"),
    (None, "has no subject"),
])
def test_an_observation_of_another_patient_is_not_used(subject, why):
    b = _bundle()
    obs = _b12_entry(b)
    obs.pop("subject")
    if subject is not None:
        obs["subject"] = subject
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and any(why in n for n in rec.notes)


def test_an_observation_linked_only_through_focus_is_not_used():
    b = _bundle()
    _b12_entry(b)["focus"] = [{"reference": "Patient/mother"}]
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and any(".focus names what it is about" in n for n in rec.notes)


def test_a_patient_without_id_does_not_take_every_observation():
    b = _bundle()
    b["entry"][0].pop("fullUrl")
    b["entry"][0]["resource"].pop("id")
    rec = b12kg.load_record(b)
    assert rec.results == {} and any("has neither an id nor a fullUrl" in n for n in rec.notes)


def test_an_observation_whose_subject_is_the_patients_identifier_counts():
    b = _bundle()
    b["entry"][0]["resource"]["identifier"] = [{"system": "urn:mrn", "value": "123"}]
    _b12_entry(b)["subject"] = {"identifier": {"system": "urn:mrn", "value": "123"}}
    assert "b12" in b12kg.load_record(b).results


def test_a_fhir_result_in_the_future_of_the_run_is_unusable():
    b = _bundle()
    _b12_entry(b)["effectiveDateTime"] = "2099-01-01T08:00:00Z"
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and "in the future of the run" in rec.unusable_results["b12"]


def _dated(**patient):
    return {"id": "d", "patient": {"sex": "female", **patient},
            "observations": {"hemoglobin": {"value": 105, "unit": "g/L", "time": "2024-03-01"}}}


def test_a_specimen_date_in_the_future_is_refused():
    """A specimen date of 2099 made a 4-year-old 94 years old, so Anemia by the adult cut-off."""
    with pytest.raises(InputError, match="patient.specimen_date.*in the future of the run"):
        b12kg.load_record({"id": "d", "patient": {"sex": "female", "birth_date": "2020-01-01",
                                                  "specimen_date": "2099-01-01"},
                           "observations": {"hemoglobin": {"value": 105, "unit": "g/L"}}})


def test_a_result_time_in_the_future_is_refused():
    rec = _dated(age_years=40)
    rec["observations"]["hemoglobin"]["time"] = "2099-01-01"
    with pytest.raises(InputError, match="observations.hemoglobin.time.*in the future of the run"):
        b12kg.load_record(rec)


def test_a_result_before_birth_is_refused():
    with pytest.raises(InputError, match="is before the birth date"):
        b12kg.load_record(_dated(birth_date="2024-06-01"))


def test_an_age_given_beside_dates_must_agree_with_them():
    with pytest.raises(InputError, match="patient.age_years.*does not agree with the birth date"):
        b12kg.load_record(_dated(age_years=30, birth_date="2022-06-01"))
    # completed years, as an age is written, agree
    assert b12kg.load_record(_dated(age_years=1, birth_date="2022-06-01")).age_years == 1


def test_a_specimen_date_years_away_from_the_result_is_refused():
    with pytest.raises(InputError, match="is not the date of the latest result"):
        b12kg.load_record(_dated(birth_date="1980-01-01", specimen_date="2010-01-01"))


def test_a_result_taken_in_another_age_band_is_refused():
    """An Hb at 17 months beside a ferritin at 3 years: one record age cannot judge both."""
    rec = {"id": "d", "patient": {"sex": "female", "birth_date": "2021-01-01"},
           "observations": {"hemoglobin": {"value": 105, "unit": "g/L", "time": "2022-06-01"},
                            "ferritin": {"value": 20, "unit": "ug/L", "time": "2024-02-01"}}}
    with pytest.raises(InputError, match="observations.hemoglobin.time.*another age band"):
        b12kg.load_record(rec)


def test_a_fhir_result_taken_in_another_age_band_is_unusable():
    b = _bundle()
    birth = b["entry"][0]["resource"]["birthDate"]
    hb = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Observation"
              and e["resource"]["code"]["coding"][0]["code"] == "718-7")
    # the haemoglobin taken at 12 years of age (its cut-offs change at 12 and 15), the others at 44
    hb["effectiveDateTime"] = f"{int(birth[:4]) + 12}-{birth[5:]}T08:00:00Z"
    rec = b12kg.load_record(b)
    assert "another age band" in rec.unusable_results["hemoglobin"]


def test_a_result_of_a_test_without_age_bands_is_not_refused_for_its_age():
    """B12's cut-offs do not depend on age: a B12 result taken years earlier is judged the same."""
    b = _bundle()
    birth = b["entry"][0]["resource"]["birthDate"]
    _b12_entry(b)["effectiveDateTime"] = f"{int(birth[:4]) + 12}-{birth[5:]}T08:00:00Z"
    assert "b12" in b12kg.load_record(b).results


def test_a_pregnant_three_year_old_is_refused():
    with pytest.raises(InputError, match="patient.pregnant.*not plausible"):
        b12kg.load_record({"id": "p", "patient": {"sex": "female", "age_years": 3, "pregnant": True},
                           "observations": {"hemoglobin": {"value": 105, "unit": "g/L"}}})


def _iron_tibc(iron_time, tibc_time):
    obs = {"iron": {"value": 10, "unit": "umol/L"}, "tibc": {"value": 60, "unit": "umol/L"}}
    for k, t in (("iron", iron_time), ("tibc", tibc_time)):
        if t:
            obs[k]["time"] = t
    return dict(BASE, observations=obs)


def test_tsat_is_not_derived_from_iron_and_tibc_years_apart():
    rec = b12kg.load_record(_iron_tibc("2020-01-01T08:00:00Z", "2024-01-01T08:00:00Z"))
    assert "tsat" not in rec.results and any("more than 1 day apart" in n for n in rec.notes)
    same = b12kg.load_record(_iron_tibc("2024-01-01T08:00:00Z", "2024-01-01T09:00:00Z"))
    assert "tsat" in same.results


def test_tsat_is_not_derived_when_only_one_of_iron_and_tibc_is_timed():
    rec = b12kg.load_record(_iron_tibc("2024-01-01T08:00:00Z", None))
    assert "tsat" not in rec.results and any("has none" in n for n in rec.notes)


def test_a_derived_tsat_is_not_rounded_before_it_is_compared():
    """15.9999999 % was rounded to 16 (no LowTransferrinSaturation at a < 16 % cut-off)."""
    rec = b12kg.load_record(dict(BASE, observations={"iron": {"value": "15.9999999", "unit": "umol/L"},
                                                     "tibc": {"value": 100, "unit": "umol/L"}}))
    assert rec.results["tsat"].compared_value == Decimal("15.9999999")


def test_a_derived_tsat_that_rounds_onto_a_shorter_number_is_not_derived():
    # 4.79999999 / 30 x 100 = 15.9999999666... does not end; rounded to 6 places it is 16, which a
    # cut-off may be
    rec = b12kg.load_record(dict(BASE, observations={"iron": {"value": "4.79999999", "unit": "umol/L"},
                                                     "tibc": {"value": 30, "unit": "umol/L"}}))
    assert "tsat" not in rec.results and any("could be a cut-off" in n for n in rec.notes)


def test_tsat_cut_offs_have_fewer_places_than_a_rounded_derived_tsat():
    """The rounding of a derived TSAT that does not end keeps every comparison only with cut-offs
    of fewer than TSAT_PLACES places: the ontology's TSAT cut-offs are checked here."""
    from b12kg.inputs.normalise import TSAT_PLACES, decimal_places
    from b12kg.kb import ontology_graph
    from b12kg.rdf.terms import B12

    g = ontology_graph()
    tsat = URIRef(b12kg.kb.vocabulary().tests_by_key["tsat"].iri)
    values = [Decimal(str(g.value(limit, B12.numericValue)))
              for t in g.subjects(B12.test, tsat) for limit in g.objects(t, B12.limit)]
    assert len(values) >= 3 and all(decimal_places(v) < TSAT_PLACES for v in values)


# -- FHIR codings and reference ranges (issue 11) ------------------------------------------------
UCUM = "http://unitsofmeasure.org"


def _with_mma(**extra) -> dict:
    b = _bundle()
    obs = {"resourceType": "Observation", "id": "mma", "status": "final",
           "subject": _b12_entry(b)["subject"], "effectiveDateTime": _b12_entry(b)["effectiveDateTime"],
           "code": {"coding": [{"system": "http://loinc.org", "code": "13964-2"}]},
           "valueQuantity": {"value": 300, "system": UCUM, "code": "nmol/L"}}
    obs.update(extra)
    b["entry"].append({"resource": obs})
    return b


def test_a_reference_limit_with_only_a_unit_text_is_converted_not_read_in_the_results_unit():
    """0.4 'umol/L' was read as 0.4 nmol/L, so MMA 300 nmol/L became RaisedMMA."""
    rec = b12kg.load_record(_with_mma(referenceRange=[{"high": {"value": 0.4, "unit": "umol/L"}}]))
    assert rec.results["mma"].ref_high_compared == Decimal("0.4")       # compared in umol/L: 400 nmol/L
    assert any("0.4 umol/L is read as 400 nmol/L" in n for n in rec.notes)


def test_a_reference_limit_in_a_unit_of_another_quantity_is_not_used():
    rec = b12kg.load_record(_with_mma(referenceRange=[{"high": {"value": 0.4, "unit": "mg/dL"}}]))
    assert rec.results["mma"].ref_high_compared is None and any("not a unit of mma" in n for n in rec.notes)


def test_a_reference_limit_without_a_unit_is_not_assumed_in_the_results_unit():
    rec = b12kg.load_record(_with_mma(referenceRange=[{"high": {"value": 0.4}}]))
    assert rec.results["mma"].ref_high_compared is None and any("has no unit" in n for n in rec.notes)


def test_a_reference_range_for_children_is_not_applied_to_an_adult():
    child = {"high": {"value": 200, "system": UCUM, "code": "nmol/L"},
             "age": {"high": {"value": 12, "system": UCUM, "code": "a"}}}
    adult = {"high": {"value": 400, "system": UCUM, "code": "nmol/L"},
             "age": {"low": {"value": 18, "system": UCUM, "code": "a"}}}
    for ranges in ([child, adult], [adult, child]):
        rec = b12kg.load_record(_with_mma(referenceRange=ranges))
        assert rec.results["mma"].ref_high_compared == Decimal("0.4")
    only_child = b12kg.load_record(_with_mma(referenceRange=[child]))
    assert only_child.results["mma"].ref_high_compared is None
    assert any("applies to ages up to 12 a" in n for n in only_child.notes)


def test_a_reference_range_for_the_other_sex_or_an_unknown_group_is_not_applied():
    male = {"high": {"value": 200, "system": UCUM, "code": "nmol/L"},
            "appliesTo": [{"coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": "male"}]}]}
    other = {"high": {"value": 200, "system": UCUM, "code": "nmol/L"},
             "appliesTo": [{"coding": [{"system": "http://snomed.info/sct", "code": "413773004"}]}]}
    for rr, why in ((male, "applies to sex male"), (other, "cannot match to the patient")):
        rec = b12kg.load_record(_with_mma(referenceRange=[rr]))
        assert rec.results["mma"].ref_high_compared is None and any(why in n for n in rec.notes)


def test_two_differing_reference_ranges_that_both_apply_give_no_limit():
    ranges = [{"high": {"value": 200, "system": UCUM, "code": "nmol/L"}},
              {"high": {"value": 400, "system": UCUM, "code": "nmol/L"}}]
    rec = b12kg.load_record(_with_mma(referenceRange=ranges))
    assert rec.results["mma"].ref_high_compared is None and any("all apply" in n for n in rec.notes)


def test_an_implausible_reference_limit_is_not_used():
    rec = b12kg.load_record(_with_mma(referenceRange=[{"high": {"value": 9e9, "system": UCUM, "code": "nmol/L"}}]))
    assert rec.results["mma"].ref_high_compared is None and any("not plausible as a reference limit" in n
                                                                for n in rec.notes)
    with pytest.raises(InputError, match="observations.mma.ref_high.*not plausible as a reference limit"):
        b12kg.load_record(_case(mma={"value": 0.3, "unit": "umol/L", "ref_high": 5000}))


@pytest.mark.parametrize("order", [0, 1])
def test_serum_b12_coded_with_whole_blood_b12_is_not_read_in_either_order(order):
    b = _bundle()
    codings = [{"system": "http://loinc.org", "code": "2132-9"}, {"system": "http://loinc.org", "code": "16695-9"}]
    _b12_entry(b)["code"]["coding"] = codings if order == 0 else codings[::-1]
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and "do not agree on one test" in rec.unusable_results["b12"]


def test_a_b12kg_key_beside_another_analytes_loinc_is_not_read():
    b = _bundle()
    _b12_entry(b)["code"]["coding"] = [{"system": "https://w3id.org/b12kg/analyte", "code": "b12"},
                                       {"system": "http://loinc.org", "code": "2276-4"}]      # ferritin
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and "2276-4 is ferritin" in rec.unusable_results["b12"]


def test_codings_that_agree_are_read():
    b = _bundle()
    _b12_entry(b)["code"]["coding"] = [{"system": "https://w3id.org/b12kg/analyte", "code": "b12"},
                                       {"system": "http://loinc.org", "code": "2132-9"},
                                       {"system": "urn:local-lab", "code": "B12S"}]
    assert b12kg.load_record(b).results["b12"].loinc == "2132-9"


def test_a_value_beside_a_data_absent_reason_is_not_used():
    b = _bundle()
    _b12_entry(b)["dataAbsentReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                     "code": "error"}]}
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and "dataAbsentReason" in rec.unusable_results["b12"]


def test_a_unit_code_and_a_unit_text_that_disagree_make_the_result_unusable():
    b = _bundle()
    q = _b12_entry(b)["valueQuantity"]
    q.update(code="pmol/L", unit="pg/mL", system=UCUM)
    rec = b12kg.load_record(b)
    assert "b12" not in rec.results and "disagrees with the UCUM code" in rec.unusable_results["b12"]
    q.update(unit="picomoles per litre")           # display text, not a unit of its own: read by the code
    assert "b12" in b12kg.load_record(b).results


# -- RDF input (issue 11) --------------------------------------------------------------------------
def _nt(tmp_path, case: dict, edit=lambda t: t, suffix=".nt") -> Path:
    from b12kg.rdf.patient import record_to_ntriples

    p = tmp_path / f"patient{suffix}"
    p.write_text(edit(record_to_ntriples(b12kg.load_record(case))), encoding="utf-8")
    return p


def test_rdf_comparator_is_read_not_ignored(tmp_path):
    """B12 '>150' written as valueAsGiven '150' with b12:comparator '>' was read as 150 (deficiency)."""
    p = _nt(tmp_path, _case(b12={"value": ">150", "unit": "pmol/L"}),
            lambda t: t.replace('valueAsGiven> ">150"', 'valueAsGiven> "150"'))
    assert 'valueAsGiven> "150"' in p.read_text()
    r = b12kg.load_record(p).results["b12"]
    assert (r.comparator, r.compared_value) == (">", Decimal(150))


def test_rdf_comparator_that_contradicts_the_value_is_refused(tmp_path):
    p = _nt(tmp_path, _case(b12={"value": ">150", "unit": "pmol/L"}),
            lambda t: t.replace('comparator> ">"', 'comparator> "<"'))
    with pytest.raises(InputError, match="b12:comparator.*conflicts"):
        b12kg.load_record(p)


def test_rdf_trimester_that_disagrees_with_the_weeks_is_refused(tmp_path):
    case = dict(BASE, patient={"sex": "female", "age_years": 30, "pregnant": True, "gestational_weeks": 30},
                observations={"hemoglobin": {"value": 105, "unit": "g/L"}})
    p = _nt(tmp_path, case, lambda t: t.replace("ThirdTrimester", "FirstTrimester"))
    with pytest.raises(InputError, match="b12:trimester.*disagrees"):
        b12kg.load_record(p)
    no_weeks = _nt(tmp_path, case, lambda t: "\n".join(x for x in t.splitlines() if "gestationalWeeks" not in x) + "\n")
    with pytest.raises(InputError, match="b12:trimester"):
        b12kg.load_record(no_weeks)


def test_rdf_whole_blood_b12_loinc_on_a_serum_result_is_refused(tmp_path):
    text = _nt(tmp_path, _case(b12={"value": 150, "unit": "pmol/L"})).read_text()
    result = next(line.split()[0] for line in text.splitlines() if "/valueAsGiven>" in line)
    p = tmp_path / "whole-blood.nt"
    p.write_text(text + f'{result} <https://w3id.org/b12kg/loincCode> "16695-9" .\n', encoding="utf-8")
    with pytest.raises(InputError, match="b12:loincCode.*whole BLOOD"):
        b12kg.load_record(p)


def test_rdf_age_with_30_decimals_is_refused(tmp_path):
    p = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"}),
            lambda t: t.replace('"40.0"^^', '"40.000000000000000000000000000001"^^'))
    assert "40.000000000000000000000000000001" in p.read_text()
    with pytest.raises(InputError, match="b12:ageYears"):
        b12kg.load_record(p)


def test_rdf_unknown_b12_term_and_unlinked_result_are_refused_not_dropped(tmp_path):
    text = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"})).read_text()
    patient = text.split()[0]
    p = tmp_path / "odd.nt"
    p.write_text(text + f'{patient} <https://w3id.org/b12kg/hasContxt> <https://w3id.org/b12kg/VeganDiet> .\n'
                 '<urn:lost> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <https://w3id.org/b12kg/LabResult> .\n',
                 encoding="utf-8")
    with pytest.raises(InputError) as exc:
        b12kg.load_record(p)
    assert "hasContxt" in str(exc.value) and "<urn:lost>: is not the patient nor linked from it" in str(exc.value)


def test_rdf_terms_of_other_vocabularies_are_named_in_the_notes(tmp_path):
    text = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"})).read_text()
    p = tmp_path / "label.nt"
    p.write_text(text + f'{text.split()[0]} <http://www.w3.org/2000/01/rdf-schema#label> "Jane" .\n', encoding="utf-8")
    assert any("rdf-schema#label" in n for n in b12kg.load_record(p).notes)


def test_jsonld_term_missing_from_the_context_is_refused_not_dropped(tmp_path):
    doc = {"@context": {"b12": "https://w3id.org/b12kg/", "patientId": "b12:patientId"},
           "@id": "urn:p", "@type": "b12:Patient", "patientId": "p", "hasResults": [{"@id": "urn:r"}]}
    p = tmp_path / "p.jsonld"
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match="hasResults.*not a term of the document's @context"):
        b12kg.load_record(p)


def test_a_byte_order_mark_in_turtle_is_read(tmp_path):
    plain = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"}))
    bom = tmp_path / "bom.ttl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert b12kg.load_record(bom).results == b12kg.load_record(plain).results


def test_rdf_over_the_byte_limit_is_refused_before_parsing(tmp_path, monkeypatch):
    from b12kg.inputs import rdf

    p = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"}))
    monkeypatch.setattr(rdf, "MAX_RDF_BYTES", p.stat().st_size - 1)
    monkeypatch.setattr(rdf, "parse_rdf", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(InputError, match="byte limit for one patient given as RDF"):
        b12kg.load_record(p)


def test_many_current_results_of_one_test_are_refused_before_shacl(tmp_path, monkeypatch):
    """The SHACL check of one current result per test grew faster than the square (400: 68 s)."""
    from b12kg.inputs import rdf

    text = _nt(tmp_path, _case(ferritin={"value": 20, "unit": "ug/L"})).read_text()
    patient = text.split()[0]
    extra = "".join(f'{patient} <https://w3id.org/b12kg/hasResult> <urn:r{i}> .\n'
                    f'<urn:r{i}> <https://w3id.org/b12kg/test> <https://w3id.org/b12kg/FerritinTest> .\n'
                    for i in range(400))
    p = tmp_path / "many.nt"
    p.write_text(text + extra, encoding="utf-8")
    monkeypatch.setattr(rdf, "validate_shapes", lambda *a, **k: pytest.fail("validated"))
    with pytest.raises(InputError, match="401 current results"):
        b12kg.load_record(p)


@pytest.mark.xfail(strict=True, reason="open: the engines' batch (b12kg/engines/base.patients_ntriples) does not yet "
                   "refuse duplicate ids; the engines are the lead's to change (notes/robust.md)")
def test_a_batch_with_two_patients_of_one_id_is_refused_not_merged():
    from b12kg import engines

    low = b12kg.load_record(_case(ferritin={"value": 8, "unit": "ug/L"}))
    high = b12kg.load_record(_case(ferritin={"value": 300, "unit": "ug/L"}))
    with pytest.raises(InputError, match="h"):
        engines.get("oxigraph").reason([low, high])
