"""OMOP CDM v5.4 tables (CSV or Parquet, one file per table, the table name as the file name in
any case: PERSON.csv, measurement.parquet, ...): PERSON, MEASUREMENT and CONCEPT are required;
CONDITION_OCCURRENCE and DRUG_EXPOSURE are read for context when present.

Every concept id is read through the user's own CONCEPT table, never through a vocabulary of
b12kg's own:

- MEASUREMENT.measurement_concept_id -> (vocabulary_id, concept_code): LOINC gives the LOINC code,
  ``b12kg`` gives a b12kg analyte key (a local concept for a test with no verified LOINC code);
  value_as_number with unit_concept_id -> UCUM concept_code; operator_concept_id -> the
  operator's concept_name (``<``, ``<=``, ``=``, ``>``, ``>=``); value_as_concept_id -> its
  concept_name (qualitative results); range_low, range_high; measurement_datetime, else
  measurement_date (no zone: read as UTC).
- PERSON.gender_concept_id -> concept_name FEMALE or MALE (other concepts: gender unknown; 0: not
  recorded); birth_datetime, else year/month/day_of_birth (a partial date is refused by the FHIR
  reader, which needs the day).
- MEASUREMENT rows are Observations of the category laboratory: a concept b12kg does not read (or
  that CONCEPT does not hold) is a test it does not read, listed in the notes, never taken for a
  sign or symptom.
- CONDITION_OCCURRENCE.condition_concept_id and DRUG_EXPOSURE.drug_concept_id -> Conditions and
  MedicationStatements coded with the concept's vocabulary (SNOMED, ICD10CM, RxNorm, ATC, ...): a
  condition with no condition_end_date is active, one with an end date resolved (abatement); a
  drug exposure with no drug_exposure_end_date is active, one with an end date completed. As in
  FHIR, an active or completed medicine counts, a resolved condition does not.
- OBSERVATION (optional) -> Observations: observation_concept_id through CONCEPT; value_as_concept_id
  -> valueCodeableConcept (its vocabulary and code, e.g. LOINC 82810-3 pregnancy status with the
  answer LA15173-0 Pregnant), value_as_number with unit_concept_id -> valueQuantity (e.g. LOINC
  11884-4 gestational age in wk), value_as_string -> valueDateTime when it is an ISO date (e.g. LOINC
  93857-1 delivery date), else valueString; observation_datetime, else observation_date. A
  SNOMED CT finding with no value (a symptom) is read as the FHIR reader reads any Observation.

Each person's rows become one FHIR Bundle read by ``record_from_bundle``, so a measurement b12kg
cannot use (a concept the CONCEPT table does not hold, no UCUM unit, a refused code) is listed
with why by the FHIR reader; a row whose person_id PERSON does not hold is refused alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import B12kgError
from ..rdf.terms import ANALYTE_SYSTEM
from .bulk import ISO_DATE, Group, _q, bundle_text, connect, fhir_datetime, number, write_groups
from .long import TABLE_SUFFIXES, observation, patient, scan

REQUIRED = ("person", "measurement", "concept")
OPTIONAL = ("condition_occurrence", "drug_exposure", "observation")
VOCABULARY_SYSTEMS = {
    "LOINC": "http://loinc.org",
    "SNOMED": "http://snomed.info/sct",
    "RxNorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "ATC": "http://www.whocc.no/atc",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "UCUM": "http://unitsofmeasure.org",
    "b12kg": ANALYTE_SYSTEM,
}
OMOP_CONCEPT_SYSTEM = "https://w3id.org/b12kg/omop/concept"   # a concept the CONCEPT table does not hold
LABORATORY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]
# Row order within a person's Bundle: PERSON, MEASUREMENT, OBSERVATION, CONDITION_OCCURRENCE, DRUG_EXPOSURE
TABLE_ORD = {"observation": 1 << 40, "condition_occurrence": 2 << 40, "drug_exposure": 3 << 40}



def omop_tables(path: Path) -> dict[str, Path] | None:
    """The table files of an OMOP folder (name -> path), or None when it is not one."""
    if not path.is_dir():
        return None
    found: dict[str, Path] = {}
    for p in sorted(path.iterdir()):
        if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES:
            name = p.stem.lower()
            if name in REQUIRED + OPTIONAL:
                if name in found:
                    raise B12kgError(f"{path}: two files for the OMOP table {name.upper()}: {found[name].name}, {p.name}")
                found[name] = p
    return found if all(t in found for t in REQUIRED) else None


def plan_omop(path: Path, size: int, workdir: Path, chunks: int | None = None) -> list[Group]:
    tables = omop_tables(path)
    if tables is None:
        raise B12kgError(f"{path}: not an OMOP folder (PERSON, MEASUREMENT and CONCEPT tables)")
    con = connect(workdir)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE concept AS SELECT concept_id, concept_name, vocabulary_id, concept_code "
                    f"FROM {scan(tables['concept'])}")
        c = "(SELECT concept_id, concept_name, vocabulary_id, concept_code FROM concept)"
        parts = [
            f"""SELECT p.person_id AS pkey, 'PERSON' AS src, 0 AS ord,
                       to_json(struct_pack(p := p, gender := g.concept_name))::VARCHAR AS row
                FROM {scan(tables['person'])} p LEFT JOIN {c} g ON g.concept_id = p.gender_concept_id""",
            f"""SELECT m.person_id AS pkey, 'MEASUREMENT' AS src, row_number() OVER () AS ord,
                       to_json(struct_pack(m := m, test := t, unit := u, op := o.concept_name, answer := a.concept_name))::VARCHAR AS row
                FROM {scan(tables['measurement'])} m
                LEFT JOIN {c} t ON t.concept_id = m.measurement_concept_id
                LEFT JOIN {c} u ON u.concept_id = m.unit_concept_id
                LEFT JOIN {c} o ON o.concept_id = m.operator_concept_id
                LEFT JOIN {c} a ON a.concept_id = m.value_as_concept_id""",
        ]
        for table, concept_col in (("observation", "observation_concept_id"),
                                   ("condition_occurrence", "condition_concept_id"), ("drug_exposure", "drug_concept_id")):
            if table in tables:
                extra = ("LEFT JOIN {c} u ON u.concept_id = x.unit_concept_id "
                         "LEFT JOIN {c} a ON a.concept_id = x.value_as_concept_id").format(c=c) if table == "observation" else ""
                packed = "x := x, c := k" + (", unit := u, answer := a" if table == "observation" else "")
                parts.append(f"""SELECT x.person_id AS pkey, {_q(table.upper())} AS src,
                           {TABLE_ORD[table]} + row_number() OVER () AS ord,
                           to_json(struct_pack({packed}))::VARCHAR AS row
                    FROM {scan(tables[table])} x LEFT JOIN {c} k ON k.concept_id = x.{concept_col} {extra}""")
        rows = " UNION ALL ".join(f"({p})" for p in parts)
        return write_groups(con, rows, f"SELECT person_id AS pkey FROM {scan(tables['person'])}", size, workdir, chunks)
    finally:
        con.close()


def _coding(concept: dict | None, concept_id: str | None) -> dict:
    if concept and concept.get("vocabulary_id") is not None:
        system = VOCABULARY_SYSTEMS.get(concept["vocabulary_id"],
                                        f"https://w3id.org/b12kg/omop/vocabulary/{concept['vocabulary_id']}")
        coding = {"system": system, "code": concept.get("concept_code") or ""}
        if concept.get("concept_name"):
            coding["display"] = concept["concept_name"]
        return coding
    return {"system": OMOP_CONCEPT_SYSTEM, "code": concept_id or "0"}


def _person(pkey: str, cells: dict) -> dict:
    p = cells.get("p") or {}
    gender = (cells.get("gender") or "").strip().upper()
    gid = (p.get("gender_concept_id") or "").strip()
    sex = {"FEMALE": "female", "MALE": "male"}.get(gender, None if gid in ("", "0") else "unknown")
    birth = (p.get("birth_datetime") or "").strip()
    if birth:
        birth = birth[:10]
    else:
        y, m, d = ((p.get(k) or "").strip() for k in ("year_of_birth", "month_of_birth", "day_of_birth"))
        birth = "-".join(x for x in (y, m.zfill(2) if m else "", d.zfill(2) if d and m else "") if x) if y else ""
    return patient(pkey, sex, birth or None)


def _measurement(pkey: str, ord_: int, cells: dict) -> dict:
    m = cells.get("m") or {}
    test = cells.get("test")
    coding = _coding(test, m.get("measurement_concept_id"))
    unit = (cells.get("unit") or {}).get("concept_code") if (cells.get("unit") or {}).get("vocabulary_id") == "UCUM" else None
    op = cells.get("op")
    value = m.get("value_as_number")
    if (value is None or not str(value).strip()) and cells.get("answer"):
        value = cells["answer"]
    row = {"value": value, "comparator": op.strip() if op else None, "unit": unit,
           "time": m.get("measurement_datetime") or m.get("measurement_date"),
           "ref_low": m.get("range_low"), "ref_high": m.get("range_high")}
    obs = observation(pkey, ord_, row, system=coding["system"], code=coding["code"])
    obs["category"] = LABORATORY
    if op is None and (m.get("operator_concept_id") or "0").strip() not in ("", "0"):
        # an operator the CONCEPT table does not name: the value is not read as exact
        obs.pop("valueQuantity", None)
        obs["valueString"] = f"operator concept {m['operator_concept_id']} not in CONCEPT"
    if m.get("unit_concept_id") and unit is None and "valueQuantity" in obs and str(m["unit_concept_id"]).strip() not in ("", "0"):
        obs["valueQuantity"]["unit"] = f"unit concept {m['unit_concept_id']} (not a UCUM concept in CONCEPT)"
    return obs


def _cell(d: dict, name: str) -> str | None:
    v = d.get(name)
    return str(v).strip() or None if v is not None else None


def _observation(pkey: str, ord_: int, cells: dict) -> dict:
    """An OMOP OBSERVATION row as a FHIR Observation (its value as concept, number or text)."""
    x = cells.get("x") or {}
    coding = _coding(cells.get("c"), _cell(x, "observation_concept_id"))
    obs: dict = {"resourceType": "Observation", "id": f"o{_cell(x, 'observation_id') or ord_}", "status": "final",
                 "code": {"coding": [coding]}}
    when = fhir_datetime(_cell(x, "observation_datetime") or _cell(x, "observation_date"))
    if when:
        obs["effectiveDateTime"] = when
    value, text = number(_cell(x, "value_as_number")), _cell(x, "value_as_string")
    if (cells.get("answer") or {}).get("concept_id") is not None or _cell(x, "value_as_concept_id") not in (None, "0"):
        obs["valueCodeableConcept"] = {"coding": [_coding(cells.get("answer"), _cell(x, "value_as_concept_id"))]}
    elif value is not None:
        unit = cells.get("unit") or {}
        obs["valueQuantity"] = {"value": value, **({"unit": unit["concept_code"], "system": VOCABULARY_SYSTEMS["UCUM"],
                                                    "code": unit["concept_code"]}
                                                   if unit.get("vocabulary_id") == "UCUM" else {})}
    elif text is not None:
        obs["valueDateTime" if ISO_DATE.fullmatch(text) else "valueString"] = (
            fhir_datetime(text) if ISO_DATE.fullmatch(text) else text)
    return obs


def _condition_or_drug(src: str, ord_: int, cells: dict) -> dict:
    x = cells.get("x") or {}
    if src == "CONDITION_OCCURRENCE":
        start, end = (fhir_datetime(_cell(x, f"condition_{k}_datetime") or _cell(x, f"condition_{k}_date"))
                      for k in ("start", "end"))
        res = {"resourceType": "Condition", "id": f"c{_cell(x, 'condition_occurrence_id') or ord_}",
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                              "code": "resolved" if end else "active"}]},
               "code": {"coding": [_coding(cells.get("c"), _cell(x, "condition_concept_id"))]}}
        if start:
            res["onsetDateTime"] = start
        if end:
            res["abatementDateTime"] = end
        return res
    start, end = (fhir_datetime(_cell(x, f"drug_exposure_{k}_datetime") or _cell(x, f"drug_exposure_{k}_date"))
                  for k in ("start", "end"))
    res = {"resourceType": "MedicationStatement", "id": f"d{_cell(x, 'drug_exposure_id') or ord_}",
           "status": "completed" if end else "active",
           "medicationCodeableConcept": {"coding": [_coding(cells.get("c"), _cell(x, "drug_concept_id"))]}}
    if start or end:
        res["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return res


def omop_bundle(pkey: str, rows: list[dict]) -> str:
    resources: list[dict] = []
    for r in rows:
        cells = json.loads(r["row"])
        if r["src"] == "PERSON":
            resources.append(_person(pkey, cells))
            continue
        if r["src"] == "MEASUREMENT":
            res = _measurement(pkey, r["ord"], cells)
        elif r["src"] == "OBSERVATION":
            res = _observation(pkey, r["ord"], cells)
        else:
            res = _condition_or_drug(r["src"], r["ord"], cells)
        if pkey:
            res["subject"] = {"reference": f"Patient/{pkey}"}
        resources.append(res)
    return bundle_text(resources)
