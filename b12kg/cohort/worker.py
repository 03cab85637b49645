"""The cohort worker: one chunk of raw records in, part files out.

Per chunk: parse and validate every record (a refused record goes to the reject part with its
reason and, when one was read, its patient id; nothing else is lost); refuse a record whose
patient id an earlier record of the chunk has (the first one counts; the runner does the same
across chunks); reason over the rest in one batch with the chosen engine (``b12kg.engines``);
write each patient's findings (NDJSON, in the single-patient JSON shape) and the analyst tables
(``tables.patient_table`` and ``tables.findings_table``, as Parquet parts).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .. import engines
from ..engines.base import Reasoned
from ..errors import B12kgError, InputError, Issue
from ..inputs import load_record
from ..inputs.case import record_from_case
from ..inputs.csv import csv_case
from ..inputs.fhir import is_bundle, record_from_bundle
from ..inputs.files import load_json
from ..inputs.normalise import check_assessable, is_text
from ..inputs.record import PatientRecord
from ..rdf.patient import record_to_ntriples
from ..rdf.terms import DATA_GRAPH, DEFAULT_BASE, INFERRED_GRAPH, patient_iri
from .output import patient_outputs
from .planner import LineTooLong, RawRecord
from .tables import Assessed, findings_table, patient_table


@dataclass(frozen=True)
class Options:
    profile: str | None = None
    engine: str = "compiled"        # an engine of b12kg.engines ("compiled", "oxigraph", ...)
    write_graph: bool = False
    base: str = DEFAULT_BASE
    endpoint: Any = None            # a b12kg.engines.remote.Endpoint, or None for the embedded store


@dataclass
class ChunkReport:
    index: int
    read: int = 0
    assessed: int = 0
    refused: int = 0
    findings: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------------------------------------
# Parsing raw records
# ---------------------------------------------------------------------------------------------
def _reject_line(doc: dict) -> str:
    """One line of rejects.ndjson. A refused value may hold a lone surrogate (a CSV byte that is
    not UTF-8, kept by surrogateescape): then every non-ASCII character is written as a JSON
    escape, so the line is still valid UTF-8 and JSON, and shows the value as it was."""
    text = json.dumps(doc, ensure_ascii=False)
    return text if is_text(text) else json.dumps(doc)


def parse_raw(raw: RawRecord, profile: str | None) -> PatientRecord:
    if raw.kind == "csv":
        header, row = raw.payload  # type: ignore[misc]
        return record_from_case(csv_case(header, row, raw.ref), source=raw.ref, profile=profile)
    if raw.kind == "bundle":
        if isinstance(raw.payload, LineTooLong):
            raise InputError([Issue(raw.ref, f"{raw.payload.length} bytes", f"is over the {raw.payload.limit} byte limit "
                                    "for one record (the limit of a record file): not read")], source=raw.ref)
        try:
            data = load_json(raw.payload)  # type: ignore[arg-type]
        except (ValueError, RecursionError) as exc:
            raise InputError([Issue(raw.ref, None, f"is not valid JSON: {str(exc)[:200]}")], source=raw.ref) from None
        if not is_bundle(data):
            raise InputError([Issue(f"{raw.ref}.resourceType", data.get("resourceType") if isinstance(data, dict) else None,
                                    "is not Bundle")], source=raw.ref)
        return record_from_bundle(data, source=raw.ref, profile=profile or "default")
    return load_record(str(raw.payload), profile=profile)


def evaluate(recs: list[PatientRecord], options: Options) -> Reasoned:
    """Run the rules over a batch of records with distinct ids (the options' engine, or the remote
    store): findings and unassessed findings per patient IRI and, if asked, the inferred triples
    as N-Triples."""
    return engines.get(options.engine, endpoint=options.endpoint).reason(recs, base=options.base,
                                                                          want_graph=options.write_graph)


def raw_patient_id(raw: RawRecord) -> str | None:
    """The patient id a raw record states, read without validating the record (for a refused
    record's line in rejects.ndjson): a CSV row's id cell, a Bundle's first Patient id; None when
    there is none or it cannot be read."""
    try:
        if raw.kind == "csv":
            header, row = raw.payload  # type: ignore[misc]
            i = list(header).index("id")
            return (row[i].strip() or None) if i < len(row) else None
        if raw.kind == "bundle":
            data = load_json(raw.payload)  # type: ignore[arg-type]
            for e in data.get("entry") or ():
                r = e.get("resource") if isinstance(e, dict) else None
                if isinstance(r, dict) and r.get("resourceType") == "Patient" and isinstance(r.get("id"), str):
                    return r["id"]
    except (ValueError, TypeError, AttributeError, RecursionError, UnicodeDecodeError):
        pass
    return None


def duplicate_reject(ordinal: int, ref: str, pid: str, first: int, first_ref: str) -> dict:
    """The rejects.ndjson entry of a record whose patient id an earlier record has."""
    problem = f"is the id of an earlier record (record {first}, {first_ref}); the first one counts"
    return {"record": ordinal, "source": ref, "patient": pid, "error": f"{ref}: id: {pid!r} {problem}",
            "issues": [Issue("id", pid, problem).to_json()], "reason": "duplicate patient id"}


def reject_reason(doc: dict) -> str:
    """What a refusal is counted under in the summary's attrition: the problem of its first issue
    up to its first ':' or '(' (where the values and the details start: "is not plausible for
    hemoglobin", "is missing"), or the error's type."""
    if doc.get("reason"):
        return doc["reason"]
    issues = doc.get("issues") or []
    if issues:
        return re.split(r"[:(]", issues[0]["problem"], maxsplit=1)[0].strip()[:200]
    return doc["error"].split(":", 1)[0]


# ---------------------------------------------------------------------------------------------
# The chunk
# ---------------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def part_paths(parts: Path, index: int) -> dict[str, Path]:
    stem = f"chunk-{index:07d}"
    return {"ndjson": parts / f"{stem}.findings.ndjson", "patients": parts / f"{stem}.patients.parquet",
            "findings": parts / f"{stem}.findings.parquet",
            "rejects": parts / f"{stem}.rejects.ndjson", "graph": parts / f"{stem}.inferred.nq",
            "done": parts / f"{stem}.done.json"}


def _write_parquet_atomic(path: Path, table) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _nquads(ntriples: str, graph: str) -> str:
    return "".join(line[:-1] + f"<{graph}> .\n" for line in ntriples.splitlines() if line)


def assess_raws(raws: list[RawRecord], options: Options) -> tuple[list[Assessed], list[dict], str]:
    """Parse, check and assess raw records: the assessed patients in input order, the refused
    records (rejects.ndjson entries, a repeated patient id among them: the first one counts) and,
    when ``options.write_graph``, the input and inferred graphs as N-Quads."""
    records: list[tuple[RawRecord, PatientRecord]] = []
    rejects: list[dict] = []
    first: dict[str, RawRecord] = {}
    for raw in raws:
        try:
            rec = check_assessable(parse_raw(raw, options.profile))
        except InputError as exc:
            rejects.append({"record": raw.ordinal, "source": raw.ref, "patient": raw_patient_id(raw), "error": str(exc),
                            "issues": [i.to_json() for i in exc.issues]})
            continue
        except (B12kgError, ValueError, TypeError, KeyError, RecursionError, UnicodeDecodeError) as exc:
            rejects.append({"record": raw.ordinal, "source": raw.ref, "patient": raw_patient_id(raw),
                            "error": f"{type(exc).__name__}: {str(exc)[:300]}", "issues": []})
            continue
        if rec.id in first:
            earlier = first[rec.id]
            rejects.append(duplicate_reject(raw.ordinal, raw.ref, rec.id, earlier.ordinal, earlier.ref))
            continue
        first[rec.id] = raw
        records.append((raw, rec))
    by_iri, graph, unassessed = evaluate([rec for _, rec in records], options) if records else ({}, "", {})
    assessed = [Assessed(raw.ordinal, raw.ref, rec, by_iri[patient_iri(rec.id, options.base)],
                         unassessed.get(patient_iri(rec.id, options.base), {}))
                for raw, rec in records]
    nquads = ""
    if options.write_graph:
        nquads = (_nquads("".join(record_to_ntriples(rec, options.base) for _, rec in records), DATA_GRAPH)
                  + _nquads(graph, INFERRED_GRAPH))
    return assessed, rejects, nquads


def process_chunk(index: int, raws: list[RawRecord], parts: str, options: Options) -> ChunkReport:
    """Assess one chunk and write its part files; never raises for a bad record."""
    report = ChunkReport(index=index, read=len(raws))
    assessed, rejects, nquads = assess_raws(raws, options)
    ndjson = [patient_outputs(a.record, a.ordinal, a.source, a.found, a.unassessed) for a in assessed]
    for a in assessed:
        report.findings.update(a.found.keys())
    report.assessed = len(assessed)
    report.refused = len(rejects)
    paths = part_paths(Path(parts), index)
    _write_atomic(paths["ndjson"], "".join(x + "\n" for x in ndjson))
    _write_parquet_atomic(paths["patients"], patient_table(assessed))
    _write_parquet_atomic(paths["findings"], findings_table(assessed))
    _write_atomic(paths["rejects"], "".join(_reject_line(r) + "\n" for r in rejects))
    if options.write_graph:
        _write_atomic(paths["graph"], nquads)
    _write_atomic(paths["done"], json.dumps({"index": index, "read": report.read, "assessed": report.assessed,
                                             "refused": report.refused, "findings": dict(report.findings)}))
    return report
