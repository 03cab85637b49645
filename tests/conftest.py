"""Shared test discovery: the project's own case files (tests/cases, any depth) and the shared
acceptance cases (vendor/shared/cases), offered to any test that asks for them by name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# The start-up cache (b12kg.cache) of this test session: a fresh folder, so that no entry of an
# earlier run is read, and subprocesses the tests start share it through the environment.
os.environ["B12KG_CACHE_DIR"] = tempfile.mkdtemp(prefix="b12kg-test-cache-")

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CASES_DIR = TESTS / "cases"
SHARED_CASES = REPO / "vendor" / "shared" / "cases"


def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: longer differential runs (kept in the default run)")


def pytest_generate_tests(metafunc) -> None:
    """``case_path``: every YAML case under tests/cases; ``shared_valid_case``: every valid shared
    acceptance case (vendor/shared/cases/valid)."""
    if "case_path" in metafunc.fixturenames:
        paths = _yaml_files(CASES_DIR)
        metafunc.parametrize("case_path", paths, ids=[str(p.relative_to(CASES_DIR).with_suffix("")) for p in paths])
    if "shared_valid_case" in metafunc.fixturenames:
        paths = _yaml_files(SHARED_CASES / "valid")
        metafunc.parametrize("shared_valid_case", paths, ids=[p.stem for p in paths])
