"""Assess a cohort: stream the input in chunks to a pool of worker processes, write findings per
patient (NDJSON and CSV), refused records (NDJSON, each with its reason) and optionally the
inferred graph (N-Quads, input and inferred triples in their own named graphs).

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

from .._version import __version__
from ..engines import compiled
from ..errors import B12kgError
from ..inputs.csv import check_csv_header
from ..kb import vocabulary
from ..rules import load_rules
from .commit import switch_outputs
from .output import CSV_HEADER
from .planner import GROUPED_KINDS, ChunkPlan, csv_header, input_kind, plan_chunks, plan_grouped, read_chunk
from .worker import ChunkReport, Options, part_paths, process_chunk

OUTPUTS = {"ndjson": "findings.ndjson", "csv": "findings.csv", "rejects": "rejects.ndjson", "graph": "inferred.nq"}


@dataclass
class Summary:
    input: str
    out_dir: str
    read: int = 0
    assessed: int = 0
    refused: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    seconds: float = 0.0
    findings: dict = field(default_factory=dict)

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


def _fingerprint(path: Path, options: Options, chunk_size: int) -> str:
    """What a resumed run must share with the run that wrote the parts: the input's CONTENT (not
    its size and time: an input edited in place with both kept resumed from stale parts), the
    options, the chunk size and the b12kg version."""
    h = hashlib.sha256()
    h.update(f"{path.resolve()}|{chunk_size}|{__version__}".encode())
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
    kind (csv, ndjson, folder, bulk, omop, long) instead of detecting it (planner.input_kind)."""
    if engine not in ("compiled", "oxigraph"):
        raise B12kgError(f"engine {engine!r} is not compiled or oxigraph")
    if chunk_size is None:
        chunk_size = 10000 if engine == "compiled" and endpoint is None else 2000
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
        fp = _fingerprint(path, options, chunk_size)
        if parts.exists():
            old = None
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                pass
            if not resume or old is None or old.get("fingerprint") != fp:
                shutil.rmtree(parts)
        parts.mkdir(exist_ok=True)
        manifest.write_text(json.dumps({"fingerprint": fp, "input": str(path), "chunk_size": chunk_size}))
        summary = Summary(input=str(path), out_dir=str(out))
        if kind in GROUPED_KINDS:
            plans = plan_grouped(path, kind, chunk_size, parts / "grouped")
        else:
            plans = list(plan_chunks(path, chunk_size))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(p.n for p in plans), unit="patient", smoothing=0.1, dynamic_ncols=True)
        t0 = time.perf_counter()
        reports: dict[int, ChunkReport] = {}
        counts: Counter = Counter()

        assembler = _Assembler(parts, out, write_graph)

        def done(r: ChunkReport) -> None:
            reports[r.index] = r
            counts.update(r.findings)
            assembler.advance(reports.keys())
            if bar is not None:
                bar.update(r.read)

        n_workers = workers or os.cpu_count() or 1
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
            for r in reports.values():
                summary.read += r.read
                summary.assessed += r.assessed
                summary.refused += r.refused
            summary.findings = dict(counts)
            staged = assembler.finish(len(plans))
        except BaseException:
            assembler.abort()          # no half-written output file is left; finished parts stay for resume
            raise
        summary.seconds = time.perf_counter() - t0
        switch_outputs(out, staged, asdict(summary), names=OUTPUTS.values())   # all or nothing: cohort/commit.py
        shutil.rmtree(parts)
        return summary


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
    for resume; a rerun starts the temporary files afresh."""

    def __init__(self, parts: Path, out: Path, write_graph: bool):
        self.parts, self.out = parts, out
        self.kinds = [k for k in OUTPUTS if k != "graph" or write_graph]
        self.files = {}
        for kind in self.kinds:
            fh = open(self._tmp(kind), "wb")
            if kind == "csv":
                fh.write((",".join(CSV_HEADER) + "\n").encode())
            self.files[kind] = fh
        self.next = 0

    def _tmp(self, kind: str) -> Path:
        return self.parts / (OUTPUTS[kind] + ".assembling")

    def advance(self, finished: set[int]) -> None:
        while self.next in finished:
            paths = part_paths(self.parts, self.next)
            for kind in self.kinds:
                src = paths[kind]
                if src.exists():
                    with open(src, "rb") as fh:
                        shutil.copyfileobj(fh, self.files[kind], 1 << 20)
            self.next += 1

    def finish(self, n: int) -> dict[str, Path]:
        """The complete, synced files of the set (output name -> file), for commit.switch_outputs."""
        if self.next != n:
            raise B12kgError(f"internal error: {self.next} of {n} chunks assembled")
        for kind, fh in self.files.items():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        return {OUTPUTS[kind]: self._tmp(kind) for kind in self.files}

    def abort(self) -> None:
        for kind, fh in self.files.items():
            fh.close()
            try:
                os.unlink(self._tmp(kind))
            except OSError:
                pass
