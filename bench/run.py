#!/usr/bin/env python
"""Benchmark of the b12kg engines on seeded synthetic cohorts (see bench/README.md).

    python bench/run.py [--sizes 1000,10000,100000,1000000] [--out bench/results.md]

Generates the cohorts as CSV under bench/out/ (ignored by git; reused when present), then runs
each engine on each size where feasible, each measurement in a fresh subprocess, and records
patients per second and peak memory of the measured process tree. Writes a Markdown report.

Not a test: nothing here asserts; the report says which targets are met."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PY = sys.executable
SEED = 20240601
PAGE = os.sysconf("SC_PAGE_SIZE")

ENGINES = ("pyshacl", "api", "compiled", "oxigraph", "remote", "numpy")
LABELS = {
    "pyshacl": "pySHACL reference, single-patient API in a loop (`assess(engine=\"pyshacl\")`)",
    "api": "single-patient API in a loop (`assess(engine=\"oxigraph\")`)",
    "compiled": "cohort engine, `b12kg assess-cohort --engine compiled`, CSV to output files",
    "oxigraph": "cohort engine, `b12kg assess-cohort --engine oxigraph`, CSV to output files",
    "remote": "cohort engine, `b12kg assess-cohort --endpoint` on a local `oxigraph serve`",
    "numpy": "NumPy reference (b12kg/reference_numpy.py), default profile",
}
# Largest size each engine is run at by default (then the time budget decides).
MAX_SIZE = {"pyshacl": 1000, "api": 10_000, "compiled": 10**9, "oxigraph": 100_000, "remote": 10_000, "numpy": 10**9}

TARGET_E2E_SECONDS = 120
TARGET_PEAK_BYTES = 2 * 1024**3


# ---------------------------------------------------------------------------------------------
# Cohorts
# ---------------------------------------------------------------------------------------------
def cohort_csv(size: int, seed: int) -> Path:
    """bench/out/cohort-<size>-<seed>.csv: synth.generate(size, seed, edge_cases=False), every
    patient with profile default (so that every engine and the NumPy reference compute the same
    thing); reused when present."""
    path = OUT / f"cohort-{size}-{seed}.csv"
    if path.exists():
        return path
    sys.path.insert(0, str(REPO))
    from b12kg.testing import synth
    from b12kg.inputs.csv import write_csv

    def cases():
        for case in synth.generate(size, seed=seed, edge_cases=False):
            case["profile"] = "default"
            yield case

    t = time.perf_counter()
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        write_csv(cases(), fh)
    os.replace(tmp, path)
    print(f"  generated {path.relative_to(REPO)} ({size} patients, {path.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t:.1f} s", flush=True)
    return path


# ---------------------------------------------------------------------------------------------
# Children: the in-process measurements (each run in a fresh interpreter)
# ---------------------------------------------------------------------------------------------
def child_loop(engine: str, csv: str, n: int, result: str) -> None:
    """The single-patient API in a loop over the first n rows: read the row, load and check
    the record, assess it (rules, explanation queries, Assessment built)."""
    sys.path.insert(0, str(REPO / "tests"))
    from itertools import islice

    from b12kg import api
    from b12kg.cohort.worker import parse_raw
    from b12kg.cohort.planner import open_input

    raws = list(islice(open_input(csv), n))
    api.assess(parse_raw(raws[0], None), engine=engine)     # warm: knowledge base, rules, store
    t = time.perf_counter()
    codes = 0
    progress = Path(result + ".progress")
    for i, raw in enumerate(raws, 1):
        codes += len(api.assess(parse_raw(raw, None), engine=engine).codes)
        if i % 250 == 0:      # so that a measurement stopped at its timeout still reports its rate
            progress.write_text(json.dumps({"n": i, "seconds": time.perf_counter() - t}))
    seconds = time.perf_counter() - t
    Path(result).write_text(json.dumps({"n": len(raws), "seconds": seconds, "codes": codes}))


def child_numpy(csv: str, result: str, batch: int = 50_000) -> None:
    """Load the records (CSV row -> checked PatientRecord, the cohort engine's loader) and build
    the columns batch by batch; then findings(columns), best of 3."""
    sys.path.insert(0, str(REPO / "tests"))
    from itertools import islice

    import numpy as np

    from oracle import reference_numpy as rn
    from b12kg.cohort.worker import parse_raw
    from b12kg.cohort.planner import open_input

    # warm (not timed): vocabulary, unit registry, on the first 100 rows
    rn.columns_from_records([parse_raw(r, None) for r in islice(open_input(csv), 100)])
    t_load = t_cols = 0.0
    parts = []
    raws_it = open_input(csv)
    refused = 0
    while True:
        t = time.perf_counter()
        raws = list(islice(raws_it, batch))
        if not raws:
            break
        recs = []
        for r in raws:
            try:
                recs.append(parse_raw(r, None))
            except Exception:  # noqa: BLE001 - counted, as the cohort engine does
                refused += 1
        t_load += time.perf_counter() - t
        t = time.perf_counter()
        parts.append(rn.columns_from_records(recs))
        t_cols += time.perf_counter() - t
        del recs, raws
    t = time.perf_counter()
    cols = rn.concat_columns(parts)
    t_cols += time.perf_counter() - t
    del parts
    times = []
    out = None
    for _ in range(3):
        t = time.perf_counter()
        out = rn.findings(cols)
        times.append(time.perf_counter() - t)
    totals = {c: int(np.count_nonzero(v)) for c, v in out.items() if np.any(v)}
    Path(result).write_text(json.dumps({"n": cols.n, "refused": refused, "load_seconds": t_load,
                                        "columns_seconds": t_cols, "findings_seconds": min(times),
                                        "findings_seconds_all": times, "totals": totals}))


# ---------------------------------------------------------------------------------------------
# Measuring a subprocess tree
# ---------------------------------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                s = fh.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def _tree(pid: int) -> list[int]:
    kids = _children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out


def _rss_pss(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/statm") as fh:
            rss = int(fh.read().split()[1]) * PAGE
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


class Sampler(threading.Thread):
    """Samples the memory of a process tree (RSS and PSS summed over the tree) every interval."""

    def __init__(self, pids_fn, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pids_fn = pids_fn
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            rss = pss = 0
            for p in self.pids_fn():
                r, s = _rss_pss(p)
                rss += r
                pss += s
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.stop.wait(self.interval)


def measure(cmd: list[str], *, log: Path, env: dict | None = None, extra_pids=None,
            timeout: float | None = None) -> dict:
    """Run cmd in a fresh process (its own process group); wall time, exit code, peak tree RSS/PSS
    (sampled), max RSS of one process of the tree (wait4), load average before and after. After
    ``timeout`` seconds the process group is stopped (SIGTERM) and the row says so."""
    load0 = os.getloadavg()
    timed_out = threading.Event()
    with open(log, "w") as lf:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        if timeout:
            def stop():
                timed_out.set()
                try:
                    os.killpg(p.pid, 15)
                except ProcessLookupError:
                    pass
            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
        sampler = Sampler(lambda: _tree(p.pid))
        sampler.start()
        extra = None
        if extra_pids is not None:
            extra = Sampler(extra_pids)
            extra.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
        if extra is not None:
            extra.stop.set()
            extra.join()
        if timeout:
            timer.cancel()
    return {"rc": p.returncode, "timed_out": timed_out.is_set(), "wall": wall, "peak_tree_rss": sampler.peak_rss, "peak_tree_pss": sampler.peak_pss,
            "max_proc_rss": ru.ru_maxrss * 1024, "load_before": load0, "load_after": os.getloadavg(),
            "server_peak_rss": extra.peak_rss if extra else None, "log": str(log.relative_to(REPO))}


# ---------------------------------------------------------------------------------------------
# The engines
# ---------------------------------------------------------------------------------------------
GENERATOR_N = 20_000
TARGET_GENERATOR_RATE = 20_000


def generator_rate(seed: int = 11) -> float:
    """synth.generate's records a second, best of three runs of GENERATOR_N records, in a fresh
    process (the cohorts, up to 1,000,000 patients, are generated with it)."""
    code = ("import time; from b12kg.testing import synth; list(synth.generate(10)); best = 0.0\n"
            "for _ in range(3):\n"
            "    t0 = time.perf_counter()\n"
            f"    for _ in synth.generate({GENERATOR_N}, seed={seed}): pass\n"
            f"    best = max(best, {GENERATOR_N} / (time.perf_counter() - t0))\n"
            "print(best)")
    out = subprocess.run([PY, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _cli(csv: Path, out: Path, *args: str) -> list[str]:
    return [PY, "-m", "b12kg.cli", "assess-cohort", str(csv), "--out", str(out), "--quiet", "--restart", *args]


def _summary(out: Path) -> tuple[dict | None, float | None]:
    """(finding totals, the runner's own seconds) from summary.json."""
    try:
        d = json.loads((out / "summary.json").read_text())
        return d["findings"], d["seconds"]
    except (OSError, ValueError, KeyError):
        return None, None


def run_engine(engine: str, size: int, csv: Path, args) -> dict:
    tag = f"{engine}-{size}"
    log = OUT / f"{tag}.log"
    res = OUT / f"{tag}.result.json"
    res.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    row: dict = {"engine": engine, "size": size}
    if engine in ("pyshacl", "api"):
        n = min(size, args.pyshacl_n) if engine == "pyshacl" else size
        prog = Path(str(res) + ".progress")
        prog.unlink(missing_ok=True)
        m = measure([PY, __file__, "--child", "loop", "--engine", "pyshacl" if engine == "pyshacl" else "oxigraph",
                     "--csv", str(csv), "--n", str(n), "--result", str(res)], log=log, env=env, timeout=args.timeout)
        row.update(m)
        if m["timed_out"] and prog.exists():
            r = json.loads(prog.read_text())
            row.update(rc=0, patients=r["n"], seconds=r["seconds"], pps=r["n"] / r["seconds"],
                       note=f"STOPPED at the {args.timeout:,.0f} s timeout after {r['n']:,} of {n:,} patients; rate "
                            f"over those (the per-patient time grows along the loop, so this overstates the full run's rate)")
        elif m["rc"] == 0:
            r = json.loads(res.read_text())
            row.update(patients=r["n"], seconds=r["seconds"], pps=r["n"] / r["seconds"])
            if r["n"] < size:
                row["note"] = f"{r['n']} of the {size} patients, extrapolated to {size}: {size / row['pps']:.0f} s"
            else:
                row["note"] = "loop time (read + load + assess), warm; wall includes start-up"
    elif engine in ("compiled", "oxigraph"):
        out = OUT / f"run-{tag}"
        m = measure(_cli(csv, out, "--engine", engine), log=log, env=env, timeout=args.timeout)
        totals, inner = _summary(out)
        row.update(m, patients=size, seconds=m["wall"], pps=size / m["wall"], totals=totals, inner_seconds=inner,
                   note="end to end: process start to output files written"
                        + (f"; the runner's own time (summary.json, after start-up and imports) {inner:,.1f} s = "
                           f"{size / inner:,.0f} patients/s" if inner else ""))
        shutil.rmtree(out, ignore_errors=True)
    elif engine == "remote":
        from b12kg.engines.remote import oxigraph_server

        with oxigraph_server(binary=args.oxigraph, log=OUT / f"{tag}.server.log") as server:
            base = server.url
            out = OUT / f"run-{tag}"
            m = measure(_cli(csv, out, "--endpoint", f"{base}/query", "--update-endpoint", f"{base}/update",
                             "--store-endpoint", f"{base}/store"), log=log, env=env,
                        extra_pids=lambda: [server.pid], timeout=args.timeout)
            totals, inner = _summary(out)
            row.update(m, patients=size, seconds=m["wall"], pps=size / m["wall"], totals=totals, inner_seconds=inner,
                       note=f"end to end; in-memory oxigraph server {args.oxigraph_version}, its peak RSS "
                            f"{_mb(m['server_peak_rss'])} MB not in the tree columns")
            shutil.rmtree(out, ignore_errors=True)
    elif engine == "numpy":
        m = measure([PY, __file__, "--child", "numpy", "--csv", str(csv), "--result", str(res)], log=log, env=env,
                    timeout=args.timeout)
        row.update(m)
        if m["rc"] == 0:
            r = json.loads(res.read_text())
            row.update(patients=r["n"], seconds=r["findings_seconds"], pps=r["n"] / r["findings_seconds"],
                       load_seconds=r["load_seconds"], columns_seconds=r["columns_seconds"], totals=r["totals"],
                       pps_with_load=r["n"] / (r["load_seconds"] + r["columns_seconds"] + r["findings_seconds"]),
                       note=f"findings(columns) {r['findings_seconds']:.3f} s (best of 3); loading the records "
                            f"{r['load_seconds']:.1f} s and building the columns {r['columns_seconds']:.1f} s, "
                            f"one process")
    if row.get("rc"):
        row["note"] = (f"NOT FINISHED: stopped at the {args.timeout:,.0f} s timeout" if row.get("timed_out")
                       else f"FAILED (exit {row['rc']}), see {row['log']}")
        row.pop("pps", None)
        row["seconds"] = None
    return row


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _mb(b) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f}"


def _fmt_s(x) -> str:
    return "-" if x is None else f"{x:,.1f}" if x >= 100 else f"{x:.3g}"


def _fmt_pps(x) -> str:
    return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"nproc": os.cpu_count(), "cpu": model, "ram": mem, "python": platform.python_version(),
            "platform": platform.platform(), "commit": git("rev-parse", "HEAD"),
            "dirty": len(dirty.splitlines()) if dirty != "unknown" else None}


def _versions() -> str:
    try:
        import numpy
        import pyoxigraph
        import pyshacl
        import rdflib
        return (f"numpy {numpy.__version__}, pyoxigraph {pyoxigraph.__version__}, pyshacl {pyshacl.__version__}, "
                f"rdflib {rdflib.__version__}")
    except Exception:  # noqa: BLE001
        return "unknown"


def report(rows: list[dict], skipped: list[str], sizes: list[int], args, machine: dict, started: str,
           finished: str, command: str) -> str:
    by = {(r["engine"], r["size"]): r for r in rows}
    L = []
    L.append("# b12kg benchmark results\n")
    L.append(f"Produced by `bench/run.py` (see bench/README.md for what each measurement means). Every number "
             f"below was measured in this run; sizes or engines not run say so.\n")
    L.append("## Run\n")
    L.append(f"- command: `{command}`")
    L.append(f"- started {started}, finished {finished}")
    L.append(f"- git commit {machine['commit']}" + (f" (+{machine['dirty']} modified tracked files in the working tree)"
                                                   if machine["dirty"] else ""))
    L.append(f"- machine: {machine['nproc']} CPUs (nproc), {machine['cpu']}, {machine['ram'] / 2**30:.1f} GiB RAM; "
             f"{machine['platform']}; Python {machine['python']}; {_versions()}")
    L.append(f"- load average (1, 5, 15 min) at the start: {args.load_start}; at the end: "
             f"{tuple(round(x, 2) for x in os.getloadavg())}. Other developers' test runs share the 2 cores, "
             f"so throughputs are lower than on an idle machine; each row gives the 1-min load average before "
             f"and after it.")
    L.append(f"- cohorts: `b12kg.testing.synth.generate(n, seed={args.seed}, edge_cases=False)` (realistic mix: about six "
             f"results a patient, mixed units, some censored values, every context and symptom), profile forced "
             f"to `default`, written as CSV with `b12kg.inputs.csv.write_csv` to bench/out/ (not committed)")
    L.append(f"- start-up cache (b12kg.cache: the compiled rules and the vocabulary, in the user's cache folder) "
             f"built or found before the measurements, in {args.cache_seconds:.1f} s, as on any first use; every "
             f"measurement starts with it warm")
    L.append(f"- synthetic generator: `b12kg.testing.synth.generate` {args.generator_rate:,.0f} records/s (best of 3 runs "
             f"of {GENERATOR_N:,} records, fresh process)")
    L.append("")
    L.append("## Throughput and peak memory\n")
    L.append("patients/s: patients over seconds, where seconds are: end to end (process start to output files "
             "written) for the cohort engine; the warm per-patient loop for the single-patient API; "
             "`findings(columns)` only for the NumPy reference (its loading is in the note). Peak tree PSS/RSS: "
             "the highest sum over the measured process and all its descendants (workers), sampled every 0.2 s "
             "from /proc (PSS shares pages between forked workers fairly; the RSS sum counts shared pages in "
             "every process). Max process RSS: ru_maxrss from wait4, the largest single process of the tree.\n")
    L.append("| engine | patients | seconds | patients/s | peak tree PSS MB | peak tree RSS MB | max process RSS MB "
             "| load 1-min before → after | note |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for e in ENGINES:
        for s in sizes:
            r = by.get((e, s))
            if r is None:
                continue
            L.append(f"| {e} | {r.get('patients', s):,} | {_fmt_s(r.get('seconds'))} | "
                     f"{_fmt_pps(r.get('pps'))} | {_mb(r.get('peak_tree_pss'))} | {_mb(r.get('peak_tree_rss'))} | "
                     f"{_mb(r.get('max_proc_rss'))} | {r['load_before'][0]:.2f} → {r['load_after'][0]:.2f} | "
                     f"{r.get('note', '')} |")
    L.append("")
    L.append("Engines: " + "; ".join(f"**{e}**: {LABELS[e]}" for e in ENGINES) + ".\n")
    if skipped:
        L.append("Not run:\n")
        L.extend(f"- {s}" for s in skipped)
        L.append("")
    # ratios
    L.append("## Ratios\n")
    ratios = []

    def pps(e, s):
        r = by.get((e, s))
        return None if r is None else r.get("pps")
    cohort = "compiled" if any(r["engine"] == "compiled" and r.get("pps") for r in rows) else "oxigraph"
    for s in sizes:
        c, p, a, o, n = pps(cohort, s), pps("pyshacl", s), pps("api", s), pps("oxigraph", s), pps("numpy", s)
        if c and p:
            ratios.append(f"- {s:,}: cohort engine ({cohort}) end to end vs pySHACL reference (warm loop): {c / p:,.0f}x")
            inner = by[(cohort, s)].get("inner_seconds")
            if inner:
                ratios.append(f"- {s:,}: cohort engine ({cohort}) without its start-up (summary.json seconds) vs "
                              f"pySHACL reference (warm loop): {s / inner / p:,.0f}x")
        if c and a:
            ratios.append(f"- {s:,}: cohort engine ({cohort}) vs single-patient API (oxigraph): {c / a:,.0f}x")
        if cohort == "compiled" and c and o:
            ratios.append(f"- {s:,}: cohort engine compiled vs cohort engine oxigraph: {c / o:,.1f}x")
        if c and n:
            nr = by[("numpy", s)]
            ratios.append(f"- {s:,}: NumPy reference `findings(columns)` vs cohort engine ({cohort}) end to end: "
                          f"{n / c:,.0f}x faster; NumPy reference including loading the records and building the "
                          f"columns (one process): {nr['pps_with_load'] / c:,.2f}x the cohort engine's throughput")
        r = by.get(("remote", s))
        if c and r and r.get("pps"):
            ratios.append(f"- {s:,}: cohort engine ({cohort}) vs remote-store path: {c / r['pps']:,.1f}x")
    L.extend(ratios or ["- none (not enough engines run)"])
    L.append("")
    # cross-check
    L.append("## Cross-check of the finding totals\n")
    L.append("Total number of patients per finding code, cohort engine (summary.json) against the NumPy "
             "reference (a sanity check only; tests/test_reference_numpy.py compares patient by patient and "
             "names the known disagreements).\n")
    any_check = False
    for s in sizes:
        n = by.get(("numpy", s))
        for e in ("compiled", "oxigraph", "remote"):
            r = by.get((e, s))
            if not (n and r and n.get("totals") is not None and r.get("totals") is not None):
                continue
            any_check = True
            codes = sorted(set(n["totals"]) | set(r["totals"]))
            diff = {c: r["totals"].get(c, 0) - n["totals"].get(c, 0) for c in codes
                    if r["totals"].get(c, 0) != n["totals"].get(c, 0)}
            L.append(f"- {s:,}, {e}: " + ("identical totals for all codes" if not diff else
                                          f"{len(diff)} codes differ (engine minus reference): "
                                          + ", ".join(f"{c} {d:+d}" for c, d in sorted(diff.items()))))
    if not any_check:
        L.append("- not available")
    L.append("")
    # targets
    L.append("## Targets of the issue\n")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    big = by.get((cohort, 1_000_000))
    if big and big.get("pps"):
        ok_t = big["seconds"] <= TARGET_E2E_SECONDS
        ok_m = (big["peak_tree_pss"] or 0) <= TARGET_PEAK_BYTES
        L.append(f"| 1,000,000 patients end to end in ≤ {TARGET_E2E_SECONDS} s | {big['seconds']:,.1f} s ({cohort}) "
                 f"| {'met' if ok_t else 'not met'} |")
        L.append(f"| peak memory ≤ 2 GB at 1,000,000 | tree PSS {_mb(big['peak_tree_pss'])} MB, tree RSS "
                 f"{_mb(big['peak_tree_rss'])} MB, largest process {_mb(big['max_proc_rss'])} MB | "
                 f"{'met' if ok_m else 'not met'} (judged on the tree PSS) |")
    else:
        L.append(f"| 1,000,000 patients end to end in ≤ {TARGET_E2E_SECONDS} s | not run | not measured |")
        L.append("| peak memory ≤ 2 GB at 1,000,000 | not run | not measured |")
    c1, p1 = pps(cohort, 1000), pps("pyshacl", 1000)
    if c1 and p1:
        L.append(f"| ≥ 100x pySHACL throughput at 1,000 | {c1 / p1:,.0f}x ({cohort}) | "
                 f"{'met' if c1 / p1 >= 100 else 'not met'} |")
    else:
        L.append("| ≥ 100x pySHACL throughput at 1,000 | not run | not measured |")
    cm, nm = pps(cohort, 1_000_000), pps("numpy", 1_000_000)
    if cm and nm:
        nr = by[("numpy", 1_000_000)]
        L.append(f"| stretch: within 10x of the vectorized reference at 1,000,000 | reference `findings(columns)` "
                 f"{nm / cm:,.0f}x faster than the cohort engine; reference including loading "
                 f"{nr['pps_with_load'] / cm:,.2f}x the cohort engine's throughput | "
                 f"{'met' if nm / cm <= 10 else 'not met'} against `findings(columns)`; "
                 f"{'met' if nr['pps_with_load'] / cm <= 10 else 'not met'} against the reference with loading |")
    else:
        L.append("| stretch: within 10x of the vectorized reference at 1,000,000 | not run | not measured |")
    L.append(f"| synthetic generator ≥ {TARGET_GENERATOR_RATE:,} records/s (the 1,000,000-patient cohort in under a "
             f"minute) | {args.generator_rate:,.0f} records/s | "
             f"{'met' if args.generator_rate >= TARGET_GENERATOR_RATE else 'not met'} |")
    L.append("")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"any of {','.join(ENGINES)}")
    ap.add_argument("--out", default=str(REPO / "bench" / "results.md"))
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--pyshacl-n", type=int, default=200,
                    help="patients the pySHACL loop runs (its throughput is extrapolated to the size)")
    ap.add_argument("--budget", type=float, default=1500,
                    help="skip a measurement when its time predicted from the previous size is above this (s)")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="stop a measurement after this many seconds (a loop reports its rate up to then)")
    ap.add_argument("--oxigraph", default=shutil.which("oxigraph") or str(Path(PY).parent / "oxigraph"),
                    help="the oxigraph server binary for the remote-store measurement")
    # children
    ap.add_argument("--child", choices=("loop", "numpy"), help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "loop":
        child_loop(args.engine, args.csv, args.n, args.result)
        return 0
    if args.child == "numpy":
        child_numpy(args.csv, args.result)
        return 0

    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e}")
    OUT.mkdir(parents=True, exist_ok=True)
    args.load_start = tuple(round(x, 2) for x in os.getloadavg())
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = _machine()
    print(f"b12kg benchmark: sizes {sizes}, engines {engines}; {machine['nproc']} CPUs, load {args.load_start}",
          flush=True)

    skipped: list[str] = []
    import importlib.util

    sys.path.insert(0, str(REPO))
    if "compiled" in engines and importlib.util.find_spec("b12kg.engines.compiled") is None:
        skipped.append("compiled: b12kg/engines/compiled.py is not there yet; the oxigraph cohort engine is "
                       "measured at every size instead")
        engines.remove("compiled")
        MAX_SIZE["oxigraph"] = 10**9
    if "remote" in engines:
        if importlib.util.find_spec("b12kg.cohort.remote") is None:
            skipped.append("remote: b12kg/cohort/remote.py is not there yet")
            engines.remove("remote")
        elif not Path(args.oxigraph).exists():
            skipped.append(f"remote: no oxigraph server binary ({args.oxigraph})")
            engines.remove("remote")
        else:
            v = subprocess.run([args.oxigraph, "--version"], capture_output=True, text=True)
            args.oxigraph_version = (v.stdout.strip() or "oxigraph").replace("oxigraph ", "")
    for s in skipped:
        print("  note:", s, flush=True)

    # The start-up cache (b12kg.cache), built once here as any first use builds it: every
    # measurement then starts with it warm, as every run after the first does.
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", "from b12kg.kb import vocabulary; vocabulary(); "
                    "from b12kg.engines.compiled import program; program()"], cwd=REPO, check=True)
    args.cache_seconds = time.perf_counter() - t0
    print(f"  start-up cache built or found in {args.cache_seconds:.1f} s", flush=True)
    args.generator_rate = generator_rate()
    print(f"  synth.generate: {args.generator_rate:,.0f} records/s", flush=True)

    rows: list[dict] = []
    last: dict[str, tuple[int, float]] = {}
    for size in sizes:
        csv = cohort_csv(size, args.seed)
        for e in engines:
            if size > MAX_SIZE[e]:
                skipped.append(f"{e} at {size:,}: not run by design (largest size for this engine: {MAX_SIZE[e]:,})")
                continue
            if e in last:
                n0, s0 = last[e]
                n_now = min(size, args.pyshacl_n) if e == "pyshacl" else size
                predicted = s0 * n_now / n0
                if predicted > args.budget:
                    skipped.append(f"{e} at {size:,}: not run, predicted {predicted:,.0f} s from the previous size "
                                   f"is over the budget of {args.budget:,.0f} s (--budget)")
                    print(f"  skip {e} at {size}: predicted {predicted:.0f} s", flush=True)
                    continue
            print(f"  {e} at {size:,} ...", end=" ", flush=True)
            row = run_engine(e, size, csv, args)
            rows.append(row)
            if row.get("pps"):
                wall = row["wall"]
                last[e] = (row["patients"], row["patients"] / row["pps"] if row.get("timed_out") else wall)
                print(f"{row['pps']:,.1f} patients/s, wall {wall:.1f} s, peak tree PSS {_mb(row['peak_tree_pss'])} MB, "
                      f"load {row['load_before'][0]:.2f}", flush=True)
            else:
                print(row.get("note"), flush=True)
            (OUT / "rows.json").write_text(json.dumps(rows, indent=1, default=str))
    finished = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = report(rows, skipped, sizes, args, machine, started, finished, command)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
