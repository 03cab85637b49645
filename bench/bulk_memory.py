"""Peak memory of `b12kg assess-cohort` on a FHIR bulk-data export folder and on OMOP CDM tables
(issue 10, point 5): seeded synthetic patients (b12kg.testing.synth) written by
b12kg.testing.convert, then one run each of the command line, whose process tree (the main
process, DuckDB inside it, the worker processes) is sampled every 0.2 s from /proc. A measurement,
not a test: it asserts nothing and writes bench/bulk-memory.md.

    python bench/bulk_memory.py                       # 100,000 patients, bulk and omop
    python bench/bulk_memory.py --n 10000 --kinds bulk --out /tmp/m.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from b12kg.testing import convert
from b12kg.testing.synth import generate

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                st = fh.read()
            fields = st[st.rindex(")") + 2:].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * PAGE
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def measure(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]

    def poll():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, err = proc.communicate()
    th.join()
    return {"rc": proc.returncode, "seconds": time.perf_counter() - t0, "peak_tree_bytes": peak[0],
            "max_single_process_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "stderr_tail": err.decode(errors="replace")[-500:]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--kinds", default="bulk,omop")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--out", default=str(Path(__file__).parent / "bulk-memory.md"))
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="b12kg-bulk-bench-"))
    b12kg = str(Path(sys.executable).with_name("b12kg"))
    rows = []
    for kind in args.kinds.split(","):
        src = tmp / kind
        t = time.perf_counter()
        writer = {"bulk": convert.write_bulk, "omop": convert.write_omop, "long": convert.write_long}[kind]
        writer(generate(args.n, args.seed), src)
        size = sum(p.stat().st_size for p in src.iterdir())
        written = time.perf_counter() - t
        m = measure([b12kg, "assess-cohort", str(src), "--out", str(tmp / f"out-{kind}"), "--workers", str(args.workers),
                     "--quiet"])
        summary = json.loads((tmp / f"out-{kind}" / "summary.json").read_text()) if m["rc"] == 0 else {}
        rows.append((kind, size, written, m, summary))
        print(kind, m["rc"], f"{m['peak_tree_bytes'] / 2**20:.0f} MiB", f"{m['seconds']:.0f} s", flush=True)
    lines = ["# Bulk and OMOP inputs: peak memory of one run", "",
             f"`python bench/bulk_memory.py --n {args.n} --kinds {args.kinds} --workers {args.workers}` "
             f"(seed {args.seed}), {time.strftime('%Y-%m-%d')}, on a shared 2-core machine. One run each; the "
             "peak is the resident memory of the whole process tree (main process with DuckDB, and the "
             "workers), sampled every 0.2 s; the largest single process is from getrusage. Times are for "
             "information only (the machine is shared).", "",
             "| input | patients | input size | read / assessed / refused | peak, process tree | largest process | time |",
             "|---|---|---|---|---|---|---|"]
    for kind, size, written, m, s in rows:
        counts = f"{s.get('read')} / {s.get('assessed')} / {s.get('refused')}" if s else f"FAILED (rc {m['rc']})"
        lines.append(f"| {kind} | {args.n:,} | {size / 2**20:.0f} MiB | {counts} | {m['peak_tree_bytes'] / 2**20:.0f} MiB "
                     f"| {m['max_single_process_bytes'] / 2**20:.0f} MiB | {m['seconds']:.0f} s |")
    lines += ["", "DuckDB runs under `memory_limit` 256MB (`B12KG_DUCKDB_MEMORY`) and spills to the run's parts "
              "folder; each worker holds one chunk (10,000 patients) at a time, so the peak does not grow with "
              "the number of patients."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    for kind, *_ , m, s in rows:
        if m["rc"] != 0:
            print(kind, m["stderr_tail"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
