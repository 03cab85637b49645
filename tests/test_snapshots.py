"""Snapshots of what a user sees: ``b12kg assess <file> --format json`` and ``--format text`` for a
few shared cases (a FHIR Bundle among them), run through b12kg.cli.main. A snapshot is a claim that
the output is right; each was read against findings.md and the case's expectations before it was
committed. Set B12KG_UPDATE_SNAPSHOTS=1 to rewrite them (then read the diff before committing).

Also: the same input assessed twice gives byte-identical JSON and identical N-Triples, in one
process and across processes with different hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from b12kg import cli
from b12kg.api import assess

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("B12KG_UPDATE_SNAPSHOTS") == "1"
# Paths relative to the repository (the JSON output names the file as given).
INPUTS = {
    "p03-pernicious-anemia-high-ferritin": "vendor/shared/cases/valid/p03-pernicious-anemia-high-ferritin.yaml",
    "p05-inflammation-hides-iron-deficiency": "vendor/shared/cases/valid/p05-inflammation-hides-iron-deficiency.yaml",
    "p33-censored-b12-result": "vendor/shared/cases/valid/p33-censored-b12-result.yaml",
    "p38-sex-not-recorded": "vendor/shared/cases/valid/p38-sex-not-recorded.yaml",
    "p21-dual-deficiency-fhir-bundle": "vendor/shared/cases/fhir/p21-dual-deficiency.bundle.json",
}


def _run_cli(args: list[str], capsys, monkeypatch) -> str:
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    status = cli.main(args)
    out = capsys.readouterr()
    assert status == 0, out.err
    return out.out


def _check(path: Path, actual: str, compare) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path.relative_to(REPO)}: run with B12KG_UPDATE_SNAPSHOTS=1, then read it before committing")
    compare(path.read_text(encoding="utf-8"), actual)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_json_snapshot(name: str, capsys, monkeypatch) -> None:
    out = _run_cli(["assess", INPUTS[name], "--format", "json"], capsys, monkeypatch)

    def compare(expected: str, actual: str) -> None:
        assert json.loads(actual) == json.loads(expected)

    _check(SNAPSHOTS / f"{name}.json", out, compare)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_text_snapshot(name: str, capsys, monkeypatch) -> None:
    out = _run_cli(["assess", INPUTS[name], "--format", "text"], capsys, monkeypatch)

    def compare(expected: str, actual: str) -> None:
        assert actual == expected

    _check(SNAPSHOTS / f"{name}.txt", out, compare)


def test_snapshots_have_inputs() -> None:
    stale = sorted(p.name for p in SNAPSHOTS.glob("*") if p.stem not in INPUTS)
    assert not stale, f"snapshots without an input: {stale}"


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["p03-pernicious-anemia-high-ferritin", "p21-dual-deficiency-fhir-bundle"])
def test_same_input_twice_gives_identical_output(name: str, capsys, monkeypatch) -> None:
    first = _run_cli(["assess", INPUTS[name], "--format", "json"], capsys, monkeypatch)
    second = _run_cli(["assess", INPUTS[name], "--format", "json"], capsys, monkeypatch)
    assert first.encode("utf-8") == second.encode("utf-8")
    a, b = assess(REPO / INPUTS[name]), assess(REPO / INPUTS[name])
    assert a.input_ntriples == b.input_ntriples
    assert a.inferred_ntriples == b.inferred_ntriples
    assert a.inferred_ntriples and a.inferred_ntriples.splitlines() == sorted(a.inferred_ntriples.splitlines())


def test_output_does_not_depend_on_the_hash_seed() -> None:
    """Two fresh processes with different PYTHONHASHSEED print byte-identical JSON and N-Triples."""
    script = ("import sys; from b12kg import cli; from b12kg.api import assess; cli.main(['assess', sys.argv[1], '--format', 'json']);"
              "a = assess(sys.argv[1]); sys.stdout.write(a.input_ntriples + a.inferred_ntriples)")
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([sys.executable, "-c", script, INPUTS["p03-pernicious-anemia-high-ferritin"]], cwd=REPO, env=env,
                           capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr.decode()
        outs.append(r.stdout)
    assert outs[0] == outs[1]
