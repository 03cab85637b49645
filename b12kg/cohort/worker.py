"""The cohort worker: one chunk of raw records in, part files out.

Per chunk: parse and validate every record (a refused record goes to the reject part with its
reason; nothing else is lost); reason over the valid ones in batches of distinct ids with the
chosen engine (``b12kg.engines``); write each patient's findings with the values of its own record.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import engines
from ..engines.base import Findings
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


def evaluate(recs: list[PatientRecord], options: Options) -> tuple[Findings, str]:
    """Run the rules over a batch of records with distinct ids (the options' engine, or the remote
    store): findings per patient IRI and, if asked, the inferred triples as N-Triples."""
    return engines.get(options.engine, endpoint=options.endpoint).reason(recs, base=options.base,
                                                                          want_graph=options.write_graph)


def _batches_of_distinct_ids(records: list) -> list[list]:
    """Split so that no batch holds two records with the same id (their graphs would merge)."""
    batches: list[list] = []
    seen: list[set] = []
    for item in records:
        pid = item[1].id
        for b, ids in zip(batches, seen):
            if pid not in ids:
                b.append(item)
                ids.add(pid)
                break
        else:
            batches.append([item])
            seen.append({pid})
    return batches


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
    return {"ndjson": parts / f"{stem}.findings.ndjson", "csv": parts / f"{stem}.findings.csv",
            "rejects": parts / f"{stem}.rejects.ndjson", "graph": parts / f"{stem}.inferred.nq",
            "done": parts / f"{stem}.done.json"}


def _nquads(ntriples: str, graph: str) -> str:
    return "".join(line[:-1] + f"<{graph}> .\n" for line in ntriples.splitlines() if line)


def process_chunk(index: int, raws: list[RawRecord], parts: str, options: Options) -> ChunkReport:
    """Assess one chunk and write its part files; never raises for a bad record."""
    import csv
    import io

    report = ChunkReport(index=index, read=len(raws))
    records: list[tuple[RawRecord, PatientRecord]] = []
    rejects: list[str] = []
    for raw in raws:
        try:
            rec = check_assessable(parse_raw(raw, options.profile))
        except InputError as exc:
            rejects.append(_reject_line({"record": raw.ordinal, "source": raw.ref, "error": str(exc),
                                         "issues": [i.to_json() for i in exc.issues]}))
            continue
        except (B12kgError, ValueError, TypeError, KeyError, RecursionError, UnicodeDecodeError) as exc:
            rejects.append(_reject_line({"record": raw.ordinal, "source": raw.ref,
                                         "error": f"{type(exc).__name__}: {str(exc)[:300]}", "issues": []}))
            continue
        records.append((raw, rec))
    found: dict[int, dict[str, dict]] = {}
    graph_parts: list[str] = []
    for batch in _batches_of_distinct_ids(records):
        by_iri, graph = evaluate([rec for _, rec in batch], options)
        for raw, rec in batch:
            found[raw.ordinal] = by_iri[patient_iri(rec.id, options.base)]
        if options.write_graph:
            graph_parts.append(_nquads("".join(record_to_ntriples(rec, options.base) for _, rec in batch), DATA_GRAPH)
                               + _nquads(graph, INFERRED_GRAPH))
    ndjson = []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for raw, rec in records:
        line, rows = patient_outputs(rec, raw.ordinal, raw.ref, found[raw.ordinal])
        ndjson.append(line)
        w.writerows(rows)
        report.findings.update(found[raw.ordinal].keys())
    report.assessed = len(records)
    report.refused = len(rejects)
    paths = part_paths(Path(parts), index)
    _write_atomic(paths["ndjson"], "".join(x + "\n" for x in ndjson))
    _write_atomic(paths["csv"], buf.getvalue())
    _write_atomic(paths["rejects"], "".join(x + "\n" for x in rejects))
    if options.write_graph:
        _write_atomic(paths["graph"], "".join(graph_parts))
    _write_atomic(paths["done"], json.dumps({"index": index, "read": report.read, "assessed": report.assessed,
                                             "refused": report.refused, "findings": dict(report.findings)}))
    return report
