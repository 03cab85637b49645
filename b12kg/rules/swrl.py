"""The monotone rules as SWRL, derived mechanically from the SHACL-AF SPARQL text of rules/*.ttl.

Nothing here restates a rule. Each rule's ``sh:construct`` is parsed by rdflib
(``prepareQuery(prefix_block + construct)``) and its algebra is rewritten into SWRL:

- the WHERE clause is put in disjunctive normal form: a UNION gives one SWRL rule per branch, a
  VALUES block one per row (its constants substituted, as SPARQL joins them by term equality),
  a FILTER of comparisons combined with ``&&`` and ``||`` one per disjunct (``IN`` is a
  disjunction of ``=``);
- ``?x rdf:type C`` becomes ``C(?x)``; ``?s p ?o`` becomes ``p(?s, ?o)``, an object or a data
  property atom as the ontology declares ``p`` (owl:ObjectProperty / owl:DatatypeProperty in
  ontology/modules/*.ttl); IRIs are individuals, literals stay literals (lexical form and datatype
  as written);
- comparisons become swrlb:lessThan, lessThanOrEqual, greaterThan, greaterThanOrEqual, equal
  (and notEqual), except ``?x = "string"`` (or ``= <iri>``) on a matched variable, which is term
  equality in SPARQL and so goes into the pattern like a VALUES constant (Pellet then indexes it);
  ``=`` on numbers stays swrlb:equal (SPARQL compares numbers by value: 105 = 105.0);
- a variable shared by two data-property atoms is refused unless both range over xsd:string: SWRL
  joins literals by value, SPARQL by term;
- the focus node ``$this`` gets the shape's sh:targetClass as a class atom, as the SPARQL engines
  add ``$this a b12:Patient``;
- findings: SWRL cannot mint the finding node ``?f`` (``BIND(IRI(CONCAT(STR($this), "...")))``),
  so "the patient has a finding of class X" is the patient's membership of the generated class
  ``<https://w3id.org/b12kg/swrl/Has_X>``. The head ``$this b12:hasFinding ?f . ?f a b12:X ;
  b12:about $this`` becomes ``Has_X(?this)``; the body ``$this b12:hasFinding ?g . ?g a b12:X``
  becomes ``Has_X(?this)``. The head also says which rule fired, ``fired/RULE(?this)``, so that
  the template triples that depend on the patient alone (the rule application, a recommended
  action) can be written back. The head triples that need other bindings (``b12:usedResult ?r``,
  ``prov:wasDerivedFrom ?t``) are dropped: SWRL is checked on which findings fire, not on
  provenance;
- head triples without a minted node (``$this b12:inPopulation ?pop``, ``?r b12:satisfies ?thr``,
  ``$this b12:hasCauseCategory ?cat``) translate as they are.

Rules that read an absence (FILTER NOT EXISTS, MINUS) or an optional part (OPTIONAL) need the
closed world and are excluded, with the reason. So is anything else this translator does not know
(another BIND, a function in a FILTER, a variable predicate): it is refused, never approximated.

The SWRL subset is the monotone closure: a rule is in it only if it translates and every rule
producing something it reads (a finding class, a property, a class) is in it too and produces that
thing in a form SWRL represents. It is computed from the heads and bodies, not listed. A finding
code is *fully covered* when every rule producing it is in the subset; the subset also holds rules
for codes that are only partly covered (e.g. one of several ways to VitaminB12Deficiency): what
they derive is exact, since everything they read is complete, but the code can also arise from
rules outside the subset.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable

import rdflib
from rdflib import BNode, Literal, URIRef, Variable
from rdflib.namespace import OWL, RDF, RDFS, XSD
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.sparql.parserutils import CompValue

from ..errors import RuleError
from ..kb import ontology_graph
from ..rdf.terms import B12, B12SWRL_NS, SH, SWRL_NS as SWRL_IRI, SWRL_PREFIXES, SWRLB_NS
from .algebra import UnsupportedForm, normalise
from .base import Rule, load_rules, rules_graph
from ..cache import once

SWRL = rdflib.Namespace(SWRL_IRI)
SWRLB = rdflib.Namespace(SWRLB_NS)
SWRL_NS = B12SWRL_NS
VAR_NS = SWRL_NS + "var/"
THIS = Variable("this")

BUILTINS = {"<": "lessThan", "<=": "lessThanOrEqual", ">": "greaterThan", ">=": "greaterThanOrEqual",
            "=": "equal", "!=": "notEqual"}

Term = Variable | URIRef | Literal
Signature = tuple[str, str]   # ("finding", class IRI) | ("class", class IRI) | ("prop", property IRI)


class Untranslatable(Exception):
    """The rule text uses something SWRL cannot express (or this translator does not know)."""


def has_class(finding_class: str) -> URIRef:
    """The generated class of the patients that have a finding of ``finding_class``."""
    return URIRef(SWRL_NS + "Has_" + str(finding_class).rsplit("/", 1)[-1])


def fired_class(rule_id: str) -> URIRef:
    """The generated class of the focus nodes a finding rule fired for (which rule, not why)."""
    return URIRef(SWRL_NS + "fired/" + rule_id)


@dataclass(frozen=True)
class Atom:
    kind: str                  # "class" | "object" | "data" | "builtin"
    predicate: URIRef          # class, property or builtin IRI
    args: tuple[Term, ...]

    def text(self) -> str:
        return f"{_short(self.predicate)}({', '.join(_show(a) for a in self.args)})"


@dataclass(frozen=True)
class SwrlRule:
    rule_id: str               # the SPARQL rule it comes from
    branch: int                # index among the SWRL rules of that rule (DNF disjunct)
    body: tuple[Atom, ...]
    head: tuple[Atom, ...]

    @property
    def name(self) -> str:
        return f"{self.rule_id}#{self.branch}"

    def text(self) -> str:
        """Human-readable SWRL (presentation syntax)."""
        return " ^ ".join(a.text() for a in self.body) + " -> " + " ^ ".join(a.text() for a in self.head)


@dataclass(frozen=True)
class Translation:
    rule_id: str
    order: int
    swrl: tuple[SwrlRule, ...]
    produces: frozenset[Signature]        # what the head yields in a form SWRL represents
    lost: frozenset[Signature]            # what the SPARQL head yields that SWRL drops (provenance)
    reads: frozenset[Signature]
    finding_suffixes: tuple[tuple[str, str], ...] = ()   # (finding class IRI, IRI suffix after $this)
    reason: str | None = None             # why the rule is not translatable; None when it is
    notes: tuple[str, ...] = ()
    # The CONSTRUCT template triples that depend on nothing but the focus node: the finding node,
    # its class, the rule application and its rule, a recommended action. Known once the rule's
    # fired_class membership is; (var, base var, IRI suffix) for each minted node.
    focus_template: tuple[tuple, ...] = ()
    minted: tuple[tuple, ...] = ()

    @property
    def translatable(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Subset:
    rule_ids: frozenset[str]
    covered_codes: frozenset[str]            # finding codes (local names) every producer of which is in the subset
    partial_codes: frozenset[str]            # codes some but not all producers of which are in the subset
    excluded: dict[str, str] = field(default_factory=dict)   # rule id -> reason
    translations: tuple[Translation, ...] = ()

    def swrl_rules(self) -> tuple[SwrlRule, ...]:
        return tuple(s for t in self.translations if t.rule_id in self.rule_ids for s in t.swrl)


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------
def _short(iri: str) -> str:
    for p, ns in SWRL_PREFIXES.items():
        if iri.startswith(ns) and "/" not in iri[len(ns):]:
            return f"{p}:{iri[len(ns):]}"
    return f"<{iri}>"


def _show(t: Term) -> str:
    if isinstance(t, Variable):
        return "?" + str(t)
    if isinstance(t, Literal):
        dt = t.datatype or (None if t.language else XSD.string)
        return f'"{t}"' + (f"@{t.language}" if t.language else f"^^{_short(dt)}")
    return _short(t)


# ---------------------------------------------------------------------------------------------
# The ontology's property declarations
# ---------------------------------------------------------------------------------------------
@once
def property_kinds() -> dict[URIRef, str]:
    """Every property the ontology declares: "object" or "data"."""
    g = ontology_graph()
    out: dict[URIRef, str] = {}
    for kind, cls in (("object", OWL.ObjectProperty), ("data", OWL.DatatypeProperty)):
        for p in g.subjects(RDF.type, cls):
            if isinstance(p, URIRef):
                if out.get(p, kind) != kind:
                    raise RuleError(f"{p} is declared both an object and a datatype property")
                out[p] = kind
    return out


def _target_classes(rule: Rule) -> tuple[URIRef, ...]:
    g = rules_graph()
    shape = URIRef(rule.iri)
    others = [p for p in (SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf, SH.target) if g.value(shape, p) is not None]
    if others:
        raise Untranslatable(f"the shape has a target other than sh:targetClass ({', '.join(_short(p) for p in others)})")
    return tuple(sorted(c for c in g.objects(shape, SH.targetClass) if isinstance(c, URIRef)))


# ---------------------------------------------------------------------------------------------
# The WHERE clause in disjunctive normal form
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Alt:
    triples: tuple = ()
    conds: tuple = ()           # (op, left, right)
    binds: tuple = ()           # (var, base var, suffix)
    values: tuple = ()          # (var, term), sorted

    def join(self, other: "_Alt") -> "_Alt | None":
        vals = dict(self.values)
        for v, t in other.values:
            if vals.get(v, t) != t:
                return None  # incompatible VALUES rows: no solution
            vals[v] = t
        return _Alt(self.triples + other.triples, self.conds + other.conds, self.binds + other.binds,
                    tuple(sorted(vals.items())))


def _name(node) -> str:
    return node.name if isinstance(node, CompValue) else type(node).__name__


_UNSUPPORTED = {"LeftJoin": "OPTIONAL: an optional part needs the closed world",
                "Minus": "MINUS: reads an absence (negation as failure), which needs the closed world"}


def _pattern(node) -> list[_Alt]:
    """The WHERE clause as SWRL disjuncts: the rule algebra's one normal form
    (``rules.algebra.normalise``), with each block of value rows and each FILTER's disjunctive
    normal form multiplied out."""
    try:
        conjs = normalise(node)
    except UnsupportedForm as exc:
        raise Untranslatable(_UNSUPPORTED.get(exc.form, f"the algebra operator {exc.form} has no SWRL form")) from None
    out: list[_Alt] = []
    for c in conjs:
        if c.notexists:
            raise Untranslatable("FILTER NOT EXISTS: reads an absence (negation as failure), which needs the closed world")
        alts = [_Alt(triples=tuple(tuple(t) for t in c.triples), binds=tuple(_mint(v, e) for v, e in c.binds.items()))]
        for rows in c.values:        # a VALUES block, or FILTER (?x IN (...)) over constants
            alts = [j for a in alts for row in rows if (j := a.join(_Alt(values=tuple(sorted(row.items()))))) is not None]
        for f in c.filters:
            disjuncts = _dnf(f)
            alts = [_Alt(a.triples, a.conds + tuple(d), a.binds, a.values) for a in alts for d in disjuncts]
        out.extend(alts)
    return out


def _mint(var: Variable, expr) -> tuple:
    """BIND(IRI(CONCAT(STR(?base), "suffix")) AS ?var): the only BIND there is a reading for."""
    if _name(expr) == "Builtin_IRI" or _name(expr) == "Builtin_URI":
        arg = expr.arg
        if _name(arg) == "Builtin_CONCAT" and len(arg.arg) == 2:
            first, second = arg.arg
            if _name(first) == "Builtin_STR" and isinstance(first.arg, Variable) and isinstance(second, Literal):
                return (var, first.arg, str(second))
    raise Untranslatable(f"BIND of ?{var}: only BIND(IRI(CONCAT(STR(?x), \"...\")) AS ?f) (a finding node) has a reading")


def _operand(t) -> Term:
    if isinstance(t, (Variable, Literal, URIRef)):
        return t
    raise Untranslatable(f"a FILTER operand is {_name(t)}, not a variable or a constant")


def _dnf(expr) -> list[list[tuple]]:
    name = _name(expr)
    if name == "ConditionalOrExpression":
        return [d for e in [expr.expr] + list(expr.other or []) for d in _dnf(e)]
    if name == "ConditionalAndExpression":
        parts = [_dnf(e) for e in [expr.expr] + list(expr.other or [])]
        return [[c for d in combo for c in d] for combo in itertools.product(*parts)]
    if name == "RelationalExpression":
        op = str(expr.op)
        left = _operand(expr.expr)
        if op == "IN":
            return [[("=", left, _operand(x))] for x in expr.other]
        if op not in BUILTINS:
            raise Untranslatable(f"the FILTER operator {op} has no SWRL built-in")
        return [[(op, left, _operand(expr.other))]]
    if name == "Builtin_NOTEXISTS":
        raise Untranslatable("FILTER NOT EXISTS: reads an absence (negation as failure), which needs the closed world")
    if name == "Builtin_EXISTS":
        raise Untranslatable("FILTER EXISTS inside a FILTER expression is not translated")
    if name == "UnaryNot":
        raise Untranslatable("FILTER with '!': a negation")
    raise Untranslatable(f"the FILTER expression {name} has no SWRL form")


def _collect_binds(node, out: list) -> None:
    if isinstance(node, CompValue):
        if node.name == "Extend":
            try:
                out.append(_mint(node.var, node.expr))
            except Untranslatable:
                out.append((node.var, None, None))
        for v in node.values():
            _collect_binds(v, out)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _collect_binds(v, out)


# ---------------------------------------------------------------------------------------------
# Heads and bodies
# ---------------------------------------------------------------------------------------------
def _subst(t, values: dict):
    return values.get(t, t) if isinstance(t, Variable) else t


def _classify_head(template: Iterable[tuple], minted: dict) -> tuple[list, list, set, set, dict]:
    """Split a CONSTRUCT template into (finding heads (base var, class), plain triples, produced,
    lost, suffix of each finding class)."""
    template = list(template)
    finding_vars = {o for s, p, o in template if p == B12.hasFinding and isinstance(o, Variable) and o in minted}
    findings: list[tuple[Variable, URIRef]] = []
    plain: list[tuple] = []
    produced: set[Signature] = set()
    lost: set[Signature] = set()
    suffixes: dict[str, str] = {}
    for s, p, o in template:
        if s in finding_vars and p == RDF.type and isinstance(o, URIRef):
            base, suffix = minted[s]
            if base is None or (base, B12.hasFinding, s) not in template:
                raise Untranslatable(f"the finding node ?{s} is not linked from the node its IRI is minted from")
            findings.append((base, o))
            produced.add(("finding", str(o)))
            suffixes[str(o)] = suffix
        elif (p == B12.hasFinding and o in finding_vars) or (s in finding_vars and p == B12.about):
            lost.add(("prop", str(p)))
        elif s in minted or o in minted:
            lost.add(("prop", str(p)) if p != RDF.type else ("class", str(o)))
            if p == RDF.type:
                lost.add(("finding", str(o)))
        else:
            plain.append((s, p, o))
            produced.add(("prop", str(p)) if p != RDF.type else ("class", str(o)))
    return findings, plain, produced, lost, suffixes


def _triple_atom(s, p, o, where: str) -> Atom:
    if any(isinstance(x, BNode) for x in (s, p, o)):
        raise Untranslatable(f"a blank node in the {where}")
    if not isinstance(p, URIRef):
        raise Untranslatable(f"a variable predicate ?{p} in the {where}")
    if p == RDF.type:
        if not isinstance(o, URIRef):
            raise Untranslatable(f"rdf:type with a variable class ?{o} (not bound by VALUES) in the {where}")
        if isinstance(s, Literal):
            raise Untranslatable("a literal subject")
        return Atom("class", o, (s,))
    kind = property_kinds().get(p)
    if kind is None:
        raise Untranslatable(f"{_short(p)} is declared neither an owl:ObjectProperty nor an owl:DatatypeProperty")
    if isinstance(s, Literal):
        raise Untranslatable("a literal subject")
    if kind == "object" and isinstance(o, Literal):
        raise Untranslatable(f"the object property {_short(p)} with a literal value")
    if kind == "data" and isinstance(o, URIRef):
        raise Untranslatable(f"the datatype property {_short(p)} with an IRI value")
    return Atom(kind, p, (s, o))


def _vars(atom: Atom) -> set:
    return {a for a in atom.args if isinstance(a, Variable)}


def _body(alt: _Alt, targets: tuple[URIRef, ...], minted: dict) -> tuple[list[Atom], set]:
    values = dict(alt.values)
    triples = [tuple(_subst(x, values) for x in t) for t in alt.triples]
    reads: set[Signature] = set()
    atoms: list[Atom] = []
    for v in minted:
        if any(v in t for t in triples):
            raise Untranslatable(f"the minted node ?{v} is matched in the body")
    # reading an earlier finding: ?x b12:hasFinding ?g . ?g a b12:X  ->  Has_X(?x)
    used: set[int] = set()
    for i, (s, p, o) in enumerate(triples):
        if p != B12.hasFinding:
            continue
        if not isinstance(o, Variable):
            raise Untranslatable("b12:hasFinding with a constant finding node")
        uses = [(j, t) for j, t in enumerate(triples) if j != i and o in t]
        types = [t[2] for j, t in uses if t[0] == o and t[1] == RDF.type and isinstance(t[2], URIRef)]
        if len(types) != len(uses) or len(types) != 1:
            raise Untranslatable(f"the finding node ?{o} is read beyond one class (b12:hasFinding ?{o} . ?{o} a <class>)")
        if any(o == t[2] and t[1] == B12.hasFinding for j, t in uses):
            raise Untranslatable(f"the finding node ?{o} is reached twice")
        used.add(i)
        used.update(j for j, _ in uses)
        atoms.append(Atom("class", has_class(types[0]), (s,)))
        reads.add(("finding", str(types[0])))
    for i, (s, p, o) in enumerate(triples):
        if i in used:
            continue
        a = _triple_atom(s, p, o, "body")
        atoms.append(a)
        reads.add(("class", str(a.predicate)) if a.kind == "class" else ("prop", str(a.predicate)))
    for c in targets:   # the focus node is an instance of the shape's target class
        atoms.insert(0, Atom("class", c, (THIS,)))
        reads.add(("class", str(c)))
    _check_data_joins(atoms)
    for op, left, right in alt.conds:
        left, right = _subst(left, values), _subst(right, values)
        for x in (left, right):
            if isinstance(x, URIRef):
                raise Untranslatable(f"a FILTER comparison with the IRI {_short(x)}")
        atoms.append(Atom("builtin", SWRLB[BUILTINS[op]], (left, right)))
    return atoms, reads


@once
def _ranges() -> dict[URIRef, frozenset]:
    g = ontology_graph()
    out: dict = {}
    for p, r in g.subject_objects(RDFS.range):
        out.setdefault(p, set()).add(r)
    return {p: frozenset(r) for p, r in out.items()}


def _check_data_joins(atoms: list[Atom]) -> None:
    """A variable shared by two data-property atoms joins by value in SWRL and by term in SPARQL:
    the same for strings, not for numbers ("1"^^xsd:integer and "1.0"^^xsd:decimal). Refused
    unless every such property ranges over xsd:string."""
    uses: dict = {}
    for a in atoms:
        if a.kind == "data" and isinstance(a.args[1], Variable):
            uses.setdefault(a.args[1], []).append(a.predicate)
    for var, props in uses.items():
        if len(props) > 1 and any(_ranges().get(p) != frozenset({XSD.string}) for p in props):
            raise Untranslatable(f"?{var} joins values of {', '.join(_short(p) for p in props)}: SWRL compares them by "
                                 "value, SPARQL by term, which differ unless both range over xsd:string")


def _dedupe(atoms: Iterable[Atom]) -> tuple[Atom, ...]:
    return tuple(dict.fromkeys(atoms))


def join_order(atoms: Iterable[Atom], first: Atom | None = None) -> tuple[Atom, ...]:
    """The same conjunction, ordered so that each atom joins on what the atoms before it bind
    (from ``first`` if given, else from the focus node); a built-in comes as soon as its
    arguments are bound. The order changes nothing in what a rule means; it changes how much a
    rule engine stores (Pellet builds its rule network from the body order)."""
    pending = list(_dedupe(atoms))
    out: list[Atom] = []
    bound: set = set()
    if first is not None and first in pending:
        pending.remove(first)
        out.append(first)
        bound |= _vars(first)

    def score(a: Atom) -> tuple:
        vs = _vars(a)
        consts = sum(1 for x in a.args if not isinstance(x, Variable))
        return (len(vs - bound) == 0, THIS in vs and not out, len(vs & bound) > 0, consts, -len(vs - bound))

    while pending:
        ready = [a for a in pending if a.kind == "builtin" and _vars(a) <= bound]
        if ready:
            a = ready[0]
        else:
            cands = [a for a in pending if a.kind != "builtin"] or pending
            a = max(cands, key=score)
        pending.remove(a)
        out.append(a)
        bound |= _vars(a)
    return tuple(out)


def _string_equalities(alt: _Alt) -> _Alt | None:
    """``FILTER(?x = "s")`` with a string literal or an IRI, ?x matched by a triple pattern: the
    same as putting the constant in the pattern (SPARQL ``=`` on two strings or two IRIs is term
    equality), so the constant goes in as a VALUES binding would. Numbers are left to
    swrlb:equal (``=`` on numbers compares values: 105 = 105.0). None when two constants clash."""
    in_triples = {x for t in alt.triples for x in t if isinstance(x, Variable)}
    values = dict(alt.values)
    conds = []
    for op, left, right in alt.conds:
        if op == "=":
            var, const = (left, right) if isinstance(left, Variable) else (right, left)
            if (isinstance(var, Variable) and var in in_triples
                    and (isinstance(const, URIRef) or (isinstance(const, Literal) and not const.language
                                                       and const.datatype in (None, XSD.string)))):
                if values.get(var, const) != const:
                    return None
                values[var] = const
                continue
        conds.append((op, left, right))
    return _Alt(alt.triples, tuple(conds), alt.binds, tuple(sorted(values.items())))


def translate(rule: Rule) -> Translation:
    """The SWRL rules of one SPARQL rule, or the reason it has none."""
    try:
        q = prepareQuery(rule.prefix_block() + rule.construct)
    except Exception as exc:  # a parse error is a rule-base error, not a SWRL limitation
        raise RuleError(f"rule {rule.id} does not parse: {exc}") from None
    alg = q.algebra
    if alg.name != "ConstructQuery":
        raise RuleError(f"rule {rule.id} is not a CONSTRUCT query")
    template = [tuple(t) for t in alg.template]
    if any(isinstance(x, BNode) for t in template for x in t):
        return Translation(rule.id, rule.order, (), frozenset(), frozenset(), frozenset(),
                           reason="a blank node in the CONSTRUCT template: SWRL cannot create nodes")
    all_binds: list = []
    _collect_binds(alg.p, all_binds)
    minted_all = {v: (b, s) for v, b, s in all_binds}
    try:
        findings, plain, produced, lost, suffixes = _classify_head(template, minted_all)
    except Untranslatable as exc:
        return Translation(rule.id, rule.order, (), frozenset(), frozenset(), frozenset(), reason=str(exc))

    def excluded(reason: str) -> Translation:
        return Translation(rule.id, rule.order, (), frozenset(produced), frozenset(lost), frozenset(),
                           tuple(sorted(suffixes.items())), reason)

    notes: list[str] = []
    try:
        targets = _target_classes(rule)
        alts = _pattern(alg.p)
        out: list[SwrlRule] = []
        reads: set[Signature] = set()
        for alt in alts:
            alt = _string_equalities(alt)
            if alt is None:
                notes.append("a disjunct asks one variable to equal two different constants; dropped")
                continue
            minted = {v: (b, s) for v, b, s in alt.binds}
            for v, (b, s) in minted.items():
                if any(v in t for t in alt.triples) or any(v in c[1:] for c in alt.conds):
                    raise Untranslatable(f"the minted node ?{v} is matched in the body")
            body, r = _body(alt, targets, minted)
            bound = set().union(*(_vars(a) for a in body if a.kind != "builtin")) if body else set()
            unsafe = {x for a in body if a.kind == "builtin" for x in _vars(a)} - bound
            if unsafe:
                notes.append(f"a disjunct compares unbound ?{', ?'.join(sorted(unsafe))}: a SPARQL error, no solution; dropped")
                continue
            values = dict(alt.values)
            head: list[Atom] = []
            for base, cls in findings:
                if base not in bound:
                    raise Untranslatable(f"the finding is minted from ?{base}, which the body does not bind")
                head.append(Atom("class", has_class(cls), (base,)))
            for base in dict.fromkeys(b for b, _ in findings):
                head.append(Atom("class", fired_class(rule.id), (base,)))
            for t in plain:
                t2 = tuple(_subst(x, values) for x in t)
                a = _triple_atom(*t2, "head")
                if _vars(a) - bound:
                    continue  # CONSTRUCT skips a template triple with an unbound variable
                head.append(a)
            if not head:
                notes.append("a disjunct yields no head atom; dropped")
                continue
            reads |= r
            out.append(SwrlRule(rule.id, len(out), join_order(body), _dedupe(head)))
    except Untranslatable as exc:
        return excluded(str(exc))
    if not out:
        return excluded("no disjunct of the WHERE clause yields a SWRL rule")
    bases = {b for b, _ in findings}
    focus = tuple(t for t in template
                  if all(not isinstance(x, Variable) or x in bases or x in minted_all for x in t)) if findings else ()
    return Translation(rule.id, rule.order, tuple(out), frozenset(produced), frozenset(lost), frozenset(reads),
                       tuple(sorted(suffixes.items())), None, tuple(dict.fromkeys(notes)), focus,
                       tuple((v, b, sfx) for v, (b, sfx) in minted_all.items()))


# ---------------------------------------------------------------------------------------------
# The monotone closure
# ---------------------------------------------------------------------------------------------
def _local(iri: str) -> str:
    return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _sig_text(sig: Signature) -> str:
    kind, iri = sig
    return {"finding": f"{_local(iri)} findings", "class": f"members of {_short(iri)}",
            "prop": f"{_short(iri)} values"}[kind]


def compute_subset(translations: Iterable[Translation]) -> Subset:
    ts = {t.rule_id: t for t in translations}
    producers: dict[Signature, set[str]] = {}
    for t in ts.values():
        for s in t.produces | t.lost:
            producers.setdefault(s, set()).add(t.rule_id)
    excluded = {rid: t.reason for rid, t in ts.items() if t.reason is not None}
    subset = {rid for rid in ts if rid not in excluded}
    changed = True
    while changed:
        changed = False
        for rid in sorted(subset):
            t = ts[rid]
            for s in sorted(t.reads):
                bad = sorted(p for p in producers.get(s, ()) if p not in subset or s in ts[p].lost)
                if bad:
                    p = bad[0]
                    why = ("is outside the SWRL subset" if p not in subset
                           else "produces them only in a form SWRL cannot represent")
                    excluded[rid] = f"reads {_sig_text(s)}, which rule {p} also produces and {why}"
                    subset.discard(rid)
                    changed = True
                    break
    codes: dict[str, set[str]] = {}      # finding class IRI -> rules producing it
    for t in ts.values():
        for kind, iri in t.produces:
            if kind == "finding":
                codes.setdefault(iri, set()).add(t.rule_id)
    covered = {iri for iri, rids in codes.items()
               if rids <= subset and not any(("finding", iri) in ts[r].lost for r in rids)}
    partial = {iri for iri, rids in codes.items() if iri not in covered and rids & subset}
    return Subset(frozenset(subset), frozenset(_local(c) for c in covered), frozenset(_local(c) for c in partial),
                  dict(sorted(excluded.items())), tuple(ts.values()))


@once
def subset() -> Subset:
    """The SWRL subset of the current rule base."""
    return compute_subset(translate(r) for r in load_rules())


def finding_suffixes() -> dict[str, tuple[str, str]]:
    """Finding code -> (finding class IRI, the IRI suffix the SPARQL rules append to the patient
    IRI for it), for every finding some rule in the subset derives."""
    out: dict[str, tuple[str, str]] = {}
    s = subset()
    for t in s.translations:
        if t.rule_id not in s.rule_ids:
            continue
        for cls, suffix in t.finding_suffixes:
            code = _local(cls)
            if out.setdefault(code, (cls, suffix)) != (cls, suffix):
                raise RuleError(f"finding {code} is minted with two IRI patterns ({out[code][1]!r}, {suffix!r})")
    return out


# ---------------------------------------------------------------------------------------------
# SWRL as RDF (the SWRL submission's RDF vocabulary, as Pellet and owlready2 read it)
# ---------------------------------------------------------------------------------------------
def _var_iri(v: Variable) -> URIRef:
    return URIRef(VAR_NS + str(v))


def _rdf_list(g: rdflib.Graph, items: list, list_type=None) -> rdflib.term.Node:
    head = RDF.nil
    for item in reversed(items):
        n = BNode()
        if list_type is not None:
            g.add((n, RDF.type, list_type))
        g.add((n, RDF.first, item))
        g.add((n, RDF.rest, head))
        head = n
    return head


def _arg(g: rdflib.Graph, t: Term):
    if isinstance(t, Variable):
        iri = _var_iri(t)
        g.add((iri, RDF.type, SWRL.Variable))
        return iri
    if isinstance(t, Literal) and t.datatype is None and not t.language:
        return Literal(str(t), datatype=XSD.string)
    return t


def _atom_node(g: rdflib.Graph, a: Atom) -> BNode:
    n = BNode()
    if a.kind == "class":
        g.add((n, RDF.type, SWRL.ClassAtom))
        g.add((n, SWRL.classPredicate, a.predicate))
        g.add((n, SWRL.argument1, _arg(g, a.args[0])))
    elif a.kind in ("object", "data"):
        g.add((n, RDF.type, SWRL.IndividualPropertyAtom if a.kind == "object" else SWRL.DatavaluedPropertyAtom))
        g.add((n, SWRL.propertyPredicate, a.predicate))
        g.add((n, SWRL.argument1, _arg(g, a.args[0])))
        g.add((n, SWRL.argument2, _arg(g, a.args[1])))
    else:
        g.add((n, RDF.type, SWRL.BuiltinAtom))
        g.add((n, SWRL.builtin, a.predicate))
        g.add((n, SWRL.arguments, _rdf_list(g, [_arg(g, x) for x in a.args])))
    return n


def swrl_graph(rules: Iterable[SwrlRule] | None = None) -> rdflib.Graph:
    """The SWRL rules as RDF, with the declarations Pellet needs: every class, property and
    individual they name, and the generated Has_X classes."""
    rules = subset().swrl_rules() if rules is None else tuple(rules)
    g = rdflib.Graph()
    g.bind("swrl", SWRL)
    g.bind("swrlb", SWRLB)
    g.bind("b12", B12)
    g.bind("b12swrl", SWRL_NS)
    for r in rules:
        imp = URIRef(f"{SWRL_NS}rule/{r.rule_id}/{r.branch}")
        g.add((imp, RDF.type, SWRL.Imp))
        g.add((imp, SWRL.body, _rdf_list(g, [_atom_node(g, a) for a in r.body], SWRL.AtomList)))
        g.add((imp, SWRL.head, _rdf_list(g, [_atom_node(g, a) for a in r.head], SWRL.AtomList)))
        for a in r.body + r.head:
            if a.kind == "class":
                g.add((a.predicate, RDF.type, OWL.Class))
            elif a.kind == "object":
                g.add((a.predicate, RDF.type, OWL.ObjectProperty))
            elif a.kind == "data":
                g.add((a.predicate, RDF.type, OWL.DatatypeProperty))
            for x in a.args if a.kind != "builtin" else ():
                if isinstance(x, URIRef):
                    g.add((x, RDF.type, OWL.NamedIndividual))
    return g


def swrl_text(rules: Iterable[SwrlRule] | None = None) -> str:
    """Every SWRL rule of the subset as text, one per line, named by its SPARQL rule."""
    rules = subset().swrl_rules() if rules is None else tuple(rules)
    return "".join(f"# {r.name}\n{r.text()}\n" for r in rules)


def report() -> str:
    """What translates, what is excluded and why, which codes are covered."""
    s = subset()
    lines = [f"SWRL subset: {len(s.rule_ids)} of {len(s.translations)} rules, "
             f"{len(s.swrl_rules())} SWRL rules",
             "fully covered codes: " + ", ".join(sorted(s.covered_codes)),
             "partly covered codes: " + ", ".join(sorted(s.partial_codes)), "excluded:"]
    lines += [f"  {rid}: {why}" for rid, why in s.excluded.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m b12kg.swrl: the report and the generated rules
    import sys

    sys.stdout.write(report() + "\n" + swrl_text())
