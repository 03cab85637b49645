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

import functools
import re
from dataclasses import dataclass

import rdflib
from rdflib.namespace import RDF, RDFS

from . import paths
from .errors import RuleError

SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
B12 = rdflib.Namespace("https://w3id.org/b12kg/")

INFERRED_GRAPH = "urn:b12kg:graph:inferred"
ANY_TYPE = rdflib.URIRef("urn:b12kg:any-type")
DATA_GRAPH = "urn:b12kg:graph:data"
KB_GRAPH = "urn:b12kg:graph:kb"


@dataclass(frozen=True)
class Rule:
    iri: str
    id: str
    label: str
    definition: str
    order: int
    finding: str | None          # local name of the finding class, None for derivations
    construct: str               # sh:construct text, as written
    prefixes: tuple[tuple[str, str], ...]
    source: str
    claims: tuple[str, ...]

    @property
    def family(self) -> str:
        return self.id.split("-", 1)[0]

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

    def update(self, *, graphs: bool = True) -> str:
        """The rule as one SPARQL 1.1 Update over all patients of a store."""
        template, body = self.template_and_body()
        body = "$this a b12:Patient .\n" + body
        if graphs:
            return (f"{self.prefix_block()}INSERT {{ GRAPH <{INFERRED_GRAPH}> {{\n{template}\n}} }}\n"
                    f"USING <{KB_GRAPH}>\nUSING <{DATA_GRAPH}>\nUSING <{INFERRED_GRAPH}>\nWHERE {{\n{body}\n}}")
        return f"{self.prefix_block()}INSERT {{\n{template}\n}}\nWHERE {{\n{body}\n}}"

    def select_construct(self) -> str:
        """The rule as a CONSTRUCT over all patients (for stores without update)."""
        template, body = self.template_and_body()
        return f"{self.prefix_block()}CONSTRUCT {{\n{template}\n}}\nWHERE {{\n$this a b12:Patient .\n{body}\n}}"


@functools.lru_cache(maxsize=256)
def _parsed(text: str):
    from rdflib.plugins.sparql import prepareQuery

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


def rule_files() -> list:
    return sorted(p for p in paths.RULES_DIR.glob("*.ttl"))


@functools.lru_cache(maxsize=1)
def rules_graph() -> rdflib.Graph:
    g = rdflib.Graph()
    for f in rule_files():
        g.parse(f, format="turtle")
    return g


@functools.lru_cache(maxsize=1)
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
            definition=str(g.value(shape, rdflib.URIRef("http://www.w3.org/2004/02/skos/core#definition"))),
            order=int(order), finding=None if finding is None else str(finding).rsplit("/", 1)[-1],
            construct=str(construct).strip(), prefixes=tuple(sorted(set(prefixes))),
            source=str(g.value(shape, rdflib.URIRef("http://purl.org/dc/terms/source"))),
            claims=tuple(sorted(str(c).rsplit("/", 1)[-1] for c in g.objects(shape, B12.claim)))))
    out.sort(key=lambda r: (r.order, r.id))
    ids = [r.id for r in out]
    if len(ids) != len(set(ids)):
        raise RuleError("duplicate rule ids")
    return tuple(out)


def strata() -> list[tuple[int, tuple[Rule, ...]]]:
    """Rules grouped by sh:order; a stratum only reads what earlier strata wrote (see tests)."""
    groups: dict[int, list[Rule]] = {}
    for r in load_rules():
        groups.setdefault(r.order, []).append(r)
    return [(k, tuple(v)) for k, v in sorted(groups.items())]


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


@functools.lru_cache(maxsize=1)
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


@functools.lru_cache(maxsize=1)
def rule_support_graph() -> rdflib.Graph:
    """The triples of the ontology that some rule body can match (thresholds, populations,
    categories, symptom types): what the engines load beside the patient data."""
    from .kb import ontology_graph

    preds, types = body_vocabulary()
    g = rdflib.Graph()
    for s, p, o in ontology_graph():
        if p in preds and (p != RDF.type or o in types or ANY_TYPE in types):
            g.add((s, p, o))
    return g


# ---------------------------------------------------------------------------------------------
# The mechanical form for set-at-a-time stores (pyoxigraph): measured, oxigraph evaluates
# FILTER NOT EXISTS and a UNION joined with outer patterns by re-evaluating them per solution, so a
# store of N patients costs O(N^2); MINUS (a hash anti-join) and one update per UNION branch are
# linear. Both rewrites are equivalences for the rules as written (checked, else refused):
# - a top-level FILTER NOT EXISTS { X } whose X shares $this with the group and has no FILTER or
#   BIND of its own is MINUS { X } placed at the end of the group;
# - INSERT T WHERE { P {A} UNION {B} Q } inserts the same triples as the two updates over
#   P A Q and P B Q, because no rule reads what it writes (the stratification test).
# ---------------------------------------------------------------------------------------------
def _top_level_items(body: str) -> list[tuple[str, str]]:
    """Split a group body into ('text', s), ('group', inner) and ('union', '') items at depth 0."""
    items: list[tuple[str, str]] = []
    i, n, start = 0, len(body), 0
    while i < n:
        c = body[i]
        if c in "\"'<#":
            # skip strings, IRIs and comments with the same scanner the brace matcher uses
            j = _skip_token(body, i)
            i = j
            continue
        if c == "{":
            close = _matching_brace(body, i)
            pre = body[start:i]
            m = re.search(r"FILTER\s+NOT\s+EXISTS\s*$", pre, re.I)
            if m:
                if pre[:m.start()].strip():
                    items.append(("text", pre[:m.start()]))
                items.append(("notexists", body[i + 1:close]))
            else:
                m2 = re.search(r"\bUNION\s*$", pre, re.I)
                if m2:
                    if pre[:m2.start()].strip():
                        items.append(("text", pre[:m2.start()]))
                    items.append(("union", ""))
                    items.append(("group", body[i + 1:close]))
                elif pre.strip():
                    if re.search(r"\b(VALUES\s+\??\$?\w+|OPTIONAL|MINUS|GRAPH\s+\S+|SERVICE\s+\S+|EXISTS)\s*$", pre, re.I):
                        items.append(("text", body[start:close + 1]))
                        i = close + 1
                        start = i
                        continue
                    items.append(("text", pre))
                    items.append(("group", body[i + 1:close]))
                else:
                    items.append(("group", body[i + 1:close]))
            i = close + 1
            start = i
            continue
        i += 1
    if body[start:].strip():
        items.append(("text", body[start:]))
    return items


def _skip_token(text: str, i: int) -> int:
    c = text[i]
    if c == "#":
        j = text.find("\n", i)
        return len(text) if j == -1 else j
    if c == "<":
        m = re.match(r"<[^<>\"{}|^`\\\s]*>", text[i:])
        return i + (m.end() if m else 1)
    q = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
    j = text.find(q, i + len(q))
    while j != -1 and len(q) == 1 and text[j - 1] == "\\":
        j = text.find(q, j + 1)
    return len(text) if j == -1 else j + len(q)


def _filters_are_local(block: str) -> bool:
    """True when every FILTER of a block reads only variables the block's own patterns bind: then
    the block means the same evaluated alone (MINUS) as with the outer bindings (NOT EXISTS)."""
    filters = []
    rest = block
    for m in list(re.finditer(r"\bFILTER\s*\(", block, re.I))[::-1]:
        depth, i = 0, m.end() - 1
        while i < len(block):
            depth += {"(": 1, ")": -1}.get(block[i], 0)
            if depth == 0:
                break
            i += 1
        filters.append(block[m.start():i + 1])
        rest = rest[:m.start()] + rest[i + 1:]
    bound = set(re.findall(r"[?$]\w+", rest))
    return all(set(re.findall(r"[?$]\w+", f)) <= bound for f in filters)


def set_at_a_time_bodies(rule: "Rule") -> list[str]:
    """The WHERE bodies of the linear form of a rule (see above): one per UNION branch, with
    NOT EXISTS as MINUS at the end."""
    _, body = rule.template_and_body()
    items = _top_level_items(body)
    outer_vars = {v[1:] for kind, text in items if kind != "notexists" for v in re.findall(r"[?$]\w+", text)}
    alternatives: list[list[str]] = [[]]
    minus: list[str] = []
    k = 0
    while k < len(items):
        kind, text = items[k]
        if kind == "notexists":
            shared = {v[1:] for v in re.findall(r"[?$]\w+", text)} & (outer_vars | {"this"})
            if re.search(r"\bBIND\b", text, re.I) or not shared or not _filters_are_local(text):
                raise RuleError(f"rule {rule.id}: NOT EXISTS block cannot be rewritten as MINUS")
            minus.append(text)
            k += 1
            continue
        if kind == "group" and k + 1 < len(items) and items[k + 1][0] == "union":
            branches = [text]
            while k + 1 < len(items) and items[k + 1][0] == "union":
                branches.append(items[k + 2][1])
                k += 2
            alternatives = [a + [b] for a in alternatives for b in branches]
            k += 1
            continue
        if kind == "group":
            alternatives = [a + ["{ " + text + " }"] for a in alternatives]
        else:
            alternatives = [a + [text] for a in alternatives]
        k += 1
    out = []
    for alt in alternatives:
        text = "\n".join(s.strip() for s in alt if s.strip())
        for m in minus:
            text += "\nMINUS { " + m.strip() + " }"
        out.append(text)
    return out


def set_at_a_time_updates(rule: "Rule", *, graphs: bool = True, kb_graph: str = KB_GRAPH,
                          data_graph: str = DATA_GRAPH, inferred_graph: str = INFERRED_GRAPH) -> list[str]:
    """The rule as SPARQL 1.1 Updates. With ``graphs``, the WHERE reads the union of the three
    graphs (USING) and the inferred triples go to their own graph: the form any SPARQL 1.1 store
    runs (graph IRIs may be chosen per batch, so that several batches share one store)."""
    template, _ = rule.template_and_body()
    out = []
    for body in set_at_a_time_bodies(rule):
        body = "$this a b12:Patient .\n" + body
        if graphs:
            out.append(f"{rule.prefix_block()}INSERT {{ GRAPH <{inferred_graph}> {{\n{template}\n}} }}\n"
                       f"USING <{kb_graph}>\nUSING <{data_graph}>\nUSING <{inferred_graph}>\nWHERE {{\n{body}\n}}")
        else:
            out.append(f"{rule.prefix_block()}INSERT {{\n{template}\n}}\nWHERE {{\n{body}\n}}")
    return out
