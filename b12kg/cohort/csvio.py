"""Writing case records as cohort CSV (the columns of readers.py): for tests, benchmarks and
users converting their records."""

from __future__ import annotations

import csv
from typing import IO, Iterable, Mapping

from ..kb import vocabulary
from .readers import PATIENT_COLUMNS


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
