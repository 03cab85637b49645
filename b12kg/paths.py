"""Where the knowledge base files live: the repository's top-level folders in a checkout, or
``b12kg/_data`` inside an installed wheel (see ``[tool.hatch.build.targets.wheel.force-include]``)."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent


def _root() -> Path:
    packaged = _PKG / "_data"
    if (packaged / "ontology").is_dir():
        return packaged
    return _REPO


ROOT = _root()
ONTOLOGY_DIR = ROOT / "ontology"
MODULES_DIR = ONTOLOGY_DIR / "modules"
RULES_DIR = ROOT / "rules"
QUERIES_DIR = ROOT / "queries"
EXAMPLES_DIR = ROOT / "examples"


def module_files() -> list[Path]:
    """All ontology module files, in a stable order."""
    return sorted(MODULES_DIR.glob("*.ttl"))


def query_path(name: str) -> Path:
    """A query file under ``queries/`` by relative name, e.g. ``explain/finding-evidence.rq``."""
    p = (QUERIES_DIR / name).resolve()
    if QUERIES_DIR.resolve() not in p.parents:
        raise ValueError(f"query name {name!r} leaves the queries folder")
    return p
