"""The rule algebra in one normal form: a rule's WHERE clause (as rdflib translates it) as a union
of conjunctions, each with its triple patterns, FILTER expressions, BINDs, value rows and NOT
EXISTS blocks (themselves in this form). The compiled engine and the SWRL translation both read
this form; neither walks the algebra itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from rdflib import URIRef, Variable
from rdflib.plugins.sparql.algebra import translateGroupGraphPattern

from ..errors import RuleError


class UnsupportedForm(RuleError):
    """A SPARQL form the normal form does not cover (OPTIONAL, MINUS, ...); ``form`` names it."""

    def __init__(self, form: str):
        super().__init__(f"the SPARQL form {form!r} is not read")
        self.form = form


@dataclass
class Conj:
    triples: list = field(default_factory=list)
    filters: list = field(default_factory=list)
    binds: dict = field(default_factory=dict)
    values: list = field(default_factory=list)       # lists of {Variable: term} rows
    notexists: list = field(default_factory=list)    # lists of Conj (alternatives)

    def merge(self, other: "Conj") -> "Conj":
        return Conj(self.triples + other.triples, self.filters + other.filters, {**self.binds, **other.binds},
                    self.values + other.values, self.notexists + other.notexists)


def _split_and(expr) -> list:
    if getattr(expr, "name", None) == "ConditionalAndExpression":
        return [expr["expr"]] + list(expr["other"] or [])
    return [expr]


def exists_graph(node):
    """The translated graph pattern of an EXISTS / NOT EXISTS. rdflib keeps it as an attribute;
    the dict entry of the same name is the parse tree, whose FILTERs the translation moved out."""
    graph = node.__dict__.get("graph")
    if graph is None:
        graph = translateGroupGraphPattern(node["graph"])
    return graph


def normalise(node) -> list[Conj]:
    name = getattr(node, "name", None)
    if name in ("Project", "Distinct", "Reduced", "ConstructQuery", "SelectQuery"):
        return normalise(node["p"])
    if name == "BGP":
        return [Conj(triples=list(node["triples"]))]
    if name == "Join":
        return [a.merge(b) for a in normalise(node["p1"]) for b in normalise(node["p2"])]
    if name == "Union":
        return normalise(node["p1"]) + normalise(node["p2"])
    if name == "Extend":
        out = []
        for c in normalise(node["p"]):
            c.binds[node["var"]] = node["expr"]
            out.append(c)
        return out
    if name == "Filter":
        out = []
        for c in normalise(node["p"]):
            for part in _split_and(node["expr"]):
                if (getattr(part, "name", None) == "RelationalExpression" and part["op"] == "IN"
                        and isinstance(part["expr"], Variable)
                        and all(isinstance(t, URIRef) for t in part["other"])):
                    # FILTER (?x IN (<a>, <b>)) over constants: the values ?x may take
                    c.values.append([{part["expr"]: t} for t in part["other"]])
                    continue
                if getattr(part, "name", None) == "Builtin_NOTEXISTS":
                    c.notexists.append(normalise(exists_graph(part)))
                else:
                    c.filters.append(part)
            out.append(c)
        return out
    if name == "ToMultiSet":
        return normalise(node["p"])
    if name == "values":
        return [Conj(values=[list(node["res"])])]
    raise UnsupportedForm(str(name))


