"""The cohort worker: one chunk of raw records in, part files out.

Per chunk: parse and validate every record (a refused record goes to the reject part with its
reason; nothing else is lost); load the valid ones into one pyoxigraph store with the knowledge
base; run the rules once over the whole store (set-at-a-time SPARQL updates, in sh:order); read
every finding with its provenance back with queries/report/findings-evidence.rq; write each
patient's findings with the values of its own record.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyoxigraph as ox

from ..errors import B12kgError, InputError, Issue
from ..kb import B12NS, finding_classes, ontology_graph, vocabulary
from ..rdfpatient import DEFAULT_BASE, patient_iri, record_to_ntriples
from ..record import PatientRecord, is_text, record_from_case
from ..units import to_decimal_string
from .output import CSV_HEADER, Provenance, patient_outputs
from .readers import PATIENT_COLUMNS, RawRecord

INFERRED = "urn:b12kg:graph:inferred"
DATA = "urn:b12kg:graph:data"


@dataclass(frozen=True)
class Options:
    profile: str | None = None
    engine: str = "compiled"        # "compiled" (vectorized) or "oxigraph" (SPARQL updates)
    write_graph: bool = False
    base: str = DEFAULT_BASE
    endpoint: Any = None            # a b12kg.cohort.remote.Endpoint, or None for the embedded store


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
def _fmt(d: Decimal | None) -> str | None:
    if d is None:
        return None
    s = to_decimal_string(d)
    return s[:-2] if s.endswith(".0") else s


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
    return problems


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
        from ..fhir import is_bundle, load_json, record_from_bundle

        try:
            data = load_json(raw.payload)  # type: ignore[arg-type]
        except (ValueError, RecursionError) as exc:
            raise InputError([Issue(raw.ref, None, f"is not valid JSON: {str(exc)[:200]}")], source=raw.ref) from None
        if not is_bundle(data):
            raise InputError([Issue(f"{raw.ref}.resourceType", data.get("resourceType") if isinstance(data, dict) else None,
                                    "is not Bundle")], source=raw.ref)
        return record_from_bundle(data, source=raw.ref, profile=profile or "default")
    from ..api import load_record

    return load_record(str(raw.payload), profile=profile)


# ---------------------------------------------------------------------------------------------
# Knowledge-base tables for the output (labels, cut-offs, sources), built once per process
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def threshold_table() -> dict[str, dict]:
    q = """PREFIX b12: <https://w3id.org/b12kg/> PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
    PREFIX dcterms: <http://purl.org/dc/terms/>
    SELECT ?t ?sym ?unit ?v ?lo ?hi ?src ?ver WHERE {
      ?t a b12:Threshold ; b12:criterion/skos:notation ?sym ; b12:limit ?l ; dcterms:source/b12:shortName ?src ;
         b12:verificationLevel ?ver . ?l b12:ucumUnit ?unit .
      OPTIONAL { ?l b12:numericValue ?v } OPTIONAL { ?l b12:lowerValue ?lo ; b12:upperValue ?hi } }"""
    out: dict[str, dict] = {}
    for t, sym, unit, v, lo, hi, src, ver in ontology_graph().query(q):
        d = out.setdefault(str(t), {"id": str(t).rsplit("/", 1)[-1], "source": str(src), "verification": str(ver),
                                    "limits": {}})
        if v is not None:
            d["limits"][str(unit)] = f"{sym} {_fmt(Decimal(str(v)))} {unit}"
        else:
            d["limits"][str(unit)] = f"{_fmt(Decimal(str(lo)))}-{_fmt(Decimal(str(hi)))} {unit} inclusive"
    return out


@functools.lru_cache(maxsize=1)
def label_table() -> dict[str, str]:
    from rdflib.namespace import RDFS

    g = ontology_graph()
    return {str(s): str(o) for s, o in g.subject_objects(RDFS.label)}


# ---------------------------------------------------------------------------------------------
# Running the rules and reading the findings back
# ---------------------------------------------------------------------------------------------
def _local(iri: str) -> str:
    return iri[len(B12NS):] if iri.startswith(B12NS) else iri


_USES = {B12NS + "usedResult": "result", B12NS + "usedThreshold": "threshold", B12NS + "usedFinding": "finding",
         B12NS + "usedContext": "context"}


def findings_from_rows(rows, patients: dict[str, str]) -> dict[str, dict[str, "Provenance"]]:
    """Group the rows of findings-evidence.rq by patient IRI: code -> rules and what they used."""
    out: dict[str, dict[str, dict]] = {iri: {} for iri in patients}
    for patient, finding, cls, rule, use, item, action in rows:
        if patient not in out:
            continue
        f = out[patient].setdefault(_local(cls), {"rules": set(), "result": set(), "threshold": set(), "finding": set(),
                                                  "context": set(), "action": set()})
        f["rules"].add(rule.rsplit("/", 1)[-1])
        kind = _USES.get(use) if use is not None else None
        if kind == "result":
            f["result"].add(unquote(item.rsplit("/result/", 1)[-1]))
        elif kind == "finding":
            f["finding"].add(item.rsplit("/finding/", 1)[-1])
        elif kind is not None:
            f[kind].add(item)
        if action is not None:
            f["action"].add(action)
    return {iri: {code: Provenance.of(code, d["rules"], d["result"], d["threshold"], d["finding"], d["context"], d["action"])
                  for code, d in per.items()} for iri, per in out.items()}


FINDINGS_QUERY_NAME = "report/findings-evidence.rq"


def rows_from_solutions(solutions) -> list[tuple]:
    def v(t):
        return None if t is None else t.value
    return [(v(s["patient"]), v(s["finding"]), v(s["class"]), v(s["rule"]), v(s["use"]), v(s["item"]), v(s["action"]))
            for s in solutions]


def evaluate(recs: list[PatientRecord], options: Options) -> tuple[dict[str, dict[str, dict]], str]:
    """Run the rules over a batch of records with distinct ids; findings per patient IRI and,
    if asked, the inferred triples as N-Triples."""
    if not recs:
        return {}, ""
    iris = {patient_iri(r.id, options.base): r.id for r in recs}
    if options.engine == "compiled" and options.endpoint is None:
        from ..engines.compiled import reason_records

        return reason_records(recs, options.base, want_graph=options.write_graph)
    nt = "".join(record_to_ntriples(r, options.base) for r in recs)
    if options.endpoint is not None:
        rows, graph = options.endpoint.reason(nt, want_graph=options.write_graph)
    else:
        from ..api import query_text
        from ..engines.oxigraph_engine import reason_default_graph

        store, inferred = reason_default_graph(nt, want_inferred=options.write_graph)
        rows = rows_from_solutions(store.query(query_text(FINDINGS_QUERY_NAME), use_default_graph_as_union=True))
        graph = inferred
    return findings_from_rows(rows, iris), graph


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
# Output
# ---------------------------------------------------------------------------------------------


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
            rec = parse_raw(raw, options.profile)
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
            graph_parts.append(_nquads("".join(record_to_ntriples(rec, options.base) for _, rec in batch), DATA)
                               + _nquads(graph, INFERRED))
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
