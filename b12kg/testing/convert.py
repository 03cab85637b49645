"""Case records (the format ``synth.generate`` yields) written as the inputs real systems export,
for the tests and the benchmark: one FHIR R4 Bundle per patient, a FHIR bulk-data export folder
(one NDJSON file per resource type), a long lab table with a person table (one row per result, as
SQL-on-FHIR v2 views give), and OMOP CDM v5.4 tables with their own CONCEPT table.

The same patient is the same data in every form: a Bundle holds a Patient (gender, birthDate) and
one Observation per result (LOINC code, or the analyte key under b12kg's analyte system for tests
with no verified LOINC code; the value with its comparator and UCUM unit; the laboratory's upper
limit; the specimen time). With ``context=True`` (Bundles, bulk folders, OMOP) the case's pregnancy
(LOINC 82810-3 with its answer, 11884-4 gestational age in wk) and every context word and symptom
that has a mapped code (the ontology's, ``word_codes``) are written too: a Condition, or a
MedicationStatement for an RxNorm or ATC code (in OMOP: OBSERVATION, CONDITION_OCCURRENCE with no end
date, DRUG_EXPOSURE). ``uncarried_words`` names the words with no mapped
code, which no FHIR form can say; the case's profile is never carried.

OMOP concept ids: gender and the value operators are the OMOP standard concepts (gender 8507
MALE, 8532 FEMALE; operators 4171756 '<', 4171754 '<=', 4172703 '=', 4172704 '>', 4171755 '>=');
every other concept (LOINC tests, UCUM units, qualitative answers, the b12kg analyte keys) gets a
local id above 2,000,000,000, the range the OMOP custom-concept convention leaves to local
vocabularies. The reader maps every id through the CONCEPT table written alongside, never through
a vocabulary of its own, so real ids and local ids read alike."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ..kb import vocabulary
from ..rdf.terms import ANALYTE_SYSTEM

__all__ = ["case_bundle", "uncarried_words", "word_codes", "write_bundles", "write_bulk", "write_long", "write_omop", "SPECIMEN_TIME"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SPECIMEN_TIME = datetime(2026, 1, 15, 9, 0, tzinfo=timezone.utc)
COMPARATORS = ("<=", ">=", "<", ">")
# OMOP standard concepts (OHDSI vocabularies; see the module docstring)
GENDER_CONCEPT = {"male": (8507, "MALE", "M"), "female": (8532, "FEMALE", "F")}
OPERATOR_CONCEPT = {"<": 4171756, "<=": 4171754, "=": 4172703, ">": 4172704, ">=": 4171755}
LOCAL_CONCEPT_BASE = 2_000_000_001


def _text(v: Any) -> str:
    if isinstance(v, bool):
        raise TypeError("a boolean is not a result value")
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _results(case: Mapping) -> Iterator[dict]:
    """Each result of a case: analyte info, code system and code, value text, comparator, unit,
    upper limit text, time."""
    vocab = vocabulary()
    for name, entries in (case.get("observations") or {}).items():
        info = vocab.tests_by_key.get(name) or vocab.tests_by_loinc.get(name)
        if info is None:
            raise ValueError(f"{name}: not an analyte key or LOINC code of the ontology")
        if name in vocab.tests_by_loinc:
            system, code = LOINC, name
        elif info.preferred_loinc or info.loinc:
            system, code = LOINC, info.preferred_loinc or info.loinc[0]
        else:
            system, code = ANALYTE_SYSTEM, info.key
        for e in entries if isinstance(entries, list) else [entries]:
            if not isinstance(e, Mapping):
                e = {"value": e}
            raw = _text(e["value"])
            comparator = None
            if not info.qualitative:
                for c in COMPARATORS:
                    if raw.startswith(c):
                        comparator, raw = c, raw[len(c):].strip()
                        break
            t = e.get("time")
            when = SPECIMEN_TIME if t is None else (t if isinstance(t, datetime) else datetime.fromisoformat(str(t)))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            yield {"key": info.key, "qualitative": info.qualitative, "system": system, "code": code, "value": raw,
                   "comparator": comparator, "unit": e.get("unit"),
                   "ref_high": None if e.get("ref_high") is None else _text(e["ref_high"]), "time": when}


def _birth_date(case: Mapping) -> date | None:
    p = case.get("patient") or {}
    if p.get("birth_date"):
        return date.fromisoformat(str(p["birth_date"]))
    if p.get("age_years") is None:
        return None
    return SPECIMEN_TIME.date() - timedelta(days=round(float(Decimal(str(p["age_years"]))) * 365.25))


class _Num(str):
    """A JSON number written exactly as its text (json.dumps would write a float's repr)."""


def dumps(doc: Any) -> str:
    """JSON text with ``_Num`` values written as numbers, verbatim."""
    if isinstance(doc, _Num):
        return str(doc)
    if isinstance(doc, Mapping):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in doc.items()) + "}"
    if isinstance(doc, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in doc) + "]"
    return json.dumps(doc, ensure_ascii=False)


def _observation(pid: str, i: int, r: dict) -> dict:
    obs: dict[str, Any] = {"resourceType": "Observation", "id": f"{pid}-{i}", "status": "final",
                           "code": {"coding": [{"system": r["system"], "code": r["code"]}]},
                           "subject": {"reference": f"Patient/{pid}"},
                           "effectiveDateTime": r["time"].isoformat()}
    if r["qualitative"]:
        obs["valueString"] = r["value"]
        return obs
    q: dict[str, Any] = {"value": _Num(r["value"])}
    if r["comparator"]:
        q["comparator"] = r["comparator"]
    if r["unit"] is not None:
        q.update({"unit": r["unit"], "system": UCUM, "code": r["unit"]})
    obs["valueQuantity"] = q
    if r["ref_high"] is not None:
        high: dict[str, Any] = {"value": _Num(r["ref_high"])}
        if r["unit"] is not None:
            high.update({"unit": r["unit"], "system": UCUM, "code": r["unit"]})
        obs["referenceRange"] = [{"high": high}]
    return obs


def _patient(pid: str, case: Mapping) -> dict:
    p = case.get("patient") or {}
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if p.get("sex") in ("female", "male"):
        res["gender"] = p["sex"]
    b = _birth_date(case)
    if b is not None:
        res["birthDate"] = b.isoformat()
    return res


_SYSTEM_ORDER = (SNOMED, RXNORM, ATC)


def word_codes() -> dict[str, str]:
    """Each context word and symptom with a mapped code -> one such code ("system|code"): SNOMED CT
    first, then RxNorm, then ATC, the lowest code of the first system that has one."""
    out: dict[str, tuple] = {}
    for key, (_kind, word) in vocabulary().clinical_codes.items():
        system, code = key.split("|", 1)
        rank = (_SYSTEM_ORDER.index(system) if system in _SYSTEM_ORDER else len(_SYSTEM_ORDER), code)
        if word not in out or rank < out[word][0]:
            out[word] = (rank, key)
    return {w: k for w, (_r, k) in out.items()}


def _words(case: Mapping) -> list[tuple[str, str]]:
    """(kind, canonical word) of a case's context words and symptoms, aliases resolved."""
    vocab = vocabulary()
    return ([("context", vocab.context_aliases.get(w, w)) for w in case.get("context") or []]
            + [("symptom", vocab.symptom_aliases.get(w, w)) for w in case.get("symptoms") or []])


def uncarried_words(case: Mapping) -> list[str]:
    """The case's context words and symptoms that no mapped code says (context=True leaves them out)."""
    codes = word_codes()
    return [w for _k, w in _words(case) if w not in codes]


def _context_resources(pid: str, case: Mapping, results: list[dict]) -> list[dict]:
    when = max((r["time"] for r in results), default=SPECIMEN_TIME).isoformat()
    out: list[dict] = []
    p = case.get("patient") or {}
    weeks = p.get("gestational_weeks")
    pregnant = True if weeks is not None else p.get("pregnant")
    if pregnant is not None:
        out.append({"resourceType": "Observation", "id": f"{pid}-pregnancy", "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "82810-3"}]}, "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": when, "valueCodeableConcept": {"coding": [
                        {"system": LOINC, "code": "LA15173-0" if pregnant else "LA26683-5"}]}})
    if weeks is not None:
        out.append({"resourceType": "Observation", "id": f"{pid}-gestation", "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "11884-4"}]}, "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": when, "valueQuantity": {"value": _Num(_text(weeks)), "unit": "wk",
                                                                 "system": UCUM, "code": "wk"}})
    codes = word_codes()
    for i, (_kind, word) in enumerate(_words(case)):
        if word not in codes:
            continue
        system, code = codes[word].split("|", 1)
        coding = {"coding": [{"system": system, "code": code}]}
        if system in (RXNORM, ATC):
            out.append({"resourceType": "MedicationStatement", "id": f"{pid}-m{i}", "status": "active",
                        "medicationCodeableConcept": coding, "subject": {"reference": f"Patient/{pid}"}})
        else:
            out.append({"resourceType": "Condition", "id": f"{pid}-c{i}", "subject": {"reference": f"Patient/{pid}"},
                        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
                        "code": coding})
    return out


def case_resources(case: Mapping, pid: str, *, context: bool = False) -> list[dict]:
    """The Patient and its Observations; with ``context``, its pregnancy and coded words too."""
    results = list(_results(case))
    out = [_patient(pid, case)] + [_observation(pid, i, r) for i, r in enumerate(results)]
    return out + _context_resources(pid, case, results) if context else out


def case_bundle(case: Mapping, pid: str, *, context: bool = False) -> dict:
    """One FHIR R4 Bundle (type collection) for a case; ``dumps`` writes it with exact numbers."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in case_resources(case, pid, context=context)]}


def _ids(cases: Iterable[Mapping]) -> Iterator[tuple[str, Mapping]]:
    for i, case in enumerate(cases):
        yield str(i + 1), case


def write_bundles(cases: Iterable[Mapping], path: str | Path, *, context: bool = False) -> int:
    """An NDJSON file of Bundles, one a line; patient ids 1, 2, ... (as in every other form)."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for pid, case in _ids(cases):
            fh.write(dumps(case_bundle(case, pid, context=context)) + "\n")
            n += 1
    return n


def write_bulk(cases: Iterable[Mapping], folder: str | Path, *, context: bool = False) -> int:
    """A bulk-data export folder: one NDJSON file per resource type (Patient.ndjson,
    Observation.ndjson, and with ``context`` Condition.ndjson and MedicationStatement.ndjson)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    files: dict[str, Any] = {}
    try:
        for kind in ("Patient", "Observation") + (("Condition", "MedicationStatement") if context else ()):
            files[kind] = open(folder / f"{kind}.ndjson", "w", encoding="utf-8")
        for pid, case in _ids(cases):
            for r in case_resources(case, pid, context=context):
                files[r["resourceType"]].write(dumps(r) + "\n")
            n += 1
    finally:
        for fh in files.values():
            fh.close()
    return n


LONG_LAB_COLUMNS = ("patient_id", "loinc", "analyte", "value", "comparator", "unit", "time", "ref_low", "ref_high")
LONG_PERSON_COLUMNS = ("patient_id", "sex", "birth_date")


def write_long(cases: Iterable[Mapping], folder: str | Path) -> int:
    """labs.csv (one row per result) and persons.csv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(folder / "labs.csv", "w", newline="", encoding="utf-8") as lf, \
            open(folder / "persons.csv", "w", newline="", encoding="utf-8") as pf:
        lw, pw = csv.writer(lf), csv.writer(pf)
        lw.writerow(LONG_LAB_COLUMNS)
        pw.writerow(LONG_PERSON_COLUMNS)
        for pid, case in _ids(cases):
            sex = (case.get("patient") or {}).get("sex")
            b = _birth_date(case)
            pw.writerow([pid, sex if sex in ("female", "male") else "", b.isoformat() if b else ""])
            for r in _results(case):
                lw.writerow([pid, r["code"] if r["system"] == LOINC else "", r["key"] if r["system"] != LOINC else "",
                             r["value"], r["comparator"] or "", r["unit"] or "", r["time"].isoformat(), "",
                             r["ref_high"] or ""])
            n += 1
    return n


OMOP_TABLES = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
               "race_concept_id", "ethnicity_concept_id"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_date",
                    "measurement_datetime", "measurement_type_concept_id", "operator_concept_id", "value_as_number",
                    "value_as_concept_id", "unit_concept_id", "range_low", "range_high"),
    "concept": ("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
                "concept_code", "valid_start_date", "valid_end_date", "invalid_reason"),
    "observation": ("observation_id", "person_id", "observation_concept_id", "observation_date", "observation_datetime",
                    "observation_type_concept_id", "value_as_number", "value_as_string", "value_as_concept_id",
                    "unit_concept_id"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                             "condition_end_date", "condition_type_concept_id"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                      "drug_exposure_end_date", "drug_type_concept_id"),
}


_OMOP_VOCABULARY = {SNOMED: "SNOMED", RXNORM: "RxNorm", ATC: "ATC", LOINC: "LOINC", UCUM: "UCUM"}


def _omop_context(pid: str, case: Mapping, results: list[dict], concept, out: dict[str, list]) -> None:
    """The case's pregnancy and coded words as OBSERVATION, CONDITION_OCCURRENCE and DRUG_EXPOSURE rows."""
    for res in _context_resources(pid, case, results):
        kind = res["resourceType"]
        c = (res.get("code") or res.get("medicationCodeableConcept"))["coding"][0]
        cid = concept(_OMOP_VOCABULARY[c["system"]], c["code"], c["code"],
                      {"Observation": "Observation", "Condition": "Condition"}.get(kind, "Drug"), "Clinical")
        n = sum(len(v) for v in out.values()) + 1
        if kind == "Observation":
            when = datetime.fromisoformat(res["effectiveDateTime"])
            value, answer, unit = "", "", ""
            if "valueCodeableConcept" in res:
                a = res["valueCodeableConcept"]["coding"][0]
                answer = concept(_OMOP_VOCABULARY[a["system"]], a["code"], a["code"], "Meas Value", "Answer")
            else:
                value = str(res["valueQuantity"]["value"])
                unit = concept("UCUM", res["valueQuantity"]["code"], res["valueQuantity"]["code"], "Unit", "Unit")
            out["observation"].append([n, pid, cid, when.date().isoformat(), when.strftime("%Y-%m-%d %H:%M:%S"), 0,
                                       value, "", answer, unit])
        elif kind == "Condition":
            out["condition_occurrence"].append([n, pid, cid, "2020-01-01", "", 0])
        else:
            out["drug_exposure"].append([n, pid, cid, "2020-01-01", "", 0])


def write_omop(cases: Iterable[Mapping], folder: str | Path, *, context: bool = False) -> int:
    """PERSON.csv, MEASUREMENT.csv and CONCEPT.csv (OMOP CDM v5.4 columns); with ``context`` also
    OBSERVATION.csv (pregnancy), CONDITION_OCCURRENCE.csv and DRUG_EXPOSURE.csv (coded words),
    holding what ``case_bundle(..., context=True)`` holds."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    concepts: dict[tuple[str, str], int] = {}
    rows: list[list] = []

    def concept(vocab: str, code: str, name: str, domain: str, cls: str) -> int:
        k = (vocab, code)
        if k not in concepts:
            concepts[k] = LOCAL_CONCEPT_BASE + len(concepts)
            rows.append([concepts[k], name, domain, vocab, cls, "", code, "1970-01-01", "2099-12-31", ""])
        return concepts[k]

    n = 0
    mid = 0
    extra: dict[str, list] = {"observation": [], "condition_occurrence": [], "drug_exposure": []}
    with open(folder / "PERSON.csv", "w", newline="", encoding="utf-8") as pf, \
            open(folder / "MEASUREMENT.csv", "w", newline="", encoding="utf-8") as mf:
        pw, mw = csv.writer(pf), csv.writer(mf)
        pw.writerow(OMOP_TABLES["person"])
        mw.writerow(OMOP_TABLES["measurement"])
        for pid, case in _ids(cases):
            sex = (case.get("patient") or {}).get("sex")
            b = _birth_date(case)
            pw.writerow([pid, GENDER_CONCEPT[sex][0] if sex in GENDER_CONCEPT else 0,
                         b.year if b else "", b.month if b else "", b.day if b else "", 0, 0])
            results = list(_results(case))
            if context:
                _omop_context(pid, case, results, concept, extra)
            for r in results:
                mid += 1
                if r["system"] == LOINC:
                    test = concept("LOINC", r["code"], r["key"], "Measurement", "Lab Test")
                else:
                    test = concept("b12kg", r["code"], r["key"], "Measurement", "Lab Test")
                unit = concept("UCUM", r["unit"], r["unit"], "Unit", "Unit") if r["unit"] else 0
                if r["qualitative"]:
                    value, answer = "", concept("b12kg-answer", r["value"], r["value"], "Meas Value", "Answer")
                else:
                    value, answer = r["value"], 0
                op = OPERATOR_CONCEPT[r["comparator"]] if r["comparator"] else ""
                mw.writerow([mid, pid, test, r["time"].date().isoformat(), r["time"].strftime("%Y-%m-%d %H:%M:%S"),
                             0, op, value, answer, unit, "", r["ref_high"] or ""])
            n += 1
    with open(folder / "CONCEPT.csv", "w", newline="", encoding="utf-8") as cf:
        w = csv.writer(cf)
        w.writerow(OMOP_TABLES["concept"])
        for sex, (cid, name, code) in GENDER_CONCEPT.items():
            w.writerow([cid, name, "Gender", "Gender", "Gender", "S", code, "1970-01-01", "2099-12-31", ""])
        for sym, cid in OPERATOR_CONCEPT.items():
            w.writerow([cid, sym, "Meas Value Operator", "SNOMED", "Qualifier Value", "S", "", "1970-01-01",
                        "2099-12-31", ""])
        w.writerows(rows)
    for table, table_rows in extra.items() if context else ():
        with open(folder / f"{table.upper()}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(OMOP_TABLES[table])
            w.writerows(table_rows)
    return n
