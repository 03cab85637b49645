"""The wide cohort CSV, one row per patient (README, "Cohorts"): a hand-written table, read strictly
(an unknown column stops the run before it starts; a bad cell refuses its row, naming it), and
written from case records (for tests, benchmarks and users converting their records).

Columns: ``id``, ``sex``, ``age_years`` (or ``birth_date`` and ``specimen_date``), ``pregnant``,
``gestational_weeks``, ``profile``, ``symptoms`` and ``context`` (words separated by ``;``), and
for each analyte key ``<key>``, ``<key>_unit`` and ``<key>_ref_high``."""

from __future__ import annotations

import csv
import functools
from collections import Counter
from typing import IO, Any, Iterable, Mapping

from ..errors import InputError, Issue
from ..kb import vocabulary

MAX_HEADER_PROBLEMS = 20        # header problems named one by one; the rest are counted
PATIENT_COLUMNS = ("id", "sex", "age_years", "birth_date", "specimen_date", "pregnant", "gestational_weeks",
                   "profile", "symptoms", "context")


_TRUE = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def csv_case(header: list[str], row: list[str], ref: str) -> dict:
    """A CSV row as a case dict (see readers.py for the columns)."""
    if len(row) != len(header):
        raise InputError([Issue(ref, f"{len(row)} cells", f"does not match the {len(header)} columns of the header")])
    cells = {h: c.strip() for h, c in zip(header, row) if c}
    patient: dict[str, Any] = {}
    for col in ("sex", "age_years", "birth_date", "specimen_date", "gestational_weeks"):
        if cells.get(col):
            patient[col] = cells[col]
    if cells.get("pregnant"):
        patient["pregnant"] = _TRUE.get(cells["pregnant"].lower(), cells["pregnant"])
    obs: dict[str, Any] = {}
    for key in _analyte_columns(tuple(cells)):
        v = cells.get(key)
        if v:
            entry: dict[str, Any] = {"value": v}
            if cells.get(f"{key}_unit"):
                entry["unit"] = cells[f"{key}_unit"]
            if cells.get(f"{key}_ref_high"):
                entry["ref_high"] = cells[f"{key}_ref_high"]
            obs[key] = entry
        elif cells.get(f"{key}_unit") or cells.get(f"{key}_ref_high"):
            raise InputError([Issue(f"{ref}, column {key}", None, f"is empty while {key}_unit is given: a unit without a value")])
    case: dict[str, Any] = {"id": cells.get("id") or ref.replace(" ", "-"), "patient": patient, "observations": obs}
    for col in ("symptoms", "context"):
        if cells.get(col):
            case[col] = [w for w in (x.strip() for x in cells[col].split(";")) if w]
    if cells.get("profile"):
        case["profile"] = cells["profile"]
    return case


@functools.lru_cache(maxsize=4096)
def _analyte_columns(columns: tuple) -> tuple:
    """The analyte keys a row's non-empty columns mention (value, unit or limit), in table order."""
    keys = vocabulary().tests_by_key
    named = {c.rsplit("_unit", 1)[0] if c.endswith("_unit") else c.rsplit("_ref_high", 1)[0] if c.endswith("_ref_high") else c
             for c in columns}
    return tuple(k for k in keys if k in named)


def check_csv_header(header: list[str]) -> list[str]:
    """Unknown or duplicated columns (a typo must not silently drop a result)."""
    keys = set(vocabulary().tests_by_key)
    allowed = set(PATIENT_COLUMNS) | keys | {f"{k}_unit" for k in keys} | {f"{k}_ref_high" for k in keys}
    problems = [f"column {h!r} is not a b12kg column" for h in header if h not in allowed]
    dup = [h for h, n in Counter(header).items() if n > 1]
    problems += [f"column {h!r} appears twice" for h in dup]
    if len(problems) > MAX_HEADER_PROBLEMS:         # 100,000 unknown columns made a 4 MB message
        problems = problems[:MAX_HEADER_PROBLEMS] + [f"and {len(problems) - MAX_HEADER_PROBLEMS} more column problems"]
    return problems


def csv_columns() -> list[str]:
    cols = list(PATIENT_COLUMNS)
    for key in vocabulary().tests_by_key:
        cols += [key, f"{key}_unit", f"{key}_ref_high"]
    return cols


def case_to_row(case: Mapping) -> dict[str, str]:
    vocab = vocabulary()
    row: dict[str, str] = {"id": str(case.get("id", ""))}
    for k, v in (case.get("patient") or {}).items():
        row[k] = "true" if v is True else "false" if v is False else str(v)
    for name, e in (case.get("observations") or {}).items():
        info = vocab.tests_by_key.get(name) or vocab.tests_by_loinc.get(name)
        key = info.key if info else name
        row[key] = str(e.get("value", ""))
        if e.get("unit") is not None:
            row[f"{key}_unit"] = str(e["unit"])
        if e.get("ref_high") is not None:
            row[f"{key}_ref_high"] = str(e["ref_high"])
    for col in ("symptoms", "context"):
        if case.get(col):
            row[col] = ";".join(case[col])
    if case.get("profile"):
        row["profile"] = str(case["profile"])
    return row


def write_csv(cases: Iterable[Mapping], fh: IO[str]) -> int:
    cols = csv_columns()
    w = csv.DictWriter(fh, fieldnames=cols, extrasaction="raise", lineterminator="\n")
    w.writeheader()
    n = 0
    for c in cases:
        w.writerow(case_to_row(c))
        n += 1
    return n
