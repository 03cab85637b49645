"""Where the knowledge base files live: the repository's top-level folders in a checkout, or
``b12kg/_data`` inside an installed wheel (see ``[tool.hatch.build.targets.wheel.force-include]``)."""

from __future__ import annotations

import functools
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


def rule_files(*, recursive: bool = False) -> list[Path]:
    """The rule files (``rules/*.ttl``), or with ``recursive`` every Turtle file under ``rules/``
    (the SHACL shapes of the patient graph too), in a stable order."""
    return sorted(RULES_DIR.glob("**/*.ttl" if recursive else "*.ttl"))


def query_path(name: str) -> Path:
    """A query file under ``queries/`` by relative name, e.g. ``explain/finding-evidence.rq``."""
    p = (QUERIES_DIR / name).resolve()
    if QUERIES_DIR.resolve() not in p.parents:
        raise ValueError(f"query name {name!r} leaves the queries folder")
    return p


def query_text(name: str) -> str:
    """The text of a query file under ``queries/`` (read once per process)."""
    return _query_text(name)


@functools.lru_cache(maxsize=None)
def _query_text(name: str) -> str:
    return query_path(name).read_text(encoding="utf-8")
