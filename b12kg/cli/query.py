"""``b12kg query`` bounded in time and memory: the user's query runs in a child process that reads
the store as N-Quads on its standard input, under a CPU-time and an address-space limit
(``resource.setrlimit``) and a wall-clock timeout. A query that would run away (a cross product of
the knowledge base with itself, an aggregate over it) ends with a clear message naming the bound,
never a hung terminal or an exhausted machine.

Bounds (``b12kg query --timeout``, ``--memory-mb``): QUERY_SECONDS of CPU time (and of wall time,
plus a margin for loading the store), QUERY_MEMORY_MB of address space in the child."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import threading

import pyoxigraph as ox

QUERY_SECONDS = 60
QUERY_MEMORY_MB = 2048
LOAD_MARGIN_SECONDS = 30     # wall time for the child to start and load the store, beyond the query's

# The child imports pyoxigraph only (not b12kg: its start-up is not the query's time).
_CHILD = r"""
import json, sys
import pyoxigraph as ox
query, fmt = sys.argv[1], sys.argv[2]
store = ox.Store()
store.bulk_load(sys.stdin.buffer.read(), format=ox.RdfFormat.N_QUADS)
res = store.query(query, use_default_graph_as_union=True)
out = sys.stdout.buffer
if isinstance(res, ox.QueryTriples):
    out.write(res.serialize(format=ox.RdfFormat.N_TRIPLES))
else:      # SELECT and ASK: the SPARQL 1.1 Query Results JSON or TSV format
    out.write(res.serialize(format=ox.QueryResultsFormat.JSON if fmt == "json" else ox.QueryResultsFormat.TSV))
    if fmt == "json":
        out.write(b"\n")
"""


def run_bounded(store: ox.Store, query: str, fmt: str, *, seconds: int = QUERY_SECONDS,
                memory_mb: int = QUERY_MEMORY_MB) -> tuple[int, str | None]:
    """Run ``query`` over ``store`` in a bounded child, its output going to this process's
    standard output. (exit status, why it was stopped or failed, or None)."""
    data = store.dump(format=ox.RdfFormat.N_QUADS)

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.Popen([sys.executable, "-c", _CHILD, query, fmt], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=limits)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    def feed() -> None:
        try:
            proc.stdin.write(data)           # type: ignore[union-attr]
            proc.stdin.close()               # type: ignore[union-attr]
        except OSError:                      # the child stopped before reading everything
            pass

    errors: list[bytes] = []
    timer = threading.Timer(seconds + LOAD_MARGIN_SECONDS, stop)
    feeder = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    timer.start(); feeder.start(); reader.start()
    try:
        while chunk := proc.stdout.read1(1 << 16):   # type: ignore[union-attr]
            sys.stdout.write(chunk.decode("utf-8", "replace"))
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join()
    if timed_out.is_set():
        return 1, f"stopped: the query ran longer than its time bound ({seconds} s, plus {LOAD_MARGIN_SECONDS} s to load; --timeout)"
    if proc.returncode == 0:
        return 0, None
    err = b"".join(errors).decode("utf-8", "replace")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in err:
        return 1, f"stopped: the query used more than its CPU time bound ({seconds} s; --timeout)"
    if proc.returncode < 0 or "MemoryError" in err or "memory allocation" in err or "out of memory" in err.lower():
        return 1, f"stopped: the query needed more than its memory bound ({memory_mb} MB; --memory-mb)"
    last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
    return 1, f"the query failed: {last[:500]}"
