"""Shipped queries in forms every SPARQL 1.1 store evaluates alike (issue 13, item 2, part):
Virtuoso refuses an OPTIONAL around a UNION with a FILTER inside (SP031), so no query has one;
claims-traceability, rewritten as one UNION, still lists an unencoded claim once."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib.plugins.sparql import prepareQuery

from b12kg.engines.oxigraph import new_store
from b12kg.paths import QUERIES_DIR

QUERIES = sorted(QUERIES_DIR.rglob("*.rq"))


def _has(node, name: str) -> bool:
    if getattr(node, "name", None) == name:
        return True
    if isinstance(node, dict):
        return any(_has(v, name) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has(v, name) for v in node)
    return False


def _optional_union_filter(node) -> bool:
    if getattr(node, "name", None) == "LeftJoin":
        right = node["p2"]
        if _has_union_with_filter(right):
            return True
    if isinstance(node, dict):
        return any(_optional_union_filter(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_optional_union_filter(v) for v in node)
    return False


def _has_union_with_filter(node) -> bool:
    if getattr(node, "name", None) == "Union":
        return _has(node, "Filter")
    if isinstance(node, dict):
        return any(_has_union_with_filter(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_union_with_filter(v) for v in node)
    return False


@pytest.mark.parametrize("path", QUERIES, ids=[p.relative_to(QUERIES_DIR).as_posix() for p in QUERIES])
def test_no_optional_around_a_union_with_a_filter(path: Path):
    q = prepareQuery(path.read_text(encoding="utf-8"))
    assert not _optional_union_filter(q.algebra), f"{path.name}: OPTIONAL {{ ... UNION ... FILTER }} (Virtuoso SP031)"


def test_the_check_sees_the_form_it_forbids():
    q = prepareQuery("SELECT * WHERE { ?s ?p ?o OPTIONAL { { ?s <urn:a> ?x } UNION { ?s <urn:b> ?x FILTER (isIRI(?x)) } } }")
    assert _optional_union_filter(q.algebra)


def test_an_unencoded_claim_is_listed_once_without_a_carrier():
    store = new_store(full=True)
    store.update('PREFIX b12: <https://w3id.org/b12kg/> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> '
                 'INSERT DATA { GRAPH <urn:t> { <urn:c99> a b12:Claim ; rdfs:label "C99" ; b12:claimKind "test" } }')
    res = store.query((QUERIES_DIR / "report" / "claims-traceability.rq").read_text(), use_default_graph_as_union=True)
    rows = [s for s in res if s["id"].value == "C99"]
    assert len(rows) == 1 and rows[0]["carrierKind"] is None
