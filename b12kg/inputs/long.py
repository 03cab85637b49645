"""A long lab table, one row per result (as SQL-on-FHIR v2 views give), with an optional person
table; CSV or Parquet. Each patient's rows become one FHIR Bundle (a Patient and one Observation
per row) read by ``record_from_bundle``, so a row b12kg cannot use is listed by the FHIR reader
with why, as for any Bundle.

Lab table columns: ``patient_id``; ``loinc`` (a LOINC code) or ``analyte`` (a b12kg analyte key,
for tests with no verified LOINC code); ``value`` (a number, a comparator allowed: ``<50``, or
``positive``/``negative`` for qualitative tests); ``comparator`` (``<``, ``<=``, ``>``, ``>=``);
``unit`` (UCUM); ``time`` (ISO date or date-time; no zone is read as UTC); ``ref_low``,
``ref_high`` (the laboratory's limits, in the result's unit); optional ``status`` (FHIR
Observation status; final when absent). Pregnancy is given as rows too, under the LOINC codes the
FHIR reader maps (ontology/modules/fhir.ttl): ``82810-3`` (pregnancy status) with an answer code
as value (``LA15173-0`` pregnant, ``LA26683-5`` not pregnant, ``LA4489-6`` unknown; or
``<system>|<code>``, e.g. ``http://snomed.info/sct|77386006``), ``11884-4`` or ``11885-1``
(gestational age, unit ``wk`` or ``d``) and ``93857-1`` (delivery date, an ISO date as value).
For a code that is not a test b12kg reads, a value that is a LOINC answer code or
``<system>|<code>`` is a coded answer and an ISO date a date. Person table columns: ``patient_id``, ``sex``
(female|male), ``birth_date`` (ISO date). Other columns stop the run before it starts (a typo must
not drop a value silently). With a person table, a result whose patient it does not hold is
refused with the reason.

A folder is a long input when it holds a lab table (a .csv or .parquet file whose columns include
patient_id, value and loinc or analyte) and at most one person table (columns patient_id and sex
or birth_date); a single such lab file is one too.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import B12kgError
from ..kb import vocabulary
from ..rdf.terms import ANALYTE_SYSTEM
from .bulk import ISO_DATE, Group, _q, bundle_text, connect, fhir_datetime, number, write_groups

LAB_COLUMNS = ("patient_id", "loinc", "analyte", "value", "comparator", "unit", "time", "ref_low", "ref_high", "status")
PERSON_COLUMNS = ("patient_id", "sex", "birth_date")
TABLE_SUFFIXES = (".csv", ".parquet")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_COMPARATORS = ("<=", ">=", "<", ">")


def table_columns(path: Path) -> tuple[str, ...]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return tuple(pq.read_schema(path).names)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return tuple(c.strip() for c in next(csv.reader(fh), []))
    except (UnicodeDecodeError, csv.Error):
        return ()          # not a long table; the wide CSV reader names the problem


def is_lab_table(cols) -> bool:
    return {"patient_id", "value"} <= set(cols) and bool({"loinc", "analyte"} & set(cols))


def is_person_table(cols) -> bool:
    return "patient_id" in cols and bool({"sex", "birth_date"} & set(cols)) and "value" not in cols


def long_tables(path: Path) -> tuple[Path, Path | None] | None:
    """(lab table, person table or None) when the path is a long input, else None."""
    if path.is_file():
        return (path, None) if path.suffix.lower() in TABLE_SUFFIXES and is_lab_table(table_columns(path)) else None
    if not path.is_dir():
        return None
    labs, persons = [], []
    for p in sorted(path.iterdir()):
        if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES:
            cols = table_columns(p)
            if is_lab_table(cols):
                labs.append(p)
            elif is_person_table(cols):
                persons.append(p)
    if len(labs) != 1 or len(persons) > 1:
        return None
    return labs[0], persons[0] if persons else None


def check_columns(lab: Path, person: Path | None) -> None:
    problems = []
    for p, allowed in ((lab, LAB_COLUMNS), (person, PERSON_COLUMNS)):
        if p is not None:
            extra = [c for c in table_columns(p) if c not in allowed]
            if extra:
                problems.append(f"{p.name}: unknown columns {', '.join(extra)} (allowed: {', '.join(allowed)})")
    if problems:
        raise B12kgError("; ".join(problems))


def scan(path: Path) -> str:
    """A DuckDB relation of the table, every cell as text (numbers keep their written form)."""
    if path.suffix.lower() == ".parquet":
        return f"(SELECT COLUMNS(*)::VARCHAR FROM read_parquet({_q(path)}))"
    return f"read_csv({_q(path)}, all_varchar = true, header = true)"


def plan_long(path: Path, size: int, workdir: Path, parts: int | None = None) -> list[Group]:
    found = long_tables(path)
    if found is None:
        raise B12kgError(f"{path}: not a long lab table (README, Cohorts)")
    lab, person = found
    check_columns(lab, person)
    con = connect(workdir)
    try:
        rows = (f"SELECT patient_id AS pkey, 'lab' AS src, row_number() OVER () AS ord, to_json(t)::VARCHAR AS row "
                f"FROM {scan(lab)} t")
        if person is not None:
            rows = (f"SELECT patient_id AS pkey, 'person' AS src, 0 AS ord, to_json(p)::VARCHAR AS row FROM {scan(person)} p "
                    f"UNION ALL {rows}")
            pats = f"SELECT patient_id AS pkey FROM {scan(person)}"
        else:
            pats = f"SELECT patient_id AS pkey FROM {scan(lab)}"
        return write_groups(con, rows, pats, size, workdir, parts)
    finally:
        con.close()


def _cell(row: dict, name: str) -> str | None:
    v = row.get(name)
    if v is None:
        return None
    v = str(v).strip()
    return v or None


def observation(pid: str, i: int, row: dict, *, system: str | None = None, code: str | None = None) -> dict:
    """One lab row (text cells: value, comparator, unit, time, ref_low, ref_high, status) as an
    FHIR Observation. The value is a valueQuantity when it is a number (with a comparator from its
    own text or the comparator cell), a valueString otherwise (the FHIR reader reads it for a
    qualitative test and names the problem for a quantitative one)."""
    vocab = vocabulary()
    if system is None:
        if _cell(row, "loinc"):
            system, code = LOINC, _cell(row, "loinc")
        elif _cell(row, "analyte"):
            system, code = ANALYTE_SYSTEM, _cell(row, "analyte")
    obs: dict = {"resourceType": "Observation", "id": f"{pid or 'row'}-{i}", "status": _cell(row, "status") or "final",
                 "code": {"coding": [{"system": system, "code": code}]} if code else {"text": "no code in the table"}}
    if pid:
        obs["subject"] = {"reference": f"Patient/{pid}"}
    when = fhir_datetime(_cell(row, "time"))
    if when:
        obs["effectiveDateTime"] = when
    info = (vocab.tests_by_loinc.get(code) if system == LOINC else vocab.tests_by_key.get(code)) if code else None
    text = _cell(row, "value")
    comparator = _cell(row, "comparator")
    if text is not None and comparator in (None, "="):
        for c in _COMPARATORS:
            if text.startswith(c):
                comparator, text = c, text[len(c):].strip()
                break
    unit = _cell(row, "unit")
    value = number(text)
    if info is None and value is None and text is not None:
        answer = _answer(text)
        if answer is not None:
            obs["valueCodeableConcept"] = {"coding": [answer]}
            return obs
        if ISO_DATE.fullmatch(text):
            obs["valueDateTime"] = fhir_datetime(text)
            return obs
    if info is not None and info.qualitative or (value is None and text is not None):
        if text is not None:
            obs["valueString"] = text
        return obs
    if value is None:
        return obs
    q: dict = {"value": value}
    if comparator not in (None, "="):
        q["comparator"] = comparator
    if unit is not None:
        q.update({"unit": unit, "system": UCUM, "code": unit})
    obs["valueQuantity"] = q
    rr: dict = {}
    for name in ("low", "high"):
        lim = number(_cell(row, f"ref_{name}"))
        if lim is not None:
            rr[name] = {"value": lim, **({"unit": unit, "system": UCUM, "code": unit} if unit else {})}
    if rr:
        obs["referenceRange"] = [rr]
    return obs


_LOINC_ANSWER = re.compile(r"LA[0-9]+-[0-9]")


def _answer(text: str) -> dict | None:
    """A coded answer written in a value cell: a LOINC answer code, or ``<system>|<code>``."""
    if _LOINC_ANSWER.fullmatch(text):
        return {"system": LOINC, "code": text}
    system, bar, code = text.rpartition("|")
    if bar and system.startswith(("http://", "https://", "urn:")) and code:
        return {"system": system, "code": code}
    return None


def patient(pid: str, sex: str | None, birth: str | None) -> dict:
    res: dict = {"resourceType": "Patient", "id": pid}
    if sex:
        s = sex.strip().lower()
        res["gender"] = {"f": "female", "female": "female", "m": "male", "male": "male"}.get(s, "unknown")
    if birth:
        res["birthDate"] = birth.strip()[:10] if "T" in birth or " " in birth.strip() else birth.strip()
    return res


def long_bundle(pkey: str, rows: list[dict]) -> str:
    import json

    resources: list[dict] = []
    persons: list[dict] = []
    for r in rows:
        cells = json.loads(r["row"])
        if r["src"] == "person":
            persons.append(cells)      # two rows for one patient give two Patients: the reader refuses them
        else:
            resources.append(observation(pkey, r["ord"], cells))
    if pkey:
        people = [patient(pkey, _cell(p, "sex"), _cell(p, "birth_date")) for p in persons] or [patient(pkey, None, None)]
        resources[:0] = people
    return bundle_text(resources)
