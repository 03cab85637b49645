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
- Grouped inputs (``b12kg.inputs.bulk``): a FHIR bulk-data export folder (``*.ndjson`` files, one
  resource type each), OMOP CDM tables (a folder with PERSON, MEASUREMENT and CONCEPT files), a
  long lab table (a .csv or .parquet file, or a folder, whose columns include patient_id, value
  and loinc or analyte). DuckDB groups their rows by patient into Parquet partitions of
  ``size`` patients under the run's parts folder; each worker turns its partition's patients
  into FHIR Bundles.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import B12kgError
from ..inputs.bulk import Group, bulk_bundle, bulk_orphan, is_bulk_folder, orphan_ref, plan_bulk, read_group
from ..inputs.long import long_bundle, long_tables, plan_long
from ..inputs.omop import omop_bundle, omop_tables, plan_omop
from ..inputs.files import MAX_INPUT_BYTES

# A cell may be as long as a record may be (the csv module's default, 128 KB, stopped the whole
# run with a traceback at the first longer cell); the record loader then refuses what is in it.
csv.field_size_limit(MAX_INPUT_BYTES)

FOLDER_SUFFIXES = (".yaml", ".yml", ".json", ".ttl", ".nt", ".jsonld")


@dataclass(frozen=True)
class RawRecord:
    ordinal: int          # 0-based position in the input
    ref: str              # where it is: "line 12", "row 7", a file path
    kind: str             # "csv" | "bundle" | "file"
    payload: object       # dict of CSV cells, a JSON text, or a path string


GROUPED_KINDS = ("bulk", "omop", "long")


def input_kind(path: Path, kind: str | None = None) -> str:
    """csv | ndjson | folder | bulk | omop | long. ``kind`` names it instead of detecting it (a
    grouped kind only)."""
    if kind is not None:
        if kind not in GROUPED_KINDS + ("csv", "ndjson", "folder"):
            raise ValueError(f"input kind {kind!r} is not one of csv, ndjson, folder, {', '.join(GROUPED_KINDS)}")
        return kind
    if path.is_dir():
        if is_bulk_folder(path):
            return "bulk"
        if omop_tables(path) is not None:
            return "omop"
        if long_tables(path) is not None:
            return "long"
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet") and long_tables(path) is not None:
        return "long"
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl"):
        return "ndjson"
    raise ValueError(f"{path}: not a .csv, .ndjson/.jsonl file, a long lab table or a folder")


def read_csv(path: Path) -> Iterator[RawRecord]:
    """Every row (see read_chunk for how bytes that are not UTF-8 are carried)."""
    for plan in plan_chunks(path, 10_000):
        yield from read_chunk(plan)


def _header_bytes(fh) -> tuple[bytes, int]:
    """The header record's bytes (a quoted name may span lines) and the lines it takes."""
    head = b""
    lines = 0
    for line in fh:
        head += line
        lines += 1
        if head.count(b'"') % 2 == 0:
            return head, lines
    if head:
        raise B12kgError(f"{fh.name}: the header row opens a quote that never closes")
    return head, lines


def _decode_header(head: bytes, path) -> tuple[str, ...]:
    """The column names. A UTF-8 byte-order mark (as spreadsheet programs write) is dropped; a
    header that is not UTF-8 text stops the run, naming the byte."""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise B12kgError(f"{path}: the header row is not UTF-8 text: byte {exc.start + 1} "
                         f"({head[exc.start:exc.start + 1]!r}) of the file") from None
    return tuple(h.strip() for h in next(csv.reader(io.StringIO(text, newline="")), []))


def csv_header(path: str | Path) -> tuple[str, ...]:
    """The column names of a cohort CSV."""
    with open(path, "rb") as fh:
        head, _ = _header_bytes(fh)
    return _decode_header(head, path) if head else ()


@dataclass(frozen=True)
class LineTooLong:
    """The payload of an NDJSON line over the byte limit of one record (MAX_INPUT_BYTES, the limit
    of a file): its length only, never its bytes (a 400 MB line was read whole, 1.28 GB)."""
    length: int
    limit: int


def bounded_lines(fh, limit: int | None = None, end: int | None = None) -> Iterator[tuple[bytes | LineTooLong, int]]:
    """(line, length in bytes) of a binary file from its position (up to ``end``), holding at most
    ``limit`` + 1 bytes of a line: a longer line is (LineTooLong, length), its rest skipped."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    pos = fh.tell()
    while end is None or pos < end:
        line = fh.readline(limit + 1)
        if not line:
            return
        n = len(line)
        if n > limit and not line.endswith(b"\n"):
            while True:
                more = fh.readline(1 << 20)
                n += len(more)
                if not more or more.endswith(b"\n"):
                    break
            pos += n
            yield LineTooLong(n, limit), n
            continue
        pos += n
        yield line, n


def read_ndjson(path: Path) -> Iterator[RawRecord]:
    with open(path, "rb") as fh:
        n = 0
        for lineno, (line, _len) in enumerate(bounded_lines(fh), 1):
            if isinstance(line, bytes) and not line.strip():
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


# ---------------------------------------------------------------------------------------------
# Chunk plans: the main process only finds where chunks start and end (a fast byte scan); each
# worker reads and parses its own chunk, so records never travel between processes.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkPlan:
    index: int
    first: int            # ordinal of the chunk's first record
    kind: str             # "csv" | "ndjson" | "files"
    path: str
    start: int = 0        # byte range in the file (csv, ndjson)
    end: int = 0
    first_line: int = 0   # 1-based line number of the first record (csv: the header is line 1)
    header: tuple = ()
    files: tuple = ()
    n: int = 0            # number of records
    source: str = ""      # grouped: bulk | omop | long
    orphans: bool = False  # grouped: rows with no patient, one record each


_PLANNERS = {"bulk": plan_bulk, "omop": plan_omop, "long": plan_long}
_BUNDLERS = {"bulk": (bulk_bundle, "the export's Patient resources", bulk_orphan),
             "omop": (omop_bundle, "the PERSON table", orphan_ref),
             "long": (long_bundle, "the person table", orphan_ref)}


def plan_grouped(path: str | Path, kind: str, size: int, workdir: str | Path, workers: int | None = None) -> list[ChunkPlan]:
    """Group a bulk, OMOP or long input by patient (DuckDB, bounded memory) into ``workdir``, in
    chunks of ``size`` patients, or with ``workers`` sized for ``CHUNKS_PER_WORKER`` chunks per
    worker when the patients allow (never more than ``size``)."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    parts = None if workers is None else CHUNKS_PER_WORKER * max(1, workers)
    try:
        groups: list[Group] = _PLANNERS[kind](Path(path), size, wd, parts)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb", "pyarrow"):
            raise
        raise B12kgError(f"{path}: cannot read it as a {kind} input: {type(exc).__name__}: {str(exc)[:500]}") from None
    return [ChunkPlan(g.index, g.first, "grouped", g.path, n=g.n, source=kind, orphans=g.orphans) for g in groups]


#: chunks per worker when the chunk size is planned from the input: at least 2 (every worker busy
#: until near the end, a progress bar that moves), more to even out chunks of unequal cost
CHUNKS_PER_WORKER = 4
#: the smallest planned chunk of a CSV or NDJSON file, in bytes (a chunk costs a task and five
#: part files: a tiny cohort is not cut finer than this)
MIN_CHUNK_BYTES = 8 << 10


def plan_input(path: str | Path, workers: int, max_records: int, chunk_size: int | None = None) -> tuple[list[ChunkPlan], dict]:
    """The chunks of a CSV, NDJSON or folder input: ``chunk_size`` records each when given, else
    sized to the input and the workers, ``CHUNKS_PER_WORKER`` chunks per worker when the input
    allows (by bytes for a file, by count for a folder) and never more than ``max_records``
    records (bounded memory whatever the input's size). Returns the plans and what they were
    planned with (for the resume fingerprint)."""
    p = Path(path)
    parts = CHUNKS_PER_WORKER * max(1, workers)
    if chunk_size is not None:
        key = {"chunk_size": chunk_size}
        return list(plan_chunks(p, chunk_size)), key
    if input_kind(p) == "folder":
        n = sum(1 for _ in read_folder(p))
        size = max(1, min(max_records, -(-n // parts)))
        return list(plan_chunks(p, size)), {"chunk_size": size}
    max_bytes = max(MIN_CHUNK_BYTES, -(-p.stat().st_size // parts))
    return list(plan_chunks(p, max_records, max_bytes)), {"chunk_size": max_records, "chunk_bytes": max_bytes}


def plan_chunks(path: str | Path, size: int, max_bytes: int | None = None) -> Iterator[ChunkPlan]:
    """Chunks of ``size`` records, a chunk of a file also ending at the first record boundary at or
    after ``max_bytes`` bytes."""
    p = Path(path)
    kind = input_kind(p)
    if kind == "folder":
        batch: list[str] = []
        index = first = 0
        for raw in read_folder(p):
            batch.append(str(raw.payload))
            if len(batch) == size:
                yield ChunkPlan(index, first, "files", str(p), files=tuple(batch), n=len(batch))
                index += 1
                first += len(batch)
                batch = []
        if batch:
            yield ChunkPlan(index, first, "files", str(p), files=tuple(batch), n=len(batch))
        return
    with open(p, "rb") as fh:
        header: tuple = ()
        offset = 0
        lineno = 0
        if kind == "csv":
            head, lineno = _header_bytes(fh)
            offset = len(head)
            header = _decode_header(head, p) if head else ()
        index = first = 0
        start, start_line, n, quotes = offset, lineno + 1, 0, 0
        lines = bounded_lines(fh) if kind == "ndjson" else ((x, len(x)) for x in fh)
        for line, length in lines:
            lineno += 1
            offset += length
            if isinstance(line, LineTooLong):
                line = b"x"           # a record of its own, refused by the worker without being read
            if kind == "csv":
                quotes += line.count(b'"')
                if quotes % 2:
                    continue          # a quoted cell goes on over the newline
                quotes = 0
            if not line.strip():
                if n == 0:
                    start, start_line = offset, lineno + 1
                continue
            n += 1
            if n == size or (max_bytes is not None and offset - start >= max_bytes):
                yield ChunkPlan(index, first, kind, str(p), start, offset, start_line, header, n=n)
                index += 1
                first += n
                start, start_line, n = offset, lineno + 1, 0
        if kind == "csv" and quotes % 2:
            n += 1                    # a quote that never closes: the rest of the file is one row,
                                      # which the worker refuses (its cells do not match the header)
        if n:
            yield ChunkPlan(index, first, kind, str(p), start, offset, start_line, header, n=n)


def read_chunk(plan: ChunkPlan) -> list[RawRecord]:
    """The records of a planned chunk (in the worker)."""
    if plan.kind == "files":
        return [RawRecord(plan.first + i, f, "file", f) for i, f in enumerate(plan.files)]
    if plan.kind == "grouped":
        make, what, describe = _BUNDLERS[plan.source]
        group = Group(plan.index, plan.first, plan.n, plan.path, plan.orphans)
        return [RawRecord(plan.first + i, ref, "bundle", payload)
                for i, (ref, payload) in enumerate(read_group(group, make, what, describe))]
    out: list[RawRecord] = []
    if plan.kind == "ndjson":
        lineno = plan.first_line - 1
        with open(plan.path, "rb") as fh:
            fh.seek(plan.start)
            for line, _len in bounded_lines(fh, end=plan.end):
                lineno += 1
                if isinstance(line, LineTooLong) or line.strip():
                    out.append(RawRecord(plan.first + len(out), f"line {lineno}", "bundle", line))
        return out
    with open(plan.path, "rb") as fh:
        fh.seek(plan.start)
        data = fh.read(plan.end - plan.start)
    # Bytes that are not UTF-8 become lone surrogates (surrogateescape), never a guessed
    # character: the record loader refuses text holding one, so such a row is refused alone,
    # naming its field, and the rest of the chunk is read as usual.
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = list(plan.header)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        n = plan.first + len(out)
        out.append(RawRecord(n, f"row {n + 2}", "csv", (header, row)))
    return out
