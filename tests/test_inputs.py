"""Loaders: case records, FHIR Bundles and RDF. Every refusal names the field, the value and the
problem; nothing is guessed; values are kept as given and as compared."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from b12kg import InputError, assess, load_record
from b12kg.inputs.files import load_json
from b12kg.inputs.rdf import parse_rdf, validate_shapes
from b12kg.rdf.patient import record_to_ntriples

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "vendor" / "shared" / "cases"
BUNDLE = SHARED / "fhir" / "p21-dual-deficiency.bundle.json"


def rec(**obs):
    return {"id": "t", "patient": {"sex": "female", "age_years": 40}, "observations": obs}


def refused(data) -> str:
    with pytest.raises(InputError) as e:
        load_record(data)
    return str(e.value)


# --- values and units ---------------------------------------------------------------------------
def test_decimal_conversion_never_flips_a_cut_off():
    # 10.5 g/dL is exactly 105 g/L: not below the second-trimester cut-off of 105
    r = load_record({"id": "x", "patient": {"sex": "female", "age_years": 30, "pregnant": True, "gestational_weeks": 20},
                     "observations": {"hemoglobin": {"value": 10.5, "unit": "g/dL"}}})
    hb = r.results["hemoglobin"]
    assert hb.compared_value == Decimal("105.0") and hb.compared_unit == "g/L"
    assert "Anemia" not in assess(r).codes
    r2 = load_record({"id": "x", "patient": {"sex": "female", "age_years": 30, "pregnant": True, "gestational_weeks": 20},
                      "observations": {"hemoglobin": {"value": "10.49", "unit": "g/dL"}}})
    assert "Anemia" in assess(r2).codes


def test_b12_compared_in_the_unit_it_was_reported_in():
    # 180 pg/mL is compared with 180 ng/L (same unit), not converted to 132.8 pmol/L (which is < 133)
    r = load_record(rec(b12={"value": 180, "unit": "pg/mL"}))
    b = r.results["b12"]
    assert (b.compared_value, b.compared_unit) == (Decimal(180), "ng/L")
    a = assess(r)
    assert "LowB12" not in a.codes and "IndeterminateB12" in a.codes
    # the same patient reported in pmol/L just below 133
    assert "LowB12" in assess(rec(b12={"value": "132.8", "unit": "pmol/L"})).codes


def test_value_as_given_and_as_compared_are_both_kept():
    a = assess(rec(ferritin={"value": 7, "unit": "ng/mL"}, crp={"value": 0.8, "unit": "mg/dL"}))
    ev = {e.analyte: e for f in a.findings for e in f.evidence}
    assert ev["crp"].value_as_given == "0.8" and ev["crp"].unit_as_given == "mg/dL"
    assert ev["crp"].value_compared == "8" and ev["crp"].unit_compared == "mg/L"


@pytest.mark.parametrize("entry,words", [
    ({"value": 8, "unit": "g/dL"}, ["ferritin", "g/dL", "unit"]),
    ({"value": 8}, ["ferritin", "unit", "missing"]),
    ({"value": 8, "unit": ""}, ["ferritin", "unit", "missing"]),
    ({"value": "8 ug/L", "unit": "ug/L"}, ["ferritin", "8 ug/L", "not a number"]),
    ({"value": True, "unit": "ug/L"}, ["ferritin", "not a number"]),
    ({"value": "NaN", "unit": "ug/L"}, ["ferritin", "NaN"]),
    ({"value": 8, "unit": "µg/L"}, ["ferritin", "µg/L", "UCUM"]),
    ({"value": 8, "unit": "mmol/L"}, ["ferritin", "mmol/L"]),
    ({"value": 0.1, "unit": "ug/L"}, ["ferritin", "plausible", "0.5"]),
    ({"value": "<=", "unit": "ug/L"}, ["ferritin", "not a number"]),
    ({"value": 8, "unit": "ug/L", "colour": "red"}, ["ferritin", "colour"]),
    ({"value": 8, "unit": "ug/L", "comparator": "ad"}, ["ferritin", "comparator", "ad"]),
])
def test_bad_results_are_refused_naming_field_value_and_problem(entry, words):
    msg = refused(rec(ferritin=entry))
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)


def test_every_problem_of_a_record_is_reported_at_once():
    msg = refused({"id": "x", "patient": {"sex": "other", "age_years": 200},
                   "observations": {"ferritin": {"value": "x", "unit": "ug/L"}, "q": {"value": 1, "unit": "g/L"}}})
    for w in ("patient.sex", "patient.age_years", "observations.ferritin.value", "observations.q"):
        assert w in msg, msg


def test_refused_codes_of_other_measurands():
    for code, words in (("16695-9", ["whole BLOOD", "B12"]), ("24373-3", ["whole BLOOD", "ferritin"]),
                        ("2283-0", ["RED BLOOD CELLS"]), ("21000-5", ["RDW-SD"])):
        msg = refused(rec(**{code: {"value": 300, "unit": "pg/mL"}}))
        assert code in msg and all(w in msg for w in words), msg


def test_haemoglobin_in_g_per_litre_below_the_plausible_range_is_refused():
    msg = refused(rec(hemoglobin={"value": 12.5, "unit": "g/L"}))
    assert "12.5" in msg and "20" in msg and "250" in msg


def test_loinc_codes_are_accepted_as_keys():
    a = load_record(rec(**{"2276-4": {"value": 9, "unit": "ug/L"}, "14685-2": {"value": 300, "unit": "pmol/L"}}))
    assert set(a.results) == {"ferritin", "b12"}
    assert a.results["ferritin"].loinc == "2276-4"


def test_latest_result_counts_and_older_ones_are_kept_as_superseded():
    r = load_record(rec(ferritin=[{"value": 80, "unit": "ug/L", "time": "2026-01-05"},
                                  {"value": 9, "unit": "ug/L", "time": "2026-03-01T10:00:00Z"}]))
    assert r.results["ferritin"].compared_value == 9 and len(r.superseded) == 1
    nt = record_to_ntriples(r)
    assert "hasSupersededResult" in nt
    assert "IronDeficiency" in assess(r).codes


def test_several_results_without_times_are_refused():
    msg = refused(rec(ferritin=[{"value": 80, "unit": "ug/L"}, {"value": 9, "unit": "ug/L"}]))
    assert "ferritin" in msg and "latest" in msg


def test_censored_values_keep_their_comparator():
    r = load_record(rec(b12={"value": "<50", "unit": "pg/mL"}))
    b = r.results["b12"]
    assert (b.comparator, b.value_as_given, b.compared_value) == ("<", "<50", Decimal(50))


def test_tsat_is_derived_from_iron_and_tibc_and_says_so():
    r = load_record(rec(iron={"value": 40, "unit": "umol/L"}, tibc={"value": 45, "unit": "umol/L"}))
    t = r.results["tsat"]
    assert t.compared_value == Decimal("88.888889") and t.derived_from == ("iron", "tibc")
    assert any("derived" in n for n in r.notes)
    # ug/dL iron and TIBC give the same TSAT (same units cancel)
    r2 = load_record(rec(iron={"value": 100, "unit": "ug/dL"}, tibc={"value": 400, "unit": "ug/dL"}))
    assert r2.results["tsat"].compared_value == Decimal("25.000000")


def test_unknown_context_or_symptom_word_refuses_the_record_naming_it_the_nearest_words_and_aliases():
    # findings.md v2: an unknown word refuses the whole record, naming it, the nearest accepted words and their aliases
    with pytest.raises(InputError) as e:
        load_record({**rec(ferritin={"value": 9, "unit": "ug/L"}), "context": ["vegan-diet", "astrology"],
                     "symptoms": ["fatigue", "tinglng"]})
    msg = str(e.value)
    assert "'astrology'" in msg and "context[1]" in msg
    assert "'tinglng'" in msg and "symptoms[1]" in msg and "nearest accepted: tingling" in msg
    assert "pins-and-needles" in msg        # the aliases of the nearest word


def test_aliases_are_read_as_their_canonical_word():
    r = load_record({**rec(ferritin={"value": 9, "unit": "ug/L"}), "context": ["n2o", "autoimmune-gastritis", "celiac-disease"],
                     "symptoms": ["pins-and-needles", "falls", "melaena", "brain-fog", "tingling"]})
    assert r.contexts == ["coeliac-disease", "nitrous-oxide", "pernicious-anemia"]
    assert r.symptoms == ["balance-problems", "gi-bleeding", "memory-loss", "tingling"]


def test_pregnant_and_postpartum_is_refused():
    with pytest.raises(InputError, match="both pregnant and postpartum"):
        load_record({"id": "x", "patient": {"sex": "female", "age_years": 30, "pregnant": True}, "context": ["postpartum"]})


def test_ref_low_is_read_like_ref_high_and_written_to_the_patient_graph():
    r = load_record(rec(platelets={"value": 60, "unit": "10*3/uL", "ref_low": 150},
                        neutrophils={"value": "0.9", "unit": "10*9/L", "ref_low": "1.5", "ref_high": "7.5"}))
    p = r.results["platelets"]
    assert p.ref_low_as_given == "150" and p.ref_low_compared == Decimal(150) and p.compared_unit == "10*9/L"
    nt = record_to_ntriples(r)
    assert "referenceLowCompared" in nt and "referenceLowAsGiven" in nt
    with pytest.raises(InputError, match="ref_low"):
        load_record(rec(neutrophils={"value": 1, "unit": "10*9/L", "ref_low": 8, "ref_high": 7.5}))


def test_v2_analytes_egfr_censored_haemoglobin_in_mmol_per_litre_ferritin_range_rdw_code():
    r = load_record(rec(egfr={"value": ">90", "unit": "mL/min/{1.73_m2}"}, hemoglobin={"value": "7.45", "unit": "mmol/L"},
                        ferritin={"value": 450000, "unit": "ug/L"}, **{"30385-9": {"value": 15, "unit": "%"}}))
    assert r.results["egfr"].comparator == ">" and r.results["egfr"].compared_value == Decimal(90)
    assert r.results["hemoglobin"].compared_value == Decimal("120.0195")      # x 16.11 (docs/verification-v2.tsv, V1)
    assert r.results["rdw"].loinc == "30385-9"


def test_unusable_results_and_unmapped_codes_are_written_to_the_patient_graph():
    r = load_record(rec(ferritin={"value": 9, "unit": "ug/L"}))
    r.unusable_results["b12"] = "no value"
    r.unmapped_codes.append("http://snomed.info/sct|12345")
    nt = record_to_ntriples(r)
    assert "/result/b12/unusable> <https://w3id.org/b12kg/unusableReason> \"no value\"" in nt
    assert "hasUnusableResult" in nt and "B12Test" in nt
    assert "<https://w3id.org/b12kg/hasUnmappedClinicalCode> \"http://snomed.info/sct|12345\"" in nt


def test_pregnancy_not_stated_is_taken_as_not_pregnant_and_said():
    r = load_record(rec(ferritin={"value": 9, "unit": "ug/L"}))
    assert r.pregnant is None and any("not pregnant" in n for n in r.notes)
    assert "pregnancyStatusAssumed" in record_to_ntriples(r)


def test_pregnancy_recorded_with_sex_male_warns_and_applies_pregnancy_cut_offs():
    r = load_record({"id": "x", "patient": {"sex": "male", "age_years": 30, "pregnant": True, "gestational_weeks": 30},
                     "observations": {"hemoglobin": {"value": 108, "unit": "g/L"}, "tsat": {"value": 60, "unit": "%"}}})
    assert any("Pregnancy recorded with sex male" in n for n in r.notes)
    codes = assess(r).codes
    assert "Anemia" in codes                        # pregnancy cut-off 110 g/L applies
    assert "HighTransferrinSaturation" not in codes  # sex-dependent outside pregnancy: not assessed


def test_age_from_birth_date_is_exact_at_the_specimen_date():
    base = {"id": "x", "patient": {"sex": "female", "birth_date": "2011-03-15"},
            "observations": {"mcv": {"value": 70, "unit": "fL", "time": "2026-03-14"}}}
    assert load_record(base).age_years < 15
    assert "Microcytosis" not in assess(base).codes     # 14 years and 364 days: not assessed
    on_birthday = copy.deepcopy(base)
    on_birthday["observations"]["mcv"]["time"] = "2026-03-15"
    assert load_record(on_birthday).age_years == 15
    assert "Microcytosis" in assess(on_birthday).codes


# --- FHIR ----------------------------------------------------------------------------------------
def bundle():
    return load_json(BUNDLE.read_bytes())


# An Observation counts only when its subject is the Bundle's Patient (issue 11).
SUBJECT = {"reference": "Patient/p21"}


def test_fhir_bundle_gives_the_case_findings_with_age_at_the_specimen_date():
    r = load_record(bundle())
    assert r.sex == "female" and int(r.age_years) == 44 and r.id == "p21"
    assert r.results["b12"].compared_unit == "ng/L"


def test_fhir_status_other_than_final_amended_corrected_is_not_used_and_said():
    b = bundle()
    b["entry"][5]["resource"]["status"] = "preliminary"     # ferritin
    r = load_record(b)
    assert "ferritin" not in r.results
    assert any("preliminary" in n for n in r.notes)


def test_fhir_comparator_and_reference_range():
    b = bundle()
    b["entry"][4]["resource"]["valueQuantity"]["comparator"] = "<"
    r = load_record(b)
    assert r.results["b12"].comparator == "<"
    b = bundle()
    b["entry"].append({"resource": {"resourceType": "Observation", "id": "mma", "status": "final", "subject": SUBJECT,
                                    "code": {"coding": [{"system": "http://loinc.org", "code": "13964-2"}]},
                                    "effectiveDateTime": "2026-10-02T08:15:00+00:00",
                                    "valueQuantity": {"value": 450, "system": "http://unitsofmeasure.org", "code": "nmol/L"},
                                    "referenceRange": [{"high": {"value": 500, "system": "http://unitsofmeasure.org", "code": "nmol/L"}}]}})
    r = load_record(b)
    assert r.results["mma"].ref_high_compared == Decimal("0.5")
    assert "RaisedMMA" not in assess(r).codes


def test_fhir_unit_from_display_text_is_read_when_it_is_ucum_and_said():
    b = bundle()
    q = b["entry"][5]["resource"]["valueQuantity"]
    del q["code"], q["system"]                          # unit "ng/mL" left as display text only
    r = load_record(b)
    assert r.results["ferritin"].unit_as_given == "ng/mL"
    assert any("display text" in n and "ferritin" not in r.unusable_results for n in r.notes)
    q["unit"] = "nanograms per millilitre"              # not UCUM: the result is unusable, the patient assessed
    r = load_record(b)
    assert "ferritin" not in r.results and "ferritin" in r.unusable_results
    assert "Bundle.entry[5].resource(Observation/obs-5).valueQuantity.unit" in r.unusable_results["ferritin"]


def test_fhir_whole_blood_b12_code_is_listed_not_read_and_other_tests_are_listed_not_dropped():
    b = bundle()
    b["entry"][4]["resource"]["code"]["coding"][0]["code"] = "16695-9"
    r = load_record(b)
    assert "b12" not in r.results and any("16695-9" in n and "refused" in n for n in r.notes)
    b = bundle()
    b["entry"][6]["resource"]["code"]["coding"][0]["code"] = "2951-2"   # sodium: not a b12kg test
    r = load_record(b)
    assert "crp" not in r.results and any("2951-2" in n and "Not read" in n for n in r.notes)


def test_fhir_invalid_resource_is_listed_with_its_location_and_skipped():
    b = bundle()
    b["entry"][1]["resource"]["valueQuantity"]["value"] = "abc"
    r = load_record(b)
    assert "hemoglobin" not in r.results
    assert any(n.startswith("Bundle.entry[1].resource(Observation/obs-1) is not valid FHIR R4") and "abc" in n
               for n in r.notes)
    b = bundle()
    b["entry"][0]["resource"]["birthDate"] = "03/10/1982"   # an invalid Patient makes the record unusable
    msg = refused(b)
    assert "Bundle.entry[0].resource(Patient/p21).birthDate" in msg


def test_fhir_bundle_needs_exactly_one_patient():
    b = bundle()
    b["entry"].append(copy.deepcopy(b["entry"][0]))
    assert "exactly one Patient" in refused(b)


def test_fhir_holotc_by_b12kg_analyte_code():
    b = bundle()
    b["entry"].append({"resource": {"resourceType": "Observation", "id": "h", "status": "final", "subject": SUBJECT,
                                    "code": {"coding": [{"system": "https://w3id.org/b12kg/analyte", "code": "holotc"}]},
                                    "effectiveDateTime": "2026-10-02T08:15:00+00:00",
                                    "valueQuantity": {"value": 90, "system": "http://unitsofmeasure.org", "code": "pmol/L"}}})
    codes = assess(b).codes
    assert "IndeterminateB12" in codes and "VitaminB12Deficiency" not in codes


# --- RDF -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted((SHARED / "valid").glob("*.yaml"))[:12], ids=lambda p: p.stem)
def test_generated_patient_graphs_conform_to_the_shapes_and_round_trip(case, tmp_path):
    a = assess(case)
    g = parse_rdf(a.input_ntriples, "nt")
    validate_shapes(g)
    f = tmp_path / "p.nt"
    f.write_text(a.input_ntriples)
    b = assess(f)
    assert b.input_ntriples == a.input_ntriples and b.codes == a.codes


def test_rdf_violating_the_shapes_is_refused_naming_the_property():
    ttl = """@prefix b12: <https://w3id.org/b12kg/> .
    <urn:p> a b12:Patient ; b12:patientId "p" ; b12:sex b12:Female, b12:Male ;
        b12:hasResult <urn:r> .
    <urn:r> a b12:LabResult ; b12:valueAsGiven "9" ; b12:unitAsGiven "ug/L" ."""
    with pytest.raises(InputError) as e:
        from b12kg.inputs.rdf import record_from_graph
        record_from_graph(parse_rdf(ttl, "turtle"))
    msg = str(e.value)
    assert "sex" in msg and "test" in msg


def test_jsonld_with_remote_context_is_refused_before_parsing():
    doc = json.dumps({"@context": ["https://example.org/context.jsonld", {"b12": "https://w3id.org/b12kg/"}],
                      "@id": "urn:p", "@type": "b12:Patient"})
    with pytest.raises(InputError) as e:
        parse_rdf(doc, "json-ld")
    assert "example.org" in str(e.value) and "remote" in str(e.value)
