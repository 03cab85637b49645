"""Quality control of the knowledge graph as data: every ``queries/qc/qc-*.rq`` is one check, a
SELECT returning exactly ``?entity ?property ?value``; any row is a failure.

>>> from b12kg.kb.qc import run_qc, qc_graph
>>> failures = {name: rows for name, rows in run_qc(qc_graph()).items() if rows}

The checks run on pyoxigraph: the graph is loaded as N-Triples into an in-memory store.
``qc-finding-without-rule`` needs the rules as well as the ontology, so run the checks on
:func:`qc_graph` (merged ontology plus ``rules/**/*.ttl``), not on the ontology alone.
"""

from __future__ import annotations

from pathlib import Path

import pyoxigraph as ox
import rdflib

from .. import paths
from .build import merged_graph
from .ontology import parse_turtle

QC_DIR = paths.QUERIES_DIR / "qc"
COLUMNS = ("entity", "property", "value")


def qc_files() -> list[Path]:
    """All QC query files, in a stable order."""
    return sorted(QC_DIR.glob("qc-*.rq"))


def check_name(path: Path) -> str:
    return path.stem


def qc_graph() -> rdflib.Graph:
    """The merged ontology plus every rule file: the graph the whole QC set is meant for."""
    return merged_graph() + parse_turtle(paths.rule_files(recursive=True))


def _store(graph: rdflib.Graph) -> ox.Store:
    store = ox.Store()
    store.load(graph.serialize(format="nt").encode("utf-8"), format=ox.RdfFormat.N_TRIPLES)
    return store


def _plain(term) -> str | None:
    if term is None:
        return None
    if isinstance(term, ox.BlankNode):
        return f"_:{term.value}"
    return term.value


def run_query(store: ox.Store, query: str) -> list[tuple]:
    """Run one QC query; rows as tuples of plain strings (IRIs, literal values, ``_:`` blank nodes)."""
    result = store.query(query)
    names = tuple(v.value for v in result.variables)
    if names != COLUMNS:
        raise ValueError(f"a QC query must select exactly ?entity ?property ?value, not {names}")
    return [tuple(_plain(sol[name]) for name in COLUMNS) for sol in result]


def run_qc(graph: rdflib.Graph, files: list[Path] | None = None) -> dict[str, list[tuple]]:
    """Run every QC query (or the given files) on ``graph``; ``{check name: rows}``, rows empty when
    the check passes."""
    store = _store(graph)
    return {check_name(f): run_query(store, f.read_text(encoding="utf-8")) for f in (files or qc_files())}
