#!/usr/bin/env python
"""How the time to read an RDF patient document grows with its size (issue 11: a 29 MB Turtle file
took 80 s and 3.2 GB; SHACL validation of 1,000 results took 106 s). Each size is read in a fresh
subprocess; prints seconds and peak RSS per size, and the ratio of time per result to the smallest
size. Not a test: it asserts nothing.

    python bench/rdf_input.py [--sizes 50,100,200,400]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def document(n: int, current: bool = False) -> str:
    """One patient with one current haemoglobin and n - 1 superseded ones, as b12kg writes them
    (``current``: all n linked as current, which the shapes refuse: the worst case of validation)."""
    lines = ["@prefix b12: <https://w3id.org/b12kg/> .",
             "<urn:p> a b12:Patient ; b12:patientId \"p\" ; b12:sex b12:Female ; b12:ageYears 40.0 .",]
    for i in range(n):
        link = "hasResult" if i == n - 1 or current else "hasSupersededResult"
        lines.append(f"<urn:p> b12:{link} <urn:r{i}> .")
        lines.append(f"<urn:r{i}> a b12:LabResult ; b12:test b12:HemoglobinTest ; b12:valueAsGiven \"{100 + i % 50}\" ; "
                     f"b12:unitAsGiven \"g/L\" ; b12:comparator \"=\" ; "
                     f"b12:effectiveTime \"{2000 + i // 365:04d}-01-01T00:00:00Z\"^^<http://www.w3.org/2001/XMLSchema#dateTime> .")
    return "\n".join(lines) + "\n"


def one(path: str) -> None:
    from b12kg.errors import InputError
    from b12kg.inputs import load_record
    t = time.perf_counter()
    try:
        load_record(path)
        outcome = "read"
    except InputError as exc:
        outcome = "refused: " + str(exc)[:120]
    print(json.dumps({"seconds": time.perf_counter() - t, "outcome": outcome,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,100,200,400")
    ap.add_argument("--one")
    ap.add_argument("--current", action="store_true", help="all results linked as current (refused by the shapes)")
    a = ap.parse_args()
    if a.one:
        return one(a.one)
    out = Path("/tmp") / "b12kg-bench-rdf"
    out.mkdir(exist_ok=True)
    base = None
    for n in (int(x) for x in a.sizes.split(",")):
        p = out / f"p{n}.ttl"
        p.write_text(document(n, a.current))
        r = json.loads(subprocess.run([sys.executable, __file__, "--one", str(p)], capture_output=True, text=True,
                                      check=True).stdout)
        base = base or r["seconds"] / n
        print(f"{n:6d} results  {p.stat().st_size:9d} bytes  {r['seconds']:7.2f} s  {r['max_rss_mb']:7.0f} MB  "
              f"time per result x{r['seconds'] / n / base:5.1f}  {r['outcome']}")


if __name__ == "__main__":
    main()
