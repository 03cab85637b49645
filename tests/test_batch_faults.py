"""Batch faults (issue 5): corrupt records mixed with good ones, and a cohort run killed midway.

- A cohort of 10,000 generated patients with about 1 % corrupt records
  (b12kg.testing.synth.generate_invalid): every good record is in findings.ndjson, every bad one in
  rejects.ndjson with its reason and where it was, and read = assessed + refused.
- Records that break the loaders in unusual ways (lone surrogates, deep nesting, huge numbers,
  bytes that are not UTF-8) are refused one by one; the run completes.
- A run killed with SIGKILL after some parts exist, then rerun: the outputs equal those of an
  uninterrupted run, line for line, with no duplicate, and no output file exists before the run
  completes (only the .parts folder).

The cohort has 10,000 good patients (B12KG_BATCH_N changes it); with the oxigraph engine on one
process it takes about 30 s on a 2-core machine, so it runs in the default test run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b12kg.cohort import assess_cohort, output_files
from b12kg.errors import B12kgError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "vendor" / "shared" / "cases" / "fhir" / "p21-dual-deficiency.bundle.json"


def _lines(path: Path) -> list[str]:
    """NDJSON lines (split at newline only: U+2028 may occur inside a JSON string)."""
    return [x for x in path.read_text(encoding="utf-8").split("\n") if x]


# ---------------------------------------------------------------------------------------------
# Records that used to stop a whole run
# ---------------------------------------------------------------------------------------------
def test_ndjson_bundle_with_a_lone_surrogate_is_refused_and_the_run_completes(tmp_path):
    # Before: the pydantic issue carried the raw '\ud800'; writing rejects.ndjson as UTF-8 raised
    # UnicodeEncodeError and the run stopped.
    line = BUNDLE.read_text(encoding="utf-8").replace("\n", " ")
    bad = line.replace('"p21"', '"\\ud800"', 1)
    other = line.replace('"p21"', '"p22"')             # another patient (the same id twice is refused)
    path = tmp_path / "b.ndjson"
    path.write_text(line + "\n" + bad + "\n" + other + "\n", encoding="utf-8")
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (3, 2, 1)
    rej = [json.loads(x) for x in _lines(tmp_path / "out" / "rejects.ndjson")]
    assert rej[0]["source"] == "line 2" and rej[0]["issues"][0]["field"] == "entry[0].resource.id"


@pytest.mark.parametrize("where", ["id", "unit", "key", "context"])
def test_folder_record_with_a_lone_surrogate_is_refused_and_the_run_completes(tmp_path, where):
    rec = {"id": "x", "patient": {"sex": "female", "age_years": 40},
           "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}, "context": ["infection"]}
    bad = copy.deepcopy(rec)
    if where == "id":
        bad["id"] = "a\ud800"
    elif where == "unit":
        bad["observations"]["ferritin"]["unit"] = "ug/L\udc00"
    elif where == "key":
        bad["observations"]["ferr\ud800"] = {"value": 1, "unit": "ug/L"}
    else:
        bad["context"] = ["\ud800"]
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(rec), encoding="utf-8")
    (folder / "b.json").write_text(json.dumps(bad), encoding="utf-8")       # ensure_ascii: "\ud800" escaped
    s = assess_cohort(folder, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (2, 1, 1)
    rej = json.loads(_lines(tmp_path / "out" / "rejects.ndjson")[0])
    assert rej["source"].endswith("b.json") and rej["issues"][0]["field"]


def test_ndjson_lines_broken_in_every_way_are_refused_one_by_one(tmp_path):
    line = BUNDLE.read_text(encoding="utf-8").replace("\n", " ").encode()
    bad = [
        line[:-40],                                                   # truncated
        b"[" * 100_000,                                               # nested 10**5 levels
        line.replace(b'"value": 9.9', b'"value": 1e999999999'),      # overflowing number
        line.replace(b'"value": 9.9', b'"value": ' + b"9" * 100_000),  # 100,000-digit integer
        line.replace(b'"value": 9.9', b'"value": NaN'),
        line.replace(b'"female"', b'"fem\xffale"'),                  # not UTF-8
        b"\xef\xbb\xbf" + line.replace(b'"p21"', b'"p21-bom"'),       # a byte-order mark: read
        b'{"resourceType": "Patient", "id": "p"}',
        b"null", b"5", b'"Bundle"', b"[]", b"{}",
        line.replace(b'"Bundle"', b'"Bundle", "resourceType": "Bundle"'),  # duplicate key
    ]
    path = tmp_path / "mixed.ndjson"
    other = line.replace(b'"p21"', b'"p22"')          # another patient (the same id twice is refused)
    path.write_bytes(b"\n".join([line] + bad + [other]) + b"\n")
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert s.read == len(bad) + 2 and s.reconciles()
    rej = [json.loads(x) for x in _lines(tmp_path / "out" / "rejects.ndjson")]
    assert all(r["source"] == f"line {r['record'] + 1}" and r["error"] for r in rej)
    found = [json.loads(x) for x in _lines(tmp_path / "out" / "findings.ndjson")]
    assert found[0]["record"] == 0 and found[-1]["record"] == len(bad) + 1
    # Read: the byte-order-mark line; and, since issue 10, the two lines whose only fault is one
    # Observation's value (1e999999999, NaN): that Observation is listed and skipped, the patient assessed.
    assert s.refused >= len(bad) - 4


# ---------------------------------------------------------------------------------------------
# Cohort reader faults (found by the fuzz run as bugs, fixed since): a byte-order mark, bytes that
# are not UTF-8, a quote that never closes.
# ---------------------------------------------------------------------------------------------
def _small_csv(tmp_path: Path, n: int = 5) -> tuple[bytes, bytes]:
    from b12kg.testing import synth
    from b12kg.inputs.csv import write_csv

    p = tmp_path / "src.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        write_csv(list(synth.generate(n, 5)), fh)
    header, body = p.read_bytes().split(b"\n", 1)
    return header, body


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    """A CSV starting with a UTF-8 byte-order mark (as Excel writes) was refused whole:
    column '\\ufeffid' is not a b12kg column."""
    header, body = _small_csv(tmp_path)
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + header + b"\n" + body)
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed) == (5, 5)


def test_csv_row_with_bytes_that_are_not_utf8_is_refused_alone(tmp_path):
    """A byte that is not UTF-8 in the first 8 KB of a CSV stopped the whole run with
    UnicodeDecodeError; now its row is refused alone, naming the field and showing the byte."""
    header, body = _small_csv(tmp_path)
    path = tmp_path / "bad.csv"
    path.write_bytes(header + b"\n" + body.replace(b"synth", b"syn\xffth", 1))
    out = tmp_path / "out"
    s = assess_cohort(path, out, engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (5, 4, 1) and s.reconciles()
    (line,) = (out / "rejects.ndjson").read_text(encoding="utf-8").splitlines()
    reject = json.loads(line)
    assert reject["source"] == "row 2" and reject["issues"][0]["field"] == "id"
    assert "\\udcff" in line and "Unicode" in reject["issues"][0]["problem"]


def test_csv_header_that_is_not_utf8_stops_the_run_naming_the_byte(tmp_path):
    header, body = _small_csv(tmp_path)
    path = tmp_path / "badhead.csv"
    path.write_bytes(header.replace(b"sex", b"s\xe9x", 1) + b"\n" + body)
    with pytest.raises(B12kgError, match=r"header row is not UTF-8 text: byte \d+"):
        assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)


def test_csv_row_with_an_unbalanced_quote_is_reported_not_silently_dropped(tmp_path):
    """When the first row opened a quote that never closes, the chunk planner reached the end of
    the file with no complete row and planned no chunk: read=0, nothing refused, every record
    silently lost. Now the rest of the file is one row, refused for its cell count."""
    header, body = _small_csv(tmp_path)
    path = tmp_path / "quote.csv"
    path.write_bytes(header + b"\n" + b'"' + body)
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert s.read >= 1 and s.refused >= 1           # the unterminated rows at least reported as refused


# ---------------------------------------------------------------------------------------------
# A cohort with about 1 % corrupt records
# ---------------------------------------------------------------------------------------------
# Corruptions a cohort CSV can carry (an unknown analyte or a refused LOINC code would be an
# unknown column, which refuses the whole file by design: a typo must not drop a result).
CSV_KINDS = ("wrong-unit", "missing-unit", "not-a-number", "implausible-value")
N_GOOD = int(__import__("os").environ.get("B12KG_BATCH_N", "10000"))


def make_cohort(path: Path, n_good: int, seed: int = 21) -> tuple[list[dict], dict[str, dict]]:
    """A cohort CSV of n_good generated patients with 1 % corrupt ones spread through it.
    Returns the records in file order and the corrupt ones by id."""
    from b12kg.testing import synth
    from b12kg.inputs.csv import write_csv

    recs = list(synth.generate(n_good, seed))
    bad = [r for r in synth.generate_invalid(n_good // 25, seed + 1) if r["corruption"]["kind"] in CSV_KINDS]
    bad = bad[: max(1, n_good // 100)]
    for i, b in enumerate(bad):
        recs.insert(min(len(recs), (i + 1) * 97 + i * 7 % 13), b)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        write_csv(recs, fh)
    return recs, {b["id"]: b for b in bad}


def check_cohort_outputs(out: Path, recs: list[dict], bad: dict[str, dict], summary: dict) -> None:
    findings = [json.loads(x) for x in _lines(out / "findings.ndjson")]
    rejects = [json.loads(x) for x in _lines(out / "rejects.ndjson")]
    assert summary["read"] == len(recs) == summary["assessed"] + summary["refused"]
    assert summary["assessed"] == len(findings) and summary["refused"] == len(rejects)
    # every good record assessed, once, in input order; every bad one refused, once, with reason and row
    good_ids = [r["id"] for r in recs if r["id"] not in bad]
    assert [f["patient"] for f in findings] == good_ids
    ordinals = [f["record"] for f in findings] + [r["record"] for r in rejects]
    assert sorted(ordinals) == list(range(len(recs)))
    by_ordinal = {i: r for i, r in enumerate(recs)}
    for rej in rejects:
        rec = by_ordinal[rej["record"]]
        assert rec["id"] in bad, rej
        assert rej["source"] == f"row {rej['record'] + 2}"
        field = rec["corruption"]["field"]        # e.g. observations.ferritin.unit
        key = field.split(".")[1]
        # the issue names the field; an empty value cell is named by its column ('row 9, column mcv')
        assert any(i["field"] == field or i["field"].endswith(f"column {key}") for i in rej["issues"]), (field, rej)
        assert rej["error"]
    assert {by_ordinal[r["record"]]["id"] for r in rejects} == set(bad)
    # the long table holds the findings and the unassessed findings (status), as findings.ndjson does
    long = pq.read_table(out / "findings.parquet", columns=["patient", "code", "status"]).to_pylist()
    assert len({(r["patient"], r["code"], r["status"]) for r in long}) == \
        sum(len(f["findings"]) + len(f.get("unassessed", [])) for f in findings)
    assert pq.read_table(out / "patients.parquet", columns=["patient"]).column("patient").to_pylist() == good_ids


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The cohort CSV and its uninterrupted run (oxigraph engine, one process)."""
    import time

    d = tmp_path_factory.mktemp("cohort")
    path = d / "cohort.csv"
    recs, bad = make_cohort(path, N_GOOD)
    out = d / "reference"
    t0 = time.perf_counter()
    s = assess_cohort(path, out, engine="oxigraph", workers=1, chunk_size=200, progress=False)
    seconds = time.perf_counter() - t0
    print(f"\n{len(recs)} records ({len(bad)} corrupt), oxigraph engine, 1 worker: {seconds:.1f} s")
    return path, recs, bad, out, s


@pytest.mark.slow
def test_corrupt_records_are_refused_with_their_reason_and_every_good_one_is_assessed(cohort):
    from dataclasses import asdict

    path, recs, bad, out, s = cohort
    assert s.reconciles() and len(bad) == N_GOOD // 100
    check_cohort_outputs(out, recs, bad, asdict(s))
    assert sorted(p.name for p in out.iterdir()) == output_files()


# ---------------------------------------------------------------------------------------------
# Killed midway with SIGKILL, then rerun
# ---------------------------------------------------------------------------------------------
def _cli(path: Path, out: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "b12kg.cli", "assess-cohort", str(path), "--out", str(out), "--engine", "oxigraph",
            "--workers", "2", "--chunk-size", "200", "--quiet"]


@pytest.mark.slow
def test_a_run_killed_midway_and_rerun_gives_the_outputs_of_an_uninterrupted_run(cohort, tmp_path):
    import os
    import signal
    import subprocess
    import time

    path, recs, bad, reference, _ = cohort
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(_cli(path, out), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    parts = out / ".parts"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = list(parts.glob("*.done.json")) if parts.exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    # killed: no output file exists, only the finished parts (and maybe a part being written)
    assert sorted(p.name for p in out.iterdir()) == [".parts"]
    n_done = len(list(parts.glob("*.done.json")))
    assert 3 <= n_done < -(-len(recs) // 200)
    rerun = subprocess.run(_cli(path, out), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_chunks"] >= n_done
    assert sorted(p.name for p in out.iterdir()) == output_files()
    for name in ("findings.ndjson", "patients.csv", "patients.parquet", "findings.parquet", "rejects.ndjson"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    check_cohort_outputs(out, recs, bad, summary)
