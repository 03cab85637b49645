"""The start-up cache (b12kg.cache): a cohort assessed with a cold cache, a warm one, a corrupt one
and none gives byte-identical outputs; entries are keyed by the files they come from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from b12kg import cache

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """500 synthetic patients (edge values, every unit, censored results) as a cohort CSV."""
    from b12kg.testing import synth
    from b12kg.inputs.csv import write_csv

    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        assert write_csv(synth.generate(500, seed=3, edge_cases=True), fh) == 500
    return path


def _run(tmp: Path, name: str, cache_dir: str, cohort: Path) -> dict[str, bytes]:
    out = tmp / name
    env = dict(os.environ, B12KG_CACHE_DIR=cache_dir, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "b12kg.cli", "assess-cohort", str(cohort), "--out", str(out),
                           "--engine", "compiled", "--workers", "1", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "summary.json"}


def test_cold_warm_corrupt_and_no_cache_give_identical_outputs(tmp_path, cohort):
    cdir = tmp_path / "cache"
    cold = _run(tmp_path, "cold", str(cdir), cohort)
    names = sorted(p.name.rsplit("-", 1)[0] for p in cdir.glob("*.pickle"))
    assert names == ["compiled-program", "vocabulary"], names
    stamps = {p: p.stat().st_mtime_ns for p in cdir.glob("*.pickle")}
    warm = _run(tmp_path, "warm", str(cdir), cohort)
    assert {p: p.stat().st_mtime_ns for p in cdir.glob("*.pickle")} == stamps     # read, not rebuilt
    for p in cdir.glob("*.pickle"):                                                # corrupt every entry
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])
    corrupt = _run(tmp_path, "corrupt", str(cdir), cohort)
    off = _run(tmp_path, "off", "off", cohort)
    assert len(cold["findings.ndjson"].splitlines()) > 450                        # the good records
    assert warm == cold and corrupt == cold and off == cold


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("B12KG_CACHE_DIR", "off")
    assert cache.cache_dir() is None
    assert cache.load_or_build("x", lambda: 42) == 42


def test_an_unwritable_cache_folder_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("B12KG_CACHE_DIR", str(blocker / "cache"))
    assert cache.load_or_build("x", lambda: [1, 2]) == [1, 2]


def test_fingerprint_changes_with_a_rule_file(tmp_path, monkeypatch):
    """An entry is keyed by the bytes of every ontology and rule file: edit one and the old entry
    is not read."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    monkeypatch.setattr(cache, "RULES_DIR", rules)
    cache.fingerprint.cache_clear()
    try:
        before = cache.fingerprint()
        f = rules / "derive.ttl"
        f.write_bytes(f.read_bytes().replace(b"sh:order 12", b"sh:order 13", 1))
        cache.fingerprint.cache_clear()
        assert cache.fingerprint() != before
    finally:
        cache.fingerprint.cache_clear()


def test_an_entry_of_another_fingerprint_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("B12KG_CACHE_DIR", str(tmp_path))
    (tmp_path / "x-0123456789abcdef0123456789abcdef.pickle").write_bytes(b"stale")
    assert cache.load_or_build("x", lambda: "fresh") == "fresh"
    assert cache.load_or_build("x", lambda: pytest.fail("rebuilt although cached")) == "fresh"


def test_single_patient_assessment_is_the_same_with_a_cold_a_warm_and_no_cache(tmp_path):
    """The oxigraph engine's cached rule texts and knowledge base give the same JSON report."""
    outs = []
    for cache_dir in (str(tmp_path / "c"), str(tmp_path / "c"), "off"):
        env = dict(os.environ, B12KG_CACHE_DIR=cache_dir, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-m", "b12kg.cli", "assess", "examples/04-fhir-dual-deficiency.bundle.json",
                               "examples/03-pregnancy-indeterminate-b12.yaml", "--format", "json"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "c").glob("*.pickle"))
    assert "oxigraph-updates-graphs" in names and "oxigraph-kb-full" in names, names
    assert '"findings"' in outs[0] and outs[0] == outs[1] == outs[2]
