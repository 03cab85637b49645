"""The reference engine: pySHACL runs the SHACL-AF rules as written, one patient at a time, with
$this pre-bound to the patient, shapes in sh:order, each rule applied once (no iteration: the
rule base is stratified, so one pass in order is the fixpoint).

Two things keep it usable on more than a handful of patients, neither changing what it computes:
- the data graph holds the patient and only the knowledge-base triples a rule body can match
  (``rules.rule_support_graph``, derived from the parsed rule text);
- pySHACL hands rdflib the rule text as a string for every focus node, and rdflib parses it
  again each time (two thirds of the run time, measured); ``_parse_cache`` memoizes rdflib's
  parse-and-translate step for the duration of a run.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import pyshacl
import rdflib
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.sparql.processor import SPARQLProcessor

from ..rules import rule_support_graph, rules_graph
from .base import Engine
from ..cache import once

_patch_lock = threading.Lock()


@functools.lru_cache(maxsize=512)
def _prepared(text: str, base: str | None, namespaces: tuple):
    return prepareQuery(text, initNs=dict(namespaces), base=base)


@contextlib.contextmanager
def _parse_cache():
    original = SPARQLProcessor.query

    def query(self, strOrQuery, initBindings=None, initNs=None, base=None, DEBUG=False):  # noqa: N803
        if isinstance(strOrQuery, str):
            strOrQuery = _prepared(strOrQuery, base, tuple(sorted((str(k), str(v)) for k, v in (initNs or {}).items())))
        return original(self, strOrQuery, initBindings or {}, initNs or {}, base, DEBUG)

    with _patch_lock:
        SPARQLProcessor.query = query  # type: ignore[method-assign]
        try:
            yield
        finally:
            SPARQLProcessor.query = original  # type: ignore[method-assign]


@once
def _support_triples() -> tuple:
    return tuple(rule_support_graph())


def reason_one(patient_ntriples: str) -> rdflib.Graph:
    """Run every rule on one patient; return only the inferred triples."""
    data = rdflib.Graph()
    data.parse(data=patient_ntriples, format="nt")
    given = set(data)
    for t in _support_triples():
        data.add(t)
    before = given | set(_support_triples())
    with _parse_cache():
        pyshacl.shacl_rules(data, shacl_graph=rules_graph(), inplace=True, advanced=True, iterate_rules=False,
                            inference="none", do_owl_imports=False)
    inferred = rdflib.Graph()
    for t in data:
        if t not in before:
            inferred.add(t)
    return inferred


def inferred_ntriples(patient_ntriples: str) -> str:
    g = reason_one(patient_ntriples)
    lines = sorted(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in g)
    return "\n".join(lines) + ("\n" if lines else "")


class PyshaclEngine(Engine):
    """The SHACL-AF rules as written, run by pySHACL one patient at a time (the reference)."""

    name = "pyshacl"

    def infer_graph(self, input_ntriples: str) -> str:
        return inferred_ntriples(input_ntriples)
