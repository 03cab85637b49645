"""The rule base: SHACL-AF node shapes with one SPARQL rule each (rules/*.ttl), read once and
turned mechanically into the form each engine runs. The rule text is written once, in the
sh:construct of each rule; nothing here rewrites its logic.

Forms derived from the one source:
- ``construct``: the SHACL-AF text, run by pyshacl with $this pre-bound (the reference);
- ``update(...)``: a SPARQL 1.1 Update ``INSERT { GRAPH <inferred> {...} } USING ... WHERE {...}``
  over every patient of a store at once, the focus-node type added as the first pattern; run by
  pyoxigraph in process and by any SPARQL 1.1 store over the protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import rdflib
from rdflib.plugins.sparql import prepareQuery
from rdflib.namespace import RDF, RDFS

from .. import paths
from ..errors import RuleError
from ..kb import ontology_graph, parse_turtle
from ..rdf.terms import ANY_TYPE as _ANY_TYPE, B12, SH, SKOS, DCTERMS
from ..cache import once

ANY_TYPE = rdflib.URIRef(_ANY_TYPE)


@dataclass(frozen=True)
class Rule:
    iri: str
    id: str
    label: str
    definition: str
    order: Decimal                # sh:order (companions of rules/unassessed.ttl run at order + 0.5)
    finding: str | None          # local name of the finding class, None for derivations
    construct: str               # sh:construct text, as written
    prefixes: tuple[tuple[str, str], ...]
    source: str
    claims: tuple[str, ...]

    @property
    def closed_world(self) -> bool:
        """True when the rule reads an absence (negation as failure): not expressible in SWRL."""
        return bool(re.search(r"\bNOT\s+EXISTS\b|\bMINUS\b", self.construct, re.I))

    def algebra(self):
        """The rule's SPARQL, parsed and translated by rdflib once per process (shared by the
        rule-support walker, the compiler and the SWRL translator; treat as read-only)."""
        return _parsed(self.prefix_block() + self.construct).algebra

    def prefix_block(self) -> str:
        return "".join(f"PREFIX {p}: <{ns}>\n" for p, ns in self.prefixes)

    def template_and_body(self) -> tuple[str, str]:
        return split_construct(self.construct)


@once
def _parsed(text: str):
    return prepareQuery(text)


def _matching_brace(text: str, start: int) -> int:
    """Index of the brace closing the one at ``start``, skipping strings, IRIs and comments."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            q = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            j = text.find(q, i + len(q))
            while j != -1 and text[j - 1] == "\\" and len(q) == 1:
                j = text.find(q, j + 1)
            if j == -1:
                break
            i = j + len(q)
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j == -1 else j
            continue
        if c == "<":
            m = re.match(r"<[^<>\"{}|^`\\\s]*>", text[i:])
            if m:
                i += m.end()
                continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise RuleError("unbalanced braces in rule text")


def split_construct(text: str) -> tuple[str, str]:
    """(template, body) of ``CONSTRUCT { template } WHERE { body }``."""
    m = re.search(r"\bCONSTRUCT\s*\{", text, re.I)
    if not m:
        raise RuleError("rule text is not a CONSTRUCT query")
    t_open = m.end() - 1
    t_close = _matching_brace(text, t_open)
    m2 = re.compile(r"\s*WHERE\s*\{", re.I).match(text, t_close + 1)
    if not m2:
        raise RuleError("rule text has no WHERE after its CONSTRUCT template")
    b_open = m2.end() - 1
    b_close = _matching_brace(text, b_open)
    if text[b_close + 1:].strip():
        raise RuleError("rule text has something after its WHERE clause")
    return text[t_open + 1:t_close].strip(), text[b_open + 1:b_close].strip()


@once
def rules_graph() -> rdflib.Graph:
    """Every rule file, parsed once per process."""
    return parse_turtle(paths.rule_files())


@once
def load_rules() -> tuple[Rule, ...]:
    """Every rule, in evaluation order (sh:order, then id)."""
    g = rules_graph()
    out: list[Rule] = []
    for shape in g.subjects(RDF.type, B12.Rule):
        rid = g.value(shape, B12.ruleId)
        order = g.value(shape, SH.order)
        rule_nodes = list(g.objects(shape, SH.rule))
        if rid is None or order is None or len(rule_nodes) != 1:
            raise RuleError(f"rule {shape} needs b12:ruleId, sh:order and exactly one sh:rule")
        rn = rule_nodes[0]
        construct = g.value(rn, SH.construct)
        if construct is None:
            raise RuleError(f"rule {rid} has no sh:construct")
        prefixes = []
        for pnode in g.objects(rn, SH.prefixes):
            for decl in g.objects(pnode, SH.declare):
                prefixes.append((str(g.value(decl, SH.prefix)), str(g.value(decl, SH.namespace))))
        finding = g.value(shape, B12.implementsFinding)
        out.append(Rule(
            iri=str(shape), id=str(rid), label=str(g.value(shape, RDFS.label)),
            definition=str(g.value(shape, SKOS.definition)),
            order=Decimal(str(order)), finding=None if finding is None else str(finding).rsplit("/", 1)[-1],
            construct=str(construct).strip(), prefixes=tuple(sorted(set(prefixes))),
            source=str(g.value(shape, DCTERMS.source)),
            claims=tuple(sorted(str(c).rsplit("/", 1)[-1] for c in g.objects(shape, B12.claim)))))
    out.sort(key=lambda r: (r.order, r.id))
    ids = [r.id for r in out]
    if len(ids) != len(set(ids)):
        raise RuleError("duplicate rule ids")
    return tuple(out)


def _walk(node, triples: list, values: list) -> None:
    """Collect the triple patterns and the value rows (VALUES, and FILTER (?x IN (...)) with
    constants) of a translated rdflib algebra tree."""
    if isinstance(node, dict):
        if getattr(node, "name", None) in ("Builtin_EXISTS", "Builtin_NOTEXISTS") and "graph" in node.__dict__:
            # rdflib keeps the translated pattern as an attribute (the dict entry is the parse tree)
            _walk(node.__dict__["graph"], triples, values)
            return
        if getattr(node, "name", None) == "RelationalExpression" and node.get("op") == "IN" \
                and isinstance(node.get("expr"), rdflib.Variable) and isinstance(node.get("other"), list):
            values.extend({node["expr"]: t} for t in node["other"] if isinstance(t, rdflib.URIRef))
        for k, v in node.items():
            if k == "triples" and isinstance(v, list):
                triples.extend(t for t in v if isinstance(t, tuple) and len(t) == 3)
            elif k == "res" and isinstance(v, list) and all(isinstance(x, dict) for x in v):
                values.extend(v)
            else:
                _walk(v, triples, values)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _walk(v, triples, values)


@once
def body_vocabulary() -> tuple[frozenset, frozenset]:
    """(predicates, rdf:type objects) that the rule bodies match: the part of the knowledge base
    the rules can see. Read from the parsed rule text, not listed by hand."""
    preds: set = set()
    types: set = set()
    for r in load_rules():
        triples: list = []
        values: list = []
        _walk(r.algebra(), triples, values)
        bound: dict = {}
        for row in values:
            for var, term in row.items():
                bound.setdefault(var, set()).add(term)
        for s, p, o in triples:
            if isinstance(p, rdflib.Variable) and p in bound and all(isinstance(t, rdflib.URIRef) for t in bound[p]):
                preds.update(bound[p])          # a predicate chosen among constants by VALUES
                continue
            if not isinstance(p, rdflib.URIRef):
                raise RuleError(f"rule {r.id} matches a variable predicate; the knowledge-base subset would be unsafe")
            preds.add(p)
            if p == RDF.type:
                if isinstance(o, rdflib.URIRef):
                    types.add(o)
                elif o in bound:
                    types.update(bound[o])
                else:
                    types.add(ANY_TYPE)
    return frozenset(preds), frozenset(types)


@once
def rule_support_graph() -> rdflib.Graph:
    """The triples of the ontology that some rule body can match (thresholds, populations,
    categories, symptom types): what the engines load beside the patient data."""
    preds, types = body_vocabulary()
    g = rdflib.Graph()
    for s, p, o in ontology_graph():
        if p in preds and (p != RDF.type or o in types or ANY_TYPE in types):
            g.add((s, p, o))
    return g
