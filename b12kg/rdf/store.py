"""pyoxigraph helpers shared by the engines and the explanations: loading N-Triples into a graph,
sorted N-Triples out of one, and SPARQL SELECT rows as Python values (one term converter)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyoxigraph as ox

from ..paths import query_text


def load_ntriples(store: ox.Store, ntriples: str | bytes, graph: str | None = None) -> None:
    """Load N-Triples into a named graph of the store (or its default graph)."""
    data = ntriples.encode("utf-8") if isinstance(ntriples, str) else ntriples
    if graph is None:
        store.load(data, format=ox.RdfFormat.N_TRIPLES)
    else:
        store.load(data, format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))


def graph_ntriples(store: ox.Store, graph: str) -> str:
    """A named graph of the store as N-Triples, sorted (so the output is deterministic)."""
    quads = store.quads_for_pattern(None, None, None, ox.NamedNode(graph))
    lines = sorted(f"{q.subject} {q.predicate} {q.object} ." for q in quads)
    return "\n".join(lines) + ("\n" if lines else "")


def py_value(term) -> Any:
    """A query solution's term as a Python value: integers and decimals as numbers, other
    literals and IRIs as text, None for an unbound variable."""
    if term is None:
        return None
    if isinstance(term, ox.Literal):
        dt = term.datatype.value
        if dt.endswith("#integer"):
            return int(term.value)
        if dt.endswith("#decimal"):
            return Decimal(term.value)
        return term.value
    return term.value


def run_query(store: ox.Store, name: str, **bindings: str) -> list[dict[str, Any]]:
    """Run a query of ``queries/`` on a store (every graph as the default graph), with variables
    bound to IRIs; rows as dicts of Python values."""
    subs = {ox.Variable(k): ox.NamedNode(v) for k, v in bindings.items()}
    res = store.query(query_text(name), use_default_graph_as_union=True, substitutions=subs)
    names = [v.value for v in res.variables]
    return [{n: py_value(sol[n]) for n in names} for sol in res]
