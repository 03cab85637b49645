"""Test-only: a PatientRecord from a v2 case dict (shared/cases/README.md), for the subset of the
format the shared cases and the v2 vignettes use, without the b12kg loader (so the oracle can be
checked before the v2 loader exists, and independently of it). Units are converted with the
factors of shared/spec/analytes.tsv, exactly, with Decimal; aliases of findings.md v2 resolved.
Not a validator: it trusts the case."""

from __future__ import annotations

import re
from decimal import Decimal

from b12kg.inputs.record import PatientRecord, Result

from . import reference_numpy as rn

# LOINC codes of analytes.tsv that cases may use as keys.
LOINC = {"718-7": "hemoglobin", "59260-0": "hemoglobin", "20509-6": "hemoglobin", "787-2": "mcv", "30428-7": "mcv",
         "788-0": "rdw", "30385-9": "rdw", "14685-2": "b12", "2132-9": "b12", "2276-4": "ferritin",
         "20567-4": "ferritin", "2284-8": "folate", "14732-2": "folate", "1988-5": "crp", "30522-7": "crp",
         "2685-6": "agp", "2502-3": "tsat", "2498-4": "iron", "2500-7": "tibc", "13964-2": "mma",
         "13965-9": "homocysteine", "4679-7": "reticulocytes", "2532-0": "ldh", "33914-3": "egfr",
         "62238-1": "egfr", "98979-8": "egfr", "777-3": "platelets", "751-8": "neutrophils"}

# (key, unit as given) -> (factor, compared unit): analytes.tsv; B12 and folate are compared in
# their own unit when a cut-off states it (profile-default.md, 'How values meet cut-offs').
CONVERT = {
    ("hemoglobin", "g/dL"): (Decimal(10), "g/L"), ("hemoglobin", "mmol/L"): (Decimal("16.11"), "g/L"),
    ("b12", "pg/mL"): (Decimal(1), "ng/L"), ("b12", "ng/L"): (Decimal(1), "ng/L"),
    ("ferritin", "ng/mL"): (Decimal(1), "ug/L"),
    ("folate", "ug/L"): (Decimal(1), "ng/mL"),
    ("crp", "mg/dL"): (Decimal(10), "mg/L"), ("agp", "mg/dL"): (Decimal("0.01"), "g/L"),
    ("iron", "ug/dL"): (Decimal("0.1791"), "umol/L"), ("tibc", "ug/dL"): (Decimal("0.1791"), "umol/L"),
    ("mma", "nmol/L"): (Decimal("0.001"), "umol/L"),
    ("platelets", "10*3/uL"): (Decimal(1), "10*9/L"), ("neutrophils", "10*3/uL"): (Decimal(1), "10*9/L"),
}

ALIASES = {
    # symptoms
    "paraesthesia": "tingling", "paresthesia": "tingling", "pins-and-needles": "tingling",
    "unsteady-gait": "gait-disturbance", "ataxia": "gait-disturbance", "falls": "balance-problems",
    "cognitive-difficulty": "memory-loss", "brain-fog": "memory-loss", "blurred-vision": "visual-disturbance",
    "depression": "mood-change", "melaena": "gi-bleeding", "black-stools": "gi-bleeding",
    "haematemesis": "gi-bleeding", "rectal-bleeding": "gi-bleeding", "poor-feeding": "failure-to-thrive",
    # contexts
    "nitrous-oxide-use": "nitrous-oxide", "n2o": "nitrous-oxide", "pernicious-anaemia": "pernicious-anemia",
    "autoimmune-gastritis": "pernicious-anemia", "celiac-disease": "coeliac-disease",
    "on-hydroxocobalamin": "on-b12-therapy",
}
VALUE_RE = re.compile(r"^\s*(<=|>=|<|>)?\s*([-+]?[0-9.]+)\s*$")


def _word(w: str, vocabulary) -> str:
    w = ALIASES.get(w, w)
    if w not in vocabulary:
        raise ValueError(f"unknown word {w!r}")
    return w


def record_from_case(case: dict) -> PatientRecord:
    p = case.get("patient") or {}
    rec = PatientRecord(id=case["id"], sex=p.get("sex"), profile=case.get("profile") or "default")
    if p.get("age_years") is not None:
        rec.age_years = Decimal(str(p["age_years"]))
    if p.get("pregnant") is not None:
        rec.pregnant = bool(p["pregnant"])
    if p.get("gestational_weeks") is not None:
        rec.gestational_weeks = Decimal(str(p["gestational_weeks"]))
    for key, obs in (case.get("observations") or {}).items():
        key = LOINC.get(str(key), str(key))
        if key == "if_antibody":
            rec.results[key] = Result(key=key, test_iri="", source="case", value_as_given=str(obs["value"]),
                                      qualitative=str(obs["value"]).lower())
            continue
        if key not in rn.ANALYTE_UNITS:
            continue                                           # mch and the like: not read by findings.md
        m = VALUE_RE.match(str(obs["value"]))
        if m is None:
            raise ValueError(f"{key}: {obs['value']!r}")
        comparator = m.group(1) or "="
        value = Decimal(m.group(2))
        unit = obs["unit"]
        factor, compared_unit = CONVERT.get((key, unit), (Decimal(1), unit))
        if compared_unit not in rn.ANALYTE_UNITS[key]:
            raise ValueError(f"{key}: unit {unit!r} not handled by the adapter")

        def conv(x):
            return None if x is None else Decimal(str(x)) * factor

        rec.results[key] = Result(key=key, test_iri="", source="case", value_as_given=str(obs["value"]),
                                  unit_as_given=unit, comparator=comparator, value=value,
                                  compared_value=value * factor, compared_unit=compared_unit,
                                  ref_high_as_given=None if obs.get("ref_high") is None else str(obs["ref_high"]),
                                  ref_high_compared=conv(obs.get("ref_high")),
                                  ref_low_as_given=None if obs.get("ref_low") is None else str(obs["ref_low"]),
                                  ref_low_compared=conv(obs.get("ref_low")))
    if "tsat" not in rec.results and "iron" in rec.results and "tibc" in rec.results:
        iron, tibc = rec.results["iron"], rec.results["tibc"]
        if iron.comparator == "=" and tibc.comparator == "=":
            rec.results["tsat"] = Result(key="tsat", test_iri="", source="derived", value_as_given="",
                                         compared_value=iron.compared_value / tibc.compared_value * 100,
                                         compared_unit="%", derived_from=("iron", "tibc"))
    rec.symptoms = [_word(w, rn.SYMPTOMS) for w in case.get("symptoms") or ()]
    rec.contexts = [_word(w, rn.CONTEXTS) for w in case.get("context") or ()]
    return rec


def case_from_fhir_bundle(bundle: dict, case_id: str) -> dict:
    """The case dict of a simple FHIR R4 Bundle (Patient and final Observations coded in LOINC
    with a valueQuantity; the latest per analyte), for p21 only: test-only, not the loader."""
    from datetime import date, datetime

    patient: dict = {}
    birth = None
    observations: dict = {}
    times: dict = {}
    latest = None
    for entry in bundle.get("entry") or ():
        r = entry.get("resource") or {}
        if r.get("resourceType") == "Patient":
            if r.get("gender") in ("female", "male"):
                patient["sex"] = r["gender"]
            if r.get("birthDate"):
                birth = date.fromisoformat(r["birthDate"])
        elif r.get("resourceType") == "Observation" and r.get("status") in ("final", "amended", "corrected"):
            codes = [c.get("code") for c in (r.get("code") or {}).get("coding") or ()
                     if c.get("system") == "http://loinc.org"]
            key = next((LOINC[c] for c in codes if c in LOINC), None)
            q = r.get("valueQuantity")
            if key is None or q is None:
                continue
            when = datetime.fromisoformat(r["effectiveDateTime"]) if r.get("effectiveDateTime") else None
            if key in times and when is not None and times[key] is not None and when <= times[key]:
                continue
            value = f"{q.get('comparator', '')}{q['value']}"
            obs = {"value": value, "unit": q.get("code") or q.get("unit")}
            for rr in r.get("referenceRange") or ():
                if "high" in rr:
                    obs["ref_high"] = rr["high"]["value"]
                if "low" in rr:
                    obs["ref_low"] = rr["low"]["value"]
            observations[key] = obs
            times[key] = when
            if when is not None and (latest is None or when > latest):
                latest = when
    if birth is not None and latest is not None:
        d = latest.date()
        years = d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))
        patient["age_years"] = years
    return {"id": case_id, "patient": patient, "observations": observations}
