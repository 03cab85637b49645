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


# -- the outputs switch in all or nothing (issue 11, item 4) -----------------------------------
# Each run is a fresh process that injects the fault (os._exit in the middle of the switch, an
# OSError from the disk), so the state the test reads is what a real kill or a full disk leaves.
_RUN = """
import errno, os, shutil, sys
from pathlib import Path
from b12kg.cli import main
fault = sys.argv[1]
out = Path(sys.argv[3])
if fault == "kill-in-switch":
    real, calls = os.replace, []
    def replace(src, dst):
        if Path(dst).parent == out and Path(src).parent.name == ".parts":   # an output switched in
            calls.append(dst)
            if len(calls) == 2:      # the first new file is in, the others are not
                os._exit(9)
        return real(src, dst)
    os.replace = replace
elif fault == "disk-full":      # the assembly of the output files (cohort/runner.py) writes Parquet
    import pyarrow.parquet as pq
    def write_table(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".parts" / "patients.parquet.assembling"))
    pq.ParquetWriter.write_table = write_table
elif fault == "read-only":
    real_mkdir = Path.mkdir
    def mkdir(self, *a, **k):
        if self == out or out in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)
    Path.mkdir = mkdir
sys.exit(main(["assess-cohort", sys.argv[2], "--out", str(out), "--workers", "1", "--quiet"]))
"""


def _synth_csv(tmp_path, name: str, seed: int, n: int = 12) -> Path:
    from b12kg.inputs.csv import write_csv
    from b12kg.testing import synth

    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        write_csv(list(synth.generate(n, seed=seed)), fh)
    return path


def _run(fault: str, input_path: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RUN, fault, str(input_path), str(out)], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def _contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


@pytest.mark.slow          # four cohort runs in fresh processes: about 40 s here
def test_a_run_killed_in_the_switch_leaves_no_outputs_of_two_runs_side_by_side(tmp_path):
    from b12kg.cohort.commit import verify_outputs

    out = tmp_path / "out"
    assert _run("none", _synth_csv(tmp_path, "old.csv", seed=1), out).returncode == 0
    old = _contents(out)
    new_input = _synth_csv(tmp_path, "new.csv", seed=2)
    killed = _run("kill-in-switch", new_input, out)
    assert killed.returncode == 9
    left = _contents(out)
    assert "summary.json" not in left and verify_outputs(out)            # says it holds no complete set
    assert not [name for name, data in left.items() if old.get(name) == data]   # nothing of the old run
    assert _run("none", new_input, out).returncode == 0 and verify_outputs(out) == []
    clean = tmp_path / "clean"
    assert _run("none", new_input, clean).returncode == 0
    assert {k: v for k, v in _contents(out).items() if k != "summary.json"} == \
        {k: v for k, v in _contents(clean).items() if k != "summary.json"}


def test_a_full_disk_ends_in_a_clear_message_and_keeps_the_last_complete_set(tmp_path):
    """Injected OSError(ENOSPC) in the assembly of the output files (this machine has no small
    file system to fill)."""
    from b12kg.cohort.commit import verify_outputs

    out = tmp_path / "out"
    assert _run("none", _synth_csv(tmp_path, "old.csv", seed=1), out).returncode == 0
    old = _contents(out)
    full = _run("disk-full", _synth_csv(tmp_path, "new.csv", seed=2), out)
    assert full.returncode == 1 and "the disk is full" in full.stderr and "Traceback" not in full.stderr
    assert _contents(out) == old and verify_outputs(out) == []
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp-" in p.name]


def test_a_read_only_out_ends_in_a_clear_message(tmp_path):
    """Injected OSError(EROFS) (the tests run as root, whom a chmod does not stop)."""
    out = tmp_path / "ro" / "out"
    r = _run("read-only", _synth_csv(tmp_path, "c.csv", seed=1), out)
    assert r.returncode == 1 and "read-only file system" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
