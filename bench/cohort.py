"""Cohort outputs benchmark (issue 12): one run, side by side, per cohort size:

- **row**: `b12kg assess-cohort` as shipped (per-record parsing, the compiled rules, NDJSON and the
  Parquet/CSV analyst tables, summary.json and summary.html), end to end from process start;
- **spark**: `b12kg assess-cohort --spark local[2]` (b12kg.spark: the same worker code per Arrow
  batch on Spark executors), CSV in, Parquet folders out, the JVM in the measured tree;
- **floor**: polars reading the same CSV and writing it as Parquet, in a fresh process (process
  start included): what reading and writing the same data costs at the least.

Patients/s, peak memory of the process tree (PSS and RSS summed, sampled by bench/run.py's
Sampler) and the ratio of each path to the floor, all from this one run. It asserts nothing.
The columnar path is not built yet (notes/cohort.md says what it needs); its row says so.

    python bench/cohort.py --sizes 100000,1000000 --out bench/cohort-results.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OUT, PY, REPO, SEED, _machine, cohort_csv, measure  # noqa: E402

FLOOR = ("import sys, polars as pl\n"
         "pl.read_csv(sys.argv[1], infer_schema_length=0).write_parquet(sys.argv[2])\n")
NOT_BUILT = {"columnar": "the columnar path (Arrow in, the compiled program on Arrow batches) is not built: "
                        "it needs a compiled-engine batch built from columns (b12kg/engines/compiled.py, "
                        "which this branch may not edit); see notes/cohort.md"}


def run_row(size: int, csv: Path) -> dict:
    out = OUT / f"cohort-row-{size}"
    m = measure([PY, "-m", "b12kg.cli", "assess-cohort", str(csv), "--out", str(out), "--quiet", "--restart"],
                log=OUT / f"cohort-row-{size}.log")
    summary = json.loads((out / "summary.json").read_text()) if m["rc"] == 0 else {}
    sizes = {p.name: p.stat().st_size for p in out.iterdir()} if out.exists() else {}
    return {**m, "path": "row", "size": size, "chunks": summary.get("chunks"), "workers": summary.get("workers"),
            "runner_seconds": summary.get("seconds"), "files": sizes}


def run_spark(size: int, csv: Path) -> dict:
    out = OUT / f"cohort-spark-{size}"
    env = dict(os.environ, PYSPARK_PYTHON=PY, PYSPARK_DRIVER_PYTHON=PY)
    m = measure([PY, "-m", "b12kg.cli", "assess-cohort", str(csv), "--out", str(out), "--spark", "local[2]"],
                log=OUT / f"cohort-spark-{size}.log", env=env)
    return {**m, "path": "spark", "size": size}


def run_floor(size: int, csv: Path) -> dict:
    target = OUT / f"cohort-floor-{size}.parquet"
    m = measure([PY, "-c", FLOOR, str(csv), str(target)], log=OUT / f"cohort-floor-{size}.log")
    return {**m, "path": "floor", "size": size}


def _mb(b) -> str:
    return f"{b / 2**20:,.0f}"


def report(rows: list[dict], sizes: list[int], started: str) -> str:
    machine = _machine()
    out = ["# Cohort outputs benchmark (bench/cohort.py)", "",
           f"- command: `python bench/cohort.py --sizes {','.join(map(str, sizes))}`",
           f"- started {started}, finished {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
           f"- git commit {machine['commit']}; machine: {machine['nproc']} CPUs, {machine['cpu']}, Python {machine['python']}",
           f"- load average (1, 5, 15 min) at the end: {tuple(round(x, 2) for x in os.getloadavg())}: other developers' "
           "test runs share the cores, so every number here is slower than on a quiet machine, and unevenly so",
           "- cohorts: bench/run.py's `cohort_csv` (synth.generate, seed "
           f"{SEED}, edge_cases=False, profile default), CSV", "",
           "| path | patients | seconds | patients/s | peak tree PSS MB | peak tree RSS MB | x floor | note |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    floors = {r["size"]: r["wall"] for r in rows if r["path"] == "floor" and r["rc"] == 0}
    for r in rows:
        if r["rc"] != 0:
            out.append(f"| {r['path']} | {r['size']:,} | FAILED (exit {r['rc']}, log {r['log']}) | | | | | |")
            continue
        ratio = f"{r['wall'] / floors[r['size']]:.1f}" if r["size"] in floors else ""
        note = ""
        if r["path"] == "row":
            note = (f"{r['chunks']} chunks on {r['workers']} workers; runner's own time {r['runner_seconds']:.1f} s; "
                    + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(r["files"].items())))
        elif r["path"] == "spark":
            note = "local[2], one JVM and its Python workers; Parquet folders out (no NDJSON, no summary)"
        elif r["path"] == "floor":
            note = "polars read_csv (all columns as text) + write_parquet, process start included"
        out.append(f"| {r['path']} | {r['size']:,} | {r['wall']:.2f} | {r['size'] / r['wall']:,.0f} | "
                   f"{_mb(r['peak_tree_pss'])} | {_mb(r['peak_tree_rss'])} | {ratio} | {note} |")
    out += ["", "Not run:", ""] + [f"- {k}: {v}" for k, v in NOT_BUILT.items()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--out", default=str(REPO / "bench" / "cohort-results.md"))
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    OUT.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for size in sizes:
        csv = cohort_csv(size, SEED)
        for fn in (run_floor, run_row, run_spark):
            r = fn(size, csv)
            print(f"  {r['path']} {size}: {r['wall']:.1f} s, rc {r['rc']}", flush=True)
            rows.append(r)
    Path(args.out).write_text(report(rows, sizes, started))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
