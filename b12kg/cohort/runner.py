"""Assess a cohort: stream the input in chunks to a pool of worker processes and write

- ``findings.ndjson``: per patient, its findings in the single-patient JSON shape;
- ``patients.parquet`` and ``patients.csv``: one row per assessed patient (``tables.patient_table``);
- ``findings.parquet``: the findings in long form with their evidence (``tables.findings_table``);
- ``rejects.ndjson``: refused records, each with its reason and, when one was read, patient id;
  a record whose patient id an earlier record has is refused (the first one counts);
- ``summary.json`` and ``summary.html``: counts and percentages per finding code, overall and by
  sex, age band and pregnancy, and the attrition (read, refused by reason, duplicates, assessed);
- optionally ``inferred.nq``: the input and inferred graphs (N-Quads, each in its named graph).

Every output file is written whole or not at all: workers write one part file per chunk
atomically (write, fsync, rename), and the final files are assembled from the parts and renamed
into place at the end. A run that is interrupted leaves its finished parts; rerun with the same
input and options, it resumes from them (``resume=True``) or starts again (``resume=False``).
Counts reconcile: read = assessed + refused."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._version import __version__
from ..engines import compiled
from ..errors import B12kgError
from ..inputs.csv import check_csv_header
from ..kb import finding_classes, vocabulary
from ..rdf.terms import patient_iri
from ..rules import load_rules
from .commit import switch_outputs
from .planner import GROUPED_KINDS, ChunkPlan, csv_header, input_kind, plan_grouped, plan_input, read_chunk
from .report import summary_html
from .tables import FINDINGS_SCHEMA, patient_schema, summarise
from .worker import ChunkReport, Options, _reject_line, duplicate_reject, part_paths, process_chunk, reject_reason

#: the output files, by the name of their part (worker.part_paths)
OUTPUTS = {"ndjson": "findings.ndjson", "patients": "patients.parquet", "patients_csv": "patients.csv",
           "findings": "findings.parquet", "rejects": "rejects.ndjson", "graph": "inferred.nq"}
SUMMARY_FILES = ("summary.json", "summary.html")


def output_files(write_graph: bool = False) -> list[str]:
    """The names of the files a finished run leaves in its output folder, sorted."""
    return sorted([n for k, n in OUTPUTS.items() if k != "graph" or write_graph] + list(SUMMARY_FILES))


@dataclass
class Summary:
    input: str
    out_dir: str
    read: int = 0
    assessed: int = 0
    refused: int = 0
    duplicates: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    workers: int = 0
    seconds: float = 0.0
    findings: dict = field(default_factory=dict)        # code -> patients with it (codes found)
    attrition: dict = field(default_factory=dict)       # read, refused (by reason), duplicates, assessed
    codes: dict = field(default_factory=dict)           # every code: label, kind, counts and percentages
    by: dict = field(default_factory=dict)              # sex, age_band, pregnancy -> group -> counts

    def reconciles(self) -> bool:
        return self.read == self.assessed + self.refused

    def text(self) -> str:
        lines = [f"read {self.read}, assessed {self.assessed}, refused {self.refused} "
                 f"({'counts reconcile' if self.reconciles() else 'COUNTS DO NOT RECONCILE'}); {self.seconds:.1f} s"
                 + (f"; {self.resumed_chunks} of {self.chunks} chunks resumed" if self.resumed_chunks else "")]
        for code, n in sorted(self.findings.items(), key=lambda x: (-x[1], x[0])):
            lines.append(f"  {code:36s} {n}")
        return "\n".join(lines)


def run_plan(plan: ChunkPlan, parts: str, options: Options) -> ChunkReport:
    """A worker's task: read a planned chunk of the input and assess it."""
    return process_chunk(plan.index, read_chunk(plan), parts, options)


def _fingerprint(path: Path, options: Options, chunking) -> str:
    """What a resumed run must share with the run that wrote the parts: the input's CONTENT (not
    its size and time: an input edited in place with both kept resumed from stale parts), the
    options, how the chunks were planned and the b12kg version."""
    h = hashlib.sha256()
    h.update(f"{path.resolve()}|{json.dumps(chunking, sort_keys=True)}|{__version__}".encode())
    h.update(json.dumps({k: v for k, v in asdict(options).items() if k != "endpoint"}, sort_keys=True, default=str).encode())
    if options.endpoint is not None:
        h.update(str(options.endpoint).encode())
    files = [path] if not path.is_dir() else [Path(root) / n for root, _, names in sorted(os.walk(path))
                                              for n in sorted(names)]
    for f in files:
        h.update(f"{f.relative_to(path) if f != path else f.name}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


@contextmanager
def _locked(out: Path):
    """Hold the output folder for one run: a second run on the same --out is refused with a clear
    message instead of both writing the same parts (an advisory lock on the folder itself, so no
    file is added to it; released when the run ends, however it ends)."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise B12kgError(f"{out} is in use by another b12kg run; wait for it to finish or choose another --out") from None
    try:
        yield
    finally:
        os.close(fd)


def _worker_init() -> None:
    # Warm the caches once per process (ontology, rules, vocabulary) outside the timed chunks.
    vocabulary()
    load_rules()


def assess_cohort(input_path: str | Path, out_dir: str | Path, *, profile: str | None = None,
                  workers: int | None = None, chunk_size: int | None = None, engine: str = "compiled",
                  write_graph: bool = False, resume: bool = True, progress: bool = True,
                  endpoint=None, kind: str | None = None) -> Summary:
    """Assess every record of a CSV, an NDJSON of FHIR Bundles or a folder of records; see the
    module docstring for the outputs. ``engine`` runs the rules compiled to array operations
    ("compiled", the default) or as SPARQL updates on pyoxigraph ("oxigraph"); ``endpoint`` runs
    them as SPARQL updates inside a remote SPARQL 1.1 store instead. ``kind`` names the input's
    kind (csv, ndjson, folder, bulk, omop, long) instead of detecting it (planner.input_kind).
    ``chunk_size`` fixes the records per chunk; by default chunks are sized to the input and the
    workers (planner.plan_input)."""
    if engine not in ("compiled", "oxigraph"):
        raise B12kgError(f"engine {engine!r} is not compiled or oxigraph")
    max_records = 10000 if engine == "compiled" and endpoint is None else 2000
    n_workers = workers or os.cpu_count() or 1
    path = Path(input_path)
    out = Path(out_dir)
    kind = input_kind(path, kind)
    if kind == "csv":
        problems = check_csv_header(list(csv_header(path)))
        if problems:
            raise B12kgError(f"{path}: " + "; ".join(problems))
    options = Options(profile=profile, engine=engine if endpoint is None else "remote", write_graph=write_graph,
                      endpoint=endpoint)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        parts = out / ".parts"
        manifest = out / ".parts" / "manifest.json"
        if kind in GROUPED_KINDS:
            chunking = {"chunk_size": chunk_size or max_records, "workers": None if chunk_size else n_workers}
        else:
            plans, chunking = plan_input(path, n_workers, max_records, chunk_size)
        fp = _fingerprint(path, options, chunking)
        if parts.exists():
            old = None
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                pass
            if not resume or old is None or old.get("fingerprint") != fp:
                shutil.rmtree(parts)
        parts.mkdir(exist_ok=True)
        manifest.write_text(json.dumps({"fingerprint": fp, "input": str(path), "chunking": chunking}))
        summary = Summary(input=str(path), out_dir=str(out), workers=n_workers)
        if kind in GROUPED_KINDS:
            plans = plan_grouped(path, kind, chunking["chunk_size"], parts / "grouped", chunking["workers"])
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(p.n for p in plans), unit="patient", smoothing=0.1, dynamic_ncols=True)
        t0 = time.perf_counter()
        reports: dict[int, ChunkReport] = {}
        assembler = _Assembler(parts, out, write_graph, options.base)

        def done(r: ChunkReport) -> None:
            reports[r.index] = r
            assembler.advance(reports.keys())
            if bar is not None:
                bar.update(r.read)

        if engine == "compiled" and endpoint is None:
            # Compile once here: forked workers inherit the program instead of each parsing the rules.
            compiled.program()
        try:
            todo = []
            for plan in plans:
                r = _resumed(parts, plan.index)
                if r is None:
                    todo.append(plan)
                else:
                    summary.resumed_chunks += 1
                    done(r)
            if n_workers <= 1 or len(todo) <= 1:
                _worker_init()
                for plan in todo:
                    done(run_plan(plan, str(parts), options))
            else:
                with ProcessPoolExecutor(max_workers=n_workers, initializer=_worker_init) as pool:
                    for f in as_completed([pool.submit(run_plan, plan, str(parts), options) for plan in todo]):
                        done(f.result())
            if bar is not None:
                bar.close()
            summary.chunks = len(plans)
            summary.read = sum(r.read for r in reports.values())
            staged = assembler.finish(len(plans))
        except BaseException:
            assembler.abort()          # no half-written output file is left; finished parts stay for resume
            raise
        summary.refused = sum(assembler.refused.values())
        summary.duplicates = assembler.refused.get(DUPLICATE, 0)
        summary.assessed = assembler.assessed
        summary.attrition = {"read": summary.read,
                             "refused": dict(sorted(assembler.refused.items(), key=lambda x: (-x[1], x[0]))),
                             "duplicates": summary.duplicates, "assessed": summary.assessed}
        counts = summarise(pq.ParquetFile(staged[OUTPUTS["patients"]]).iter_batches(batch_size=65536))
        classes = finding_classes()
        summary.codes = {c: {"label": classes[c]["label"], "kind": classes[c]["kind"], **v}
                         for c, v in counts["overall"]["codes"].items()}
        summary.by = counts["by"]
        summary.findings = {c: v["patients"] for c, v in summary.codes.items() if v["patients"]}
        summary.seconds = time.perf_counter() - t0
        doc = asdict(summary)
        html = parts / "summary.html.assembling"
        with open(html, "w", encoding="utf-8") as fh:
            fh.write(summary_html(doc))
            fh.flush()
            os.fsync(fh.fileno())
        staged["summary.html"] = html
        # all or nothing (cohort/commit.py): the files are switched in, summary.json (the manifest) last
        switch_outputs(out, staged, doc, names=[*OUTPUTS.values(), *SUMMARY_FILES])
        shutil.rmtree(parts)
        return summary


DUPLICATE = "duplicate patient id"


def _resumed(parts: Path, index: int) -> ChunkReport | None:
    p = part_paths(parts, index)["done"]
    if not p.exists():
        return None
    d = json.loads(p.read_text())
    return ChunkReport(index=index, read=d["read"], assessed=d["assessed"], refused=d["refused"],
                       findings=Counter(d["findings"]))


class _Assembler:
    """Appends finished chunks, in input order, to temporary output files while the workers go on
    (so the end of a run has little left to copy); ``finish`` syncs them and renames them into
    place. The temporary files live in the parts folder (same file system, so the rename is
    atomic), never in the output folder: a run killed at any moment leaves in the output folder
    only complete files of an earlier run or none. The part files stay until the run is complete,
    for resume; a rerun starts the temporary files afresh.

    It also refuses a patient id already assessed in an earlier chunk (the first one counts; the
    worker does the same within a chunk): the record leaves every output, its refusal joins the
    rejects. It counts the refusals by reason and the patients assessed."""

    def __init__(self, parts: Path, out: Path, write_graph: bool, base: str):
        self.parts, self.out, self.base = parts, out, base
        self.kinds = [k for k in OUTPUTS if k != "graph" or write_graph]
        self.files = {k: open(self._tmp(k), "wb") for k in self.kinds}
        self.patients = pq.ParquetWriter(self.files["patients"], patient_schema())
        self.findings = pq.ParquetWriter(self.files["findings"], FINDINGS_SCHEMA)
        self.csv = pacsv.CSVWriter(self.files["patients_csv"], patient_schema())
        self.seen: dict[str, tuple[int, str]] = {}      # patient id -> (record, source) of its first record
        self.refused: Counter = Counter()
        self.assessed = 0
        self.next = 0

    def _tmp(self, kind: str) -> Path:
        return self.parts / (OUTPUTS[kind] + ".assembling")

    def advance(self, finished) -> None:
        while self.next in finished:
            self._append(part_paths(self.parts, self.next))
            self.next += 1

    def _append(self, paths: dict[str, Path]) -> None:
        patients = pq.read_table(paths["patients"], schema=patient_schema())
        findings = pq.read_table(paths["findings"], schema=FINDINGS_SCHEMA)
        ndjson = paths["ndjson"].read_bytes().splitlines(keepends=True)
        rejects = [json.loads(x) for x in paths["rejects"].read_text(encoding="utf-8").splitlines() if x]
        graph = paths["graph"].read_bytes() if "graph" in self.kinds else b""
        ids = patients.column("patient").to_pylist()
        records = patients.column("record").to_pylist()
        sources = patients.column("source").to_pylist()
        dup = [pid in self.seen for pid in ids]
        gone = set()
        for pid, rec, src, d in zip(ids, records, sources, dup):
            if d:
                gone.add(pid)
                rejects.append(duplicate_reject(rec, src, pid, *self.seen[pid]))
            else:
                self.seen[pid] = (rec, src)
        if gone:
            rejects.sort(key=lambda r: r["record"])
            patients = patients.filter(pa.array([not d for d in dup]))
            findings = findings.filter(pc.invert(pc.is_in(findings.column("patient"), pa.array(sorted(gone)))))
            ndjson = [line for line, d in zip(ndjson, dup) if not d]
            if graph:
                graph = _without_patients(graph, [patient_iri(pid, self.base) for pid in gone])
        self.assessed += patients.num_rows
        self.refused.update(reject_reason(r) for r in rejects)
        self.patients.write_table(patients)
        self.findings.write_table(findings)
        self.csv.write_table(patients)
        self.files["ndjson"].write(b"".join(ndjson))
        self.files["rejects"].write("".join(_reject_line(r) + "\n" for r in rejects).encode())
        if "graph" in self.kinds:
            self.files["graph"].write(graph)

    def finish(self, n: int) -> dict[str, Path]:
        """The complete, synced files of the set (output name -> file), for commit.switch_outputs."""
        if self.next != n:
            raise B12kgError(f"internal error: {self.next} of {n} chunks assembled")
        self.patients.close()
        self.findings.close()
        self.csv.close()
        for kind, fh in self.files.items():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        return {OUTPUTS[kind]: self._tmp(kind) for kind in self.files}

    def abort(self) -> None:
        for writer in (self.patients, self.findings, self.csv):
            try:
                writer.close()      # before its file: a writer closed later (by the collector) writes to a closed file
            except (OSError, ValueError):
                pass
        for kind, fh in self.files.items():
            fh.close()
            try:
                os.unlink(self._tmp(kind))
            except OSError:
                pass


def _without_patients(nquads: bytes, iris: list[str]) -> bytes:
    """The N-Quads lines that mention none of these patients: neither their IRI nor a node under
    it (``<patient>/result/...``, ``<patient>/finding/...``)."""
    marks = [m for iri in iris for m in (f"<{iri}>".encode(), f"<{iri}/".encode())]
    return b"".join(line for line in nquads.splitlines(keepends=True) if not any(m in line for m in marks))
