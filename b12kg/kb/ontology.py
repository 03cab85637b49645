"""The ontology modules, parsed once per process (the one place b12kg reads Turtle files of its
own), and the merged graph as the SPARQL stores load it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import rdflib

from .. import paths
from ..rdf.terms import sparql_prefixes
from ..cache import once


def parse_turtle(files: Iterable[Path]) -> rdflib.Graph:
    """One rdflib graph holding every triple of the given Turtle files."""
    g = rdflib.Graph()
    for f in files:
        g.parse(f, format="turtle")
    return g


@once
def ontology_graph() -> rdflib.Graph:
    """All ontology modules merged into one rdflib graph (parsed once per process)."""
    return parse_turtle(paths.module_files())


@once
def ontology_ntriples() -> str:
    """The merged ontology as N-Triples, the form the SPARQL stores load fastest."""
    return ontology_graph().serialize(format="nt")


def select(g: rdflib.Graph, query: str):
    """A SPARQL SELECT over an rdflib graph, with b12kg's prefixes declared."""
    return g.query(sparql_prefixes() + query)
