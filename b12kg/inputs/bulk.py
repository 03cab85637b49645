"""Bulk and research inputs grouped by patient with DuckDB, in bounded memory.

A FHIR bulk-data export folder (the FHIR Bulk Data Access IG shape: newline-delimited JSON, each
file holding resources of one type, e.g. Patient.ndjson, Observation.ndjson, Condition.ndjson,
MedicationStatement.ndjson, MedicationRequest.ndjson, Procedure.ndjson; file names are not read,
each resource's ``resourceType`` is), a long lab table (``long``) and OMOP CDM tables (``omop``)
are all read the same way:

1. DuckDB scans the files (``read_ndjson_objects``, ``read_csv``, ``read_parquet``) and writes
   every row, with its patient key, into Parquet files partitioned by chunk of ``size`` patients
   (``COPY ... PARTITION_BY``). DuckDB works under a memory limit and spills to a temporary folder,
   so the grouping never needs the input in memory.
2. A worker reads one chunk's partition (``size`` patients), and each patient's rows become one
   FHIR R4 Bundle dict: the bulk resources as they are, the long and OMOP rows turned into a
   Patient and its Observations (Conditions, MedicationStatements). ``record_from_bundle`` reads
   every Bundle, so a patient reads the same in every form and all tolerance rules live in one
   place (the FHIR reader).
3. A row with no patient (no subject reference, or a reference to a patient the input does not
   hold) is a record of its own, refused with the reason (``rejects.ndjson``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
PATIENT_REF = r"^(?:.*/)?Patient/([^/]+?)(?:/_history/[^/]+)?$"
MEMORY_LIMIT = os.environ.get("B12KG_DUCKDB_MEMORY", "256MB")


@dataclass(frozen=True)
class Group:
    """One planned chunk of grouped rows: ``n`` patients (or ``n`` orphan rows) in ``path``."""

    index: int
    first: int
    n: int
    path: str
    orphans: bool


def _q(s: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def connect(workdir: Path):
    import duckdb

    tmp = workdir / "duckdb-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {_q(MEMORY_LIMIT)}")
    con.execute(f"SET temp_directory = {_q(tmp)}")
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = true")
    return con


def write_groups(con, rows_sql: str, patients_sql: str, size: int, workdir: Path, parts: int | None = None) -> list[Group]:
    """Partition ``rows_sql`` (columns pkey, src, ord, row) by chunks of ``size`` patients of
    ``patients_sql`` (column pkey); rows whose pkey is not a patient go to orphan chunks. With
    ``parts``, chunks are smaller when the patients allow: at most ``size``, enough for ``parts``
    chunks (the cohort runner asks for several per worker)."""
    for sub in ("patients", "orphans"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE pkeys AS SELECT DISTINCT pkey FROM ({patients_sql}) WHERE pkey IS NOT NULL")
    if parts:
        (n_patients,) = con.execute("SELECT count(*) FROM pkeys").fetchone()
        size = max(1, min(size, -(-n_patients // parts)))
    con.execute(f"CREATE OR REPLACE TEMP TABLE pats AS SELECT pkey, (row_number() OVER (ORDER BY pkey) - 1) // {int(size)} "
                f"AS chunk FROM pkeys")
    con.execute(f"CREATE OR REPLACE TEMP VIEW grouped_rows AS {rows_sql}")
    groups: list[Group] = []
    counts = con.execute("SELECT chunk, count(*) FROM pats GROUP BY chunk ORDER BY chunk").fetchall()
    if counts:
        con.execute("COPY (SELECT p.chunk, r.pkey, r.src, r.ord, r.row FROM grouped_rows r JOIN pats p USING (pkey)) "
                    f"TO {_q(workdir / 'patients')} (FORMAT parquet, PARTITION_BY (chunk))")
    first = 0
    for chunk, n in counts:
        groups.append(Group(len(groups), first, n, str(workdir / "patients" / f"chunk={chunk}"), False))
        first += n
    con.execute("CREATE OR REPLACE TEMP TABLE orphan_rows AS SELECT r.pkey, r.src, r.ord, r.row FROM grouped_rows r "
                "WHERE r.pkey IS NULL OR r.pkey NOT IN (SELECT pkey FROM pats)")
    (n_orphans,) = con.execute("SELECT count(*) FROM orphan_rows").fetchone()
    if n_orphans:
        con.execute(f"COPY (SELECT (row_number() OVER (ORDER BY src, ord) - 1) // {int(size)} AS chunk, * FROM orphan_rows) "
                    f"TO {_q(workdir / 'orphans')} (FORMAT parquet, PARTITION_BY (chunk))")
        for chunk in range((n_orphans + size - 1) // size):
            n = min(size, n_orphans - chunk * size)
            groups.append(Group(len(groups), first, n, str(workdir / "orphans" / f"chunk={chunk}"), True))
            first += n
    con.execute("DROP TABLE IF EXISTS orphan_rows")
    return groups


def _read_partition(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["pkey", "src", "ord", "row"])
    rows = table.to_pylist()
    rows.sort(key=lambda r: (r["pkey"] is None, r["pkey"] or "", r["ord"]))
    return rows


BundleMaker = Callable[[str, list[dict]], str]


def orphan_why(r: dict, what: str) -> str:
    return ("has no patient reference" if r["pkey"] is None
            else f"names patient {r['pkey']!r}, who is not in {what}")


def orphan_ref(r: dict, what: str) -> str:
    return f"{r['src']} row {r['ord']}: {orphan_why(r, what)}"


def read_group(group: Group, make_bundle: BundleMaker, what: str,
               describe: Callable[[dict, str], str] = orphan_ref) -> Iterator[tuple[str, bytes]]:
    """(ref, Bundle JSON bytes) for each patient of a chunk, or for each orphan row a Bundle that
    holds the row and no Patient, whose ref (``describe``) says where the row is and why it has no
    patient."""
    rows = _read_partition(group.path)
    if group.orphans:
        for r in rows:
            yield describe(r, what), make_bundle("", [r]).encode()
        return
    i = 0
    while i < len(rows):
        j = i
        pkey = rows[i]["pkey"]
        while j < len(rows) and rows[j]["pkey"] == pkey:
            j += 1
        yield f"Patient/{pkey}", make_bundle(pkey, rows[i:j]).encode()
        i = j


# ---------------------------------------------------------------------------------------------
# FHIR bulk-data export folders
# ---------------------------------------------------------------------------------------------
def ndjson_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(NDJSON_SUFFIXES))


def is_bulk_folder(path: Path) -> bool:
    return path.is_dir() and bool(ndjson_files(path))


_LINE = 1 << 32         # a refused line's ord: _BAD + file number * _LINE + line number
_BAD = 1 << 60


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def not_an_object(text: str) -> str | None:
    """Why a line is not a JSON object, or None when it is one. NaN and Infinity are refused, as
    DuckDB's reader refuses them."""
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        return f"is not valid JSON ({exc})"
    return None if isinstance(doc, dict) else "is not a JSON object"


def _bad_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of an NDJSON file that is not a JSON object, read line by
    line (bounded memory)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for i, line in enumerate(fh, 1):
            text = line.strip()
            if text and not_an_object(text) is not None:
                yield i, text


def plan_bulk(path: Path, size: int, workdir: Path, parts: int | None = None) -> list[Group]:
    """Group the resources of a bulk export folder by patient: a Patient by its id, any other
    resource by ``subject`` (or ``patient``) reference ``Patient/<id>``. A line that is not a JSON
    object has no patient: it is a record of its own, refused saying the file, the line and why
    (``bulk_orphan``), and the rest of the export is read. DuckDB reads the files (skipping such
    lines); only a file in which it found one is read again, line by line, to number them."""
    files = ndjson_files(path)
    con = connect(workdir)
    try:
        listing = "[" + ",".join(_q(f) for f in files) + "]"
        con.execute(f"""CREATE OR REPLACE TEMP VIEW bulk_all AS
            SELECT json, parse_filename(filename) AS src, row_number() OVER () AS n
            FROM read_ndjson_objects({listing}, filename = true, ignore_errors = true)""")
        con.execute("""CREATE OR REPLACE TEMP VIEW bulk AS
            SELECT json, json->>'$.resourceType' AS rtype, src, n FROM bulk_all
            WHERE json IS NOT NULL AND json_type(json) = 'OBJECT'""")
        flagged = {r[0] for r in con.execute("SELECT DISTINCT src FROM bulk_all WHERE json IS NULL "
                                             "OR json_type(json) <> 'OBJECT'").fetchall()}
        con.execute("CREATE OR REPLACE TEMP TABLE bad_lines (src VARCHAR, ord BIGINT, line VARCHAR)")
        for fileno, f in enumerate(files):
            if f.name in flagged:
                con.executemany("INSERT INTO bad_lines VALUES (?, ?, ?)",
                                [(f.name, _BAD + fileno * _LINE + i, text) for i, text in _bad_lines(f)])
        rows = f"""SELECT CASE WHEN rtype = 'Patient' THEN json->>'$.id'
                       ELSE nullif(regexp_extract(coalesce(json->>'$.subject.reference', json->>'$.patient.reference'),
                                                  {_q(PATIENT_REF)}, 1), '') END AS pkey,
                          src, CASE WHEN rtype = 'Patient' THEN 0 ELSE n END AS ord, json::VARCHAR AS row
                   FROM bulk
                   UNION ALL SELECT NULL AS pkey, src, ord, line AS row FROM bad_lines"""
        return write_groups(con, rows, "SELECT json->>'$.id' AS pkey FROM bulk WHERE rtype = 'Patient'", size, workdir, parts)
    finally:
        con.close()


def bulk_orphan(r: dict, what: str) -> str:
    """Where a bulk line with no patient is (file and line) and why it has none."""
    if r["ord"] < _BAD:
        return orphan_ref(r, what)
    where = f"{r['src']} line {r['ord'] % _LINE}"
    return f"{where}: {not_an_object(r['row']) or orphan_why(r, what)}"


def bulk_bundle(pkey: str, rows: list[dict]) -> str:
    """The resources as they are, the Patient first (its ord is 0), in one Bundle."""
    return ('{"resourceType":"Bundle","type":"collection","entry":['
            + ",".join('{"resource":' + r["row"] + "}" for r in rows) + "]}")


# ---------------------------------------------------------------------------------------------
# Shared by the long table and OMOP: rows of text cells turned into FHIR resources
# ---------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_INT_FLOAT = re.compile(r"(-?[0-9]+)\.0+")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9:]+)?)?")


class Num(str):
    """A JSON number written verbatim (its text is the value as the table gave it)."""


def number(text: str | None) -> Num | None:
    """The text as a JSON number when it is one (leading/trailing blanks dropped), else None."""
    if text is None:
        return None
    t = text.strip()
    return Num(t) if _NUMBER.fullmatch(t) else None


def dumps(doc) -> str:
    if isinstance(doc, Num):
        return str(doc)
    if isinstance(doc, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in doc.items()) + "}"
    if isinstance(doc, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in doc) + "]"
    return json.dumps(doc, ensure_ascii=False)


def fhir_datetime(text: str | None) -> str | None:
    """A table's date or date-time as FHIR text: a date as is; a date-time with a 'T', and UTC
    when the table gives no zone (OMOP and SQL exports carry none)."""
    if text is None or not text.strip():
        return None
    t = text.strip().replace(" ", "T", 1)
    if "T" not in t:
        return t
    if t.endswith("Z") or re.search(r"T.*[+-][0-9]{2}:[0-9]{2}$", t):
        return t
    m = re.search(r"T.*([+-][0-9]{2})([0-9]{2})?$", t)      # +00 or +0100, as databases print a zone
    if m:
        return t[:m.start(1)] + m.group(1) + ":" + (m.group(2) or "00")
    return t + "+00:00"


def bundle_text(resources: list[dict]) -> str:
    return dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]})
