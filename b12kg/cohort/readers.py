"""Streaming readers for cohort input. Each yields raw records one at a time, so memory stays
bounded whatever the size of the input; parsing and validation happen in the workers.

- CSV, one row per patient. Columns: ``id``; ``sex`` (female|male|empty); ``age_years`` or
  ``birth_date`` with ``specimen_date``; ``pregnant`` (true|false|empty); ``gestational_weeks``;
  ``profile`` (optional); ``symptoms`` and ``context`` (words separated by ``;``); and per analyte
  key of the ontology (hemoglobin, b12, ferritin, ...): ``<key>`` (the value, a comparator allowed:
  ``<50``), ``<key>_unit`` (UCUM) and optionally ``<key>_ref_high``. An empty value cell means not
  measured. Unknown columns are refused (a typo must not silently drop a result).
- NDJSON: one FHIR R4 Bundle per line (the FHIR bulk-data shape).
- A folder: every ``*.yaml``, ``*.yml``, ``*.json``, ``*.ttl``, ``*.nt``, ``*.jsonld`` below it.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

FOLDER_SUFFIXES = (".yaml", ".yml", ".json", ".ttl", ".nt", ".jsonld")
PATIENT_COLUMNS = ("id", "sex", "age_years", "birth_date", "specimen_date", "pregnant", "gestational_weeks",
                   "profile", "symptoms", "context")


@dataclass(frozen=True)
class RawRecord:
    ordinal: int          # 0-based position in the input
    ref: str              # where it is: "line 12", "row 7", a file path
    kind: str             # "csv" | "bundle" | "file"
    payload: object       # dict of CSV cells, a JSON text, or a path string


def input_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    raise ValueError(f"{path}: not a .csv, .ndjson/.jsonl file or a folder")


def read_csv(path: Path) -> Iterator[RawRecord]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip() for h in header]
        for i, row in enumerate(reader):
            yield RawRecord(i, f"row {i + 2}", "csv", (header, row))


def read_ndjson(path: Path) -> Iterator[RawRecord]:
    with open(path, "rb") as fh:
        n = 0
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            yield RawRecord(n, f"line {lineno}", "bundle", line)
            n += 1


def read_folder(path: Path) -> Iterator[RawRecord]:
    files = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(FOLDER_SUFFIXES):
                files.append(os.path.join(root, name))
    for i, f in enumerate(files):
        yield RawRecord(i, f, "file", f)


def open_input(path: str | Path) -> Iterator[RawRecord]:
    p = Path(path)
    kind = input_kind(p)
    return {"csv": read_csv, "ndjson": read_ndjson, "folder": read_folder}[kind](p)


def count_records(path: str | Path) -> int | None:
    """The number of records, counted by a fast scan (for the progress bar); None if unknown."""
    p = Path(path)
    kind = input_kind(p)
    if kind == "folder":
        return sum(1 for _ in read_folder(p))
    n = 0
    with open(p, "rb") as fh:
        if kind == "csv":
            # rows, not lines: quoted cells may hold newlines
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            n = sum(1 for _ in csv.reader(text)) - 1
            return max(n, 0)
        for line in fh:
            if line.strip():
                n += 1
    return n
