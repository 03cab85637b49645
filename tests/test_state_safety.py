"""State is safe (issue 11, item 4): the start-up cache is verified by a hash of its content and
rebuilt when one byte changed or its value is of the wrong type (before, one changed byte in the
pickled vocabulary could move the ferritin cut-off from 30 to 90 unnoticed, and an entry of the
wrong type broke every later run); the first-use caches are thread-safe (8 threads on first use
raced in the knowledge-base cache in 3 of 8 runs)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from b12kg import cache

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("B12KG_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_an_entry_with_one_changed_byte_is_rebuilt(cache_dir):
    assert cache.load_or_build("t", lambda: {"ferritin": 30}) == {"ferritin": 30}
    [entry] = cache_dir.glob("t-*.pickle")
    data = bytearray(entry.read_bytes())
    i = data.rindex(pickle.dumps(30)[2:3])            # the byte holding the number 30
    data[i] = 90
    entry.write_bytes(bytes(data))
    assert cache.load_or_build("t", lambda: {"ferritin": 30}) == {"ferritin": 30}


def test_an_entry_whose_content_and_hash_were_both_rewritten_as_a_plain_pickle_is_not_read(cache_dir):
    cache.load_or_build("t", lambda: 1)
    [entry] = cache_dir.glob("t-*.pickle")
    entry.write_bytes(pickle.dumps(2))                # the old format: no header, no hash
    assert cache.load_or_build("t", lambda: 1) == 1


def test_an_entry_of_the_wrong_type_is_rebuilt(cache_dir):
    cache.load_or_build("t", lambda: [1, 2, 3])
    assert cache.load_or_build("t", lambda: (1, 2, 3), expect=tuple) == (1, 2, 3)
    assert cache.load_or_build("t", lambda: pytest.fail("rebuilt although valid"), expect=tuple) == (1, 2, 3)


_THREADS = """
import json, sys, threading
import b12kg
case = {"id": "t", "patient": {"sex": "female", "age_years": 40},
        "observations": {"ferritin": {"value": 8, "unit": "ug/L"}, "b12": {"value": 95, "unit": "pmol/L"}}}
results, errors = [], []
def run(engine):
    try:
        results.append((engine, b12kg.assess(case, engine=engine).to_json()["findings"]))
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=run, args=(("oxigraph", "compiled")[i % 2],)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"errors": errors, "distinct": len({json.dumps(r[1], sort_keys=True) for r in results}),
                  "n": len(results)}))
"""


@pytest.mark.parametrize("cache_setting", ["off", pytest.param("fresh", marks=pytest.mark.slow)])
def test_eight_threads_on_first_use_in_a_fresh_process(tmp_path, cache_setting):
    env = dict(os.environ, PYTHONPATH=str(REPO),
               B12KG_CACHE_DIR="off" if cache_setting == "off" else str(tmp_path / "c"))
    proc = subprocess.run([sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"errors": [], "distinct": 1, "n": 8}


def _cohort(tmp_path, n=40, seed=5):
    from b12kg.inputs.csv import write_csv
    from b12kg.testing import synth

    path = tmp_path / "cohort.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        write_csv(synth.generate(n, seed=seed), fh)
    return path


def test_a_second_run_on_the_same_out_is_refused(tmp_path):
    import fcntl

    from b12kg.cohort import assess_cohort
    from b12kg.errors import B12kgError

    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)                      # another run holds the folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(B12kgError, match="in use by another b12kg run"):
            assess_cohort(_cohort(tmp_path), out, workers=1, progress=False)
    finally:
        os.close(fd)
    s = assess_cohort(_cohort(tmp_path), out, workers=1, progress=False)   # free again
    assert s.assessed == 40


def test_resume_keys_on_the_input_content_not_its_size_and_time(tmp_path):
    """An input edited in place with the same size and modification time is assessed afresh, not
    resumed from the parts of the old content."""
    from b12kg.cohort import assess_cohort
    from b12kg.cohort.runner import _fingerprint
    from b12kg.cohort.worker import Options

    path = _cohort(tmp_path)
    before = _fingerprint(path, Options(), 10)
    st = path.stat()
    data = path.read_bytes()
    path.write_bytes(data.replace(b"female", b"FEMALE", 1))   # same size, other bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert _fingerprint(path, Options(), 10) != before
    out = tmp_path / "o"
    assess_cohort(path, out, workers=1, progress=False)
    assert json.loads((out / "summary.json").read_text())["resumed_chunks"] == 0
