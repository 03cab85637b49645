"""The compiled engine: the SHACL-AF SPARQL rules, compiled mechanically into array operations
over a batch of patients. For cohorts; same answers as the SPARQL engines (differential tests).

How the compilation works, and why it is exact for this rule base:
- Each rule is read from its parsed SPARQL algebra (rdflib) and put in disjunctive normal form
  (one conjunction per UNION branch). Every variable is classified: ``$this`` (the patient); a
  result variable (``$this b12:hasResult ?r``); a finding variable (``$this b12:hasFinding ?g``);
  an unusable-result variable (``$this b12:hasUnusableResult ?u . ?u b12:test T``: a patient fact);
  a knowledge variable (it occurs in a pattern about a knowledge-base node, or in VALUES); or a
  value variable (a literal of the patient or of a result: age, comparator, value, unit, limit).
- The knowledge part of a conjunction (its patterns about knowledge-base nodes, and VALUES) is
  evaluated once, by SPARQL on the rule-support graph: partial evaluation. Each of its solutions
  leaves a patient part in which every other variable is a function of the patient: a patient
  has at most one current result per test (the loader and the shapes guarantee it) and at most
  one finding node per class (deterministic IRIs). So the patient part is a boolean mask over the
  batch, built from columns (facts, result values) and from the masks earlier rules derived.
- FILTERs are evaluated on the columns with numbers as float64. That is exact here: every value
  compared has at most 15 significant digits (``exact_for``; a record that has more is sent to the
  SPARQL engine instead), and distinct decimals of at most 15 significant digits are distinct
  doubles. FILTER NOT EXISTS is the negation of the block's own existential mask.
- The head is instantiated for every patient of the mask: derived facts update the masks that
  later rules read (rules run in sh:order; a rule never reads what its own stratum writes), and
  the provenance (rule, results, cut-offs, earlier findings, context, actions) is recorded per
  finding, or written out as the same N-Triples the SPARQL engines infer.
Anything outside this fragment raises RuleError at compile time, so a new rule that the compiler
cannot read exactly is refused, never approximated.
"""

from __future__ import annotations

import copyreg
import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from types import MethodType
from typing import Any, Sequence

import numpy as np
import rdflib
from rdflib import Literal, URIRef, Variable
from rdflib.namespace import RDF
from rdflib.plugins.sparql.parserutils import CompValue, Expr

from ..cache import once, load_or_build
from ..errors import RuleError
from ..inputs.record import PatientRecord
from ..kb import vocabulary
from ..rdf.patient import patient_links
from ..rdf.terms import B12NS, DEFAULT_BASE, UNASSESSED_MARK, patient_iri
from ..inputs.rdf import records_from_ntriples
from ..rules import Rule, load_rules, rule_support_graph
from ..rules.algebra import Conj, normalise
from .base import Engine, Findings, Provenance, Reasoned
from .oxigraph import OxigraphEngine

THIS = Variable("this")
class _Terms:
    """b12kg's terms as attributes, each made once (``rdflib.Namespace`` makes a new URIRef on
    every attribute read: measured, a fifth of the run time of a batch)."""

    def __init__(self, ns: str) -> None:
        self._ns = rdflib.Namespace(ns)

    def __getattr__(self, name: str) -> URIRef:
        term = getattr(self._ns, name)
        setattr(self, name, term)
        return term


B = _Terms(B12NS)
RESULT_LITERALS = {B.comparator: "cmp", B.comparedValue: "value", B.comparedUnit: "unit",
                   B.referenceHighCompared: "refhigh", B.referenceLowCompared: "reflow"}
MAX_DIGITS = 15
#: patient properties whose existence a rule may read (``$this P ?x``, ?x used nowhere else)
ANY_VALUE = "urn:b12kg:any-value"
ANY_VALUE_PROPERTIES = (B.hasUnmappedClinicalCode,)
#: result-to-cut-off relations derived by rules/derive.ttl (the "InScenario" ones: sex not recorded, S3)
COMPARISONS = (B.satisfies, B.doesNotSatisfy, B.undecidedAgainst, B.satisfiesInScenario, B.doesNotSatisfyInScenario,
               B.undecidedAgainstInScenario)


# ---------------------------------------------------------------------------------------------
# Columns of a batch
# ---------------------------------------------------------------------------------------------
class Batch:
    """Columns of a batch of records, and the masks the rules derive."""

    def __init__(self, records: list[PatientRecord]):
        self.records = records
        self.n = n = len(records)
        self.facts: dict[tuple[str, str], np.ndarray] = {}
        self.age = np.full(n, np.nan)
        self.age_present = np.zeros(n, bool)
        self.weeks = np.full(n, np.nan)              # b12:gestationalWeeks (completed weeks)
        self.weeks_present = np.zeros(n, bool)
        self.results: dict[str, dict[str, np.ndarray]] = {}
        self.codes: dict[str, int] = {}
        self.rfacts: dict[tuple[str, str, str], np.ndarray] = {}   # (test key, property, object) -> mask
        self.findings: dict[str, np.ndarray] = {}                 # class IRI -> mask
        vocab = vocabulary()
        self.key_of_test = {info.iri: key for key, info in vocab.tests_by_key.items()}
        for i, rec in enumerate(records):
            for pred, obj in patient_links(rec):
                self._fact(pred, obj)[i] = True
            if rec.unmapped_codes:                    # $this b12:hasUnmappedClinicalCode ?code (any)
                self._fact(B12NS + "hasUnmappedClinicalCode", ANY_VALUE)[i] = True
            for key in rec.unusable_results:          # b12:hasUnusableResult ?u . ?u b12:test T
                if key in vocab.tests_by_key:
                    self._fact(B12NS + "hasUnusableResult", vocab.tests_by_key[key].iri)[i] = True
                    if key not in rec.results:        # also a result of its test, with no value (rdf.patient)
                        col = self._result(key)
                        col["present"][i] = True
                        col["unusable"][i] = True
            if rec.age_years is not None:
                self.age[i] = float(rec.age_years)
                self.age_present[i] = True
            if rec.gestational_weeks is not None:
                self.weeks[i] = float(rec.gestational_weeks)
                self.weeks_present[i] = True
            for key, r in rec.results.items():
                col = self._result(key)
                col["present"][i] = True
                if r.qualitative is not None:
                    col["qual"][i] = self.code(r.qualitative)
                    continue
                col["cmp"][i] = self.code(r.comparator)
                col["value"][i] = float(r.compared_value)
                col["value_present"][i] = True
                col["unit"][i] = self.code(r.compared_unit)
                if r.ref_high_compared is not None:
                    col["refhigh"][i] = float(r.ref_high_compared)
                    col["refhigh_present"][i] = True
                if r.ref_low_compared is not None:
                    col["reflow"][i] = float(r.ref_low_compared)
                    col["reflow_present"][i] = True

    def code(self, term: Any) -> int:
        return self.codes.setdefault(str(term), len(self.codes) + 1)

    def _fact(self, pred: str, obj: str) -> np.ndarray:
        k = (str(pred), str(obj))
        if k not in self.facts:
            self.facts[k] = np.zeros(self.n, bool)
        return self.facts[k]

    def fact(self, pred, obj) -> np.ndarray:
        return self.facts.get((str(pred), str(obj)), np.zeros(self.n, bool))

    def _result(self, key: str) -> dict[str, np.ndarray]:
        if key not in self.results:
            n = self.n
            self.results[key] = {"present": np.zeros(n, bool), "cmp": np.zeros(n, np.int32), "value": np.full(n, np.nan),
                                 "value_present": np.zeros(n, bool), "unit": np.zeros(n, np.int32),
                                 "refhigh": np.full(n, np.nan), "refhigh_present": np.zeros(n, bool),
                                 "reflow": np.full(n, np.nan), "reflow_present": np.zeros(n, bool),
                                 "qual": np.zeros(n, np.int32), "unusable": np.zeros(n, bool)}
        return self.results[key]

    def result(self, key: str) -> dict[str, np.ndarray]:
        return self._result(key)


def exact_for(rec: PatientRecord) -> bool:
    """True when every number of the record has at most 15 significant digits."""
    nums = [rec.age_years, rec.gestational_weeks] + [x for r in rec.results.values()
                              for x in (r.compared_value, r.ref_high_compared, r.ref_low_compared)]
    for d in nums:
        if d is not None and len(d.as_tuple().digits) > MAX_DIGITS:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Compiling one conjunction
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Compiled:
    rule: Rule
    conj: Conj
    kb_triples: list              # the knowledge part
    kb_rows: list | None          # its solutions (for a NOT EXISTS block: per outer row, cached)
    result_vars: dict             # Variable -> test IRI or Variable (knowledge variable)
    finding_vars: dict            # Variable -> class IRI or Variable
    kb_vars: set
    template: list
    suffix: dict                  # BIND variable -> IRI suffix after STR($this)
    negated: list                 # list of list[Compiled] (NOT EXISTS alternatives)
    unusable_vars: dict = field(default_factory=dict)   # Variable -> test IRI of an unusable result
    _rows_for: dict = field(default_factory=dict)

    def rows_for(self, outer: dict) -> list[dict]:
        """Solutions of a NOT EXISTS block's knowledge part, given the outer row."""
        k = frozenset((str(a), str(b)) for a, b in outer.items())
        if k not in self._rows_for:
            self._rows_for[k] = _kb_solutions(self.kb_triples, self.conj.values, self.kb_vars, outer)
        return self._rows_for[k]


def _bind_suffix(expr) -> str:
    """The literal suffix of BIND(IRI(CONCAT(STR($this), "suffix")) AS ?x); nothing else."""
    if getattr(expr, "name", None) == "Builtin_IRI":
        c = expr["arg"]
        if getattr(c, "name", None) == "Builtin_CONCAT":
            args = c["arg"]
            if (len(args) == 2 and getattr(args[0], "name", None) == "Builtin_STR" and args[0]["arg"] == THIS
                    and isinstance(args[1], Literal)):
                return str(args[1])
    raise RuleError("the compiled engine reads BIND only as IRI(CONCAT(STR($this), \"...\"))")


def _used_elsewhere(c: "Compiled", var: Variable, triple: tuple) -> bool:
    """Whether ``var`` occurs in the conjunction beyond ``triple`` (another pattern, a FILTER, a
    BIND or the head)."""
    if any(var in t for t in c.conj.triples if t != triple) or var in c.suffix or any(var in t for t in c.template):
        return True
    return any(var in _expr_vars(e) for e in c.conj.filters)


def _expr_vars(expr) -> set:
    out: set = set()
    if isinstance(expr, Variable):
        out.add(expr)
    elif isinstance(expr, dict):
        for v in expr.values():
            out |= _expr_vars(v)
    elif isinstance(expr, (list, tuple)):
        for v in expr:
            out |= _expr_vars(v)
    return out


def _unusable_vars(conj: Conj) -> dict:
    """Variables of ``$this b12:hasUnusableResult ?u . ?u b12:test <T>`` (T a constant): a patient
    fact (an unusable result of test T); any other use of ?u is refused."""
    out = {o: None for s, p, o in conj.triples if s == THIS and p == B.hasUnusableResult and isinstance(o, Variable)}
    for s, p, o in conj.triples:
        if s in out:
            if p != B.test or isinstance(o, Variable):
                raise RuleError("an unusable-result variable is read only as ?u b12:test <a test>")
            out[s] = o
    for v, test in out.items():
        if test is None:
            raise RuleError("an unusable-result variable without b12:test")
    return out


def _classify(conj: Conj, outer_results: dict, outer_findings: dict, outer_kb: set):
    results = dict(outer_results)
    findings = dict(outer_findings)
    unusable = _unusable_vars(conj)
    for s, p, o in conj.triples:
        if s == THIS and p == B.hasResult and isinstance(o, Variable):
            results.setdefault(o, None)
        if s == THIS and p in (B.hasFinding, B.unassessed) and isinstance(o, Variable):
            findings.setdefault(o, None)
    for s, p, o in conj.triples:
        if s in results and p == B.test:
            results[s] = o
        if s in findings and p == RDF.type:
            findings[s] = o
        if s in findings and p == B.unassessedFinding:      # an unassessed finding (S1): read by its predicate
            findings[s] = o
    kb_triples = [t for t in conj.triples if t[0] != THIS and t[0] not in results and t[0] not in findings
                  and t[0] not in unusable]
    kb_vars = set(outer_kb)
    for t in kb_triples:
        kb_vars.update(x for x in t if isinstance(x, Variable))
    for rows in conj.values:
        for row in rows:
            kb_vars.update(row.keys())
    for v, test in results.items():
        if test is None:
            raise RuleError("a result variable without b12:test")
    for v, cls in findings.items():
        if cls is None:
            raise RuleError("a finding variable without its class")
    return results, findings, kb_vars, kb_triples


def _kb_solutions(kb_triples: list, values: list, kb_vars: set, fixed: dict) -> list[dict]:
    """Solutions of the knowledge part, by SPARQL on the rule-support graph."""
    if not kb_triples and not values:
        return [dict(fixed)]
    local = sorted({x for t in kb_triples for x in t if isinstance(x, Variable)} |
                   {v for rows in values for row in rows for v in row}, key=str)
    if not local:
        return [dict(fixed)]

    def n3(x):
        if isinstance(x, Variable) and x in fixed:
            return fixed[x].n3()
        return x.n3()
    body = " .\n".join(f"{n3(s)} {n3(p)} {n3(o)}" for s, p, o in kb_triples)
    for rows in values:
        vs = sorted({v for row in rows for v in row}, key=str)
        body += "\nVALUES (" + " ".join(v.n3() for v in vs) + ") { " + " ".join(
            "(" + " ".join(row[v].n3() if v in row else "UNDEF" for v in vs) + ")" for row in rows) + " }"
    free = [v for v in local if v not in fixed]
    q = "SELECT " + (" ".join(v.n3() for v in free) or "*") + " WHERE {\n" + body + "\n}"
    out = []
    for sol in _kb_store().query(q):
        row = dict(fixed)
        for v in free:
            val = sol[str(v)]
            if val is not None:
                row[v] = _to_rdflib(val)
        out.append(row)
    return out


@once
def _kb_store():
    """The rule-support graph in a pyoxigraph store, for solving knowledge parts quickly."""
    import pyoxigraph as ox

    store = ox.Store()
    store.load(rule_support_graph().serialize(format="nt").encode("utf-8"), format=ox.RdfFormat.N_TRIPLES)
    return store


def _to_rdflib(term):
    import pyoxigraph as ox

    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.Literal):
        if term.language:
            return Literal(term.value, lang=term.language)
        return Literal(term.value, datatype=URIRef(term.datatype.value))
    if isinstance(term, ox.BlankNode):
        return rdflib.BNode(term.value)
    raise RuleError(f"unexpected term {term!r} in the knowledge base")


def compile_conj(rule: Rule, conj: Conj, template: list, outer=None) -> "Compiled":
    """Compile a conjunction; ``outer`` (result, finding and knowledge variables of the enclosing
    conjunction) marks a NOT EXISTS block, whose knowledge part is solved per outer row."""
    outer_results, outer_findings, outer_kb = outer or ({}, {}, set())
    results, findings, kb_vars, kb_triples = _classify(conj, outer_results, outer_findings, outer_kb)
    suffix = {v: _bind_suffix(e) for v, e in conj.binds.items()}
    rows = None if outer else _kb_solutions(kb_triples, conj.values, kb_vars, {})
    negs = [[compile_conj(rule, alt, [], (results, findings, kb_vars)) for alt in alts] for alts in conj.notexists]
    return Compiled(rule, conj, kb_triples, rows, results, findings, kb_vars, template, suffix, negs,
                    unusable_vars=_unusable_vars(conj))


# ---------------------------------------------------------------------------------------------
# Evaluating masks
# ---------------------------------------------------------------------------------------------
class _Unsupported(RuleError):
    pass


UNASSESSED_SUFFIX = "#unassessed"


def _based_on(key: str) -> str:
    """A finding key (class IRI, or class IRI + UNASSESSED_SUFFIX) as ``based_on`` names it."""
    code = key[len(B12NS):]
    return code.removesuffix(UNASSESSED_SUFFIX) + (UNASSESSED_MARK if code.endswith(UNASSESSED_SUFFIX) else "")


def unassessed_key(cls) -> str:
    """The mask key of 'finding class ``cls`` unassessed' (findings.md v2, S1)."""
    return str(cls) + UNASSESSED_SUFFIX


def _term(x, row: dict):
    if isinstance(x, Variable) and x in row:
        return row[x]
    return x


def _test_key(batch: Batch, test) -> str:
    key = batch.key_of_test.get(str(test))
    if key is None:
        raise RuleError(f"unknown test {test}")
    return key


def patient_mask(batch: Batch, c: Compiled, row: dict) -> tuple[np.ndarray, dict]:
    """The mask of patients for which the conjunction holds with this knowledge row, and the
    columns bound to value variables."""
    n = batch.n
    mask = np.ones(n, bool)
    cols: dict = {}
    for s, p, o in c.conj.triples:
        p = _term(p, row)                         # a predicate chosen by VALUES is a constant per row
        if s in c.unusable_vars:                  # ?u b12:test T: the patient has an unusable result of T
            mask &= batch.fact(B.hasUnusableResult, c.unusable_vars[s])
            continue
        if s == THIS:
            if p in (B.hasResult, B.hasFinding, B.unassessed):
                continue
            if p == B.hasUnusableResult and o in c.unusable_vars:
                continue
            if p == RDF.type and o == B.Patient:
                continue
            if p in (B.ageYears, B.gestationalWeeks):
                num, present = (batch.age, batch.age_present) if p == B.ageYears else (batch.weeks, batch.weeks_present)
                if isinstance(o, Variable) and o not in row:
                    cols[o] = ("num", num)
                    mask &= present
                    continue
                raise RuleError(f"{p} compared with a constant")
            obj = _term(o, row)
            if isinstance(obj, Variable):
                # ``$this P ?x`` with ?x read nowhere else: "the patient has some P" (a patient fact)
                if p in ANY_VALUE_PROPERTIES and not _used_elsewhere(c, obj, (s, p, o)):
                    mask &= batch.fact(p, ANY_VALUE)
                    continue
                raise RuleError(f"rule {c.rule.id}: patient property {p} with an unbound object")
            if p in (B.inPopulation, B.hasCauseCategory):
                mask &= batch.fact(p, obj)
            else:
                mask &= batch.fact(p, obj)
        elif s in c.result_vars:
            key = _test_key(batch, _term(c.result_vars[s], row))
            col = batch.result(key)
            mask &= col["present"]
            if p == B.test:
                continue
            if p in RESULT_LITERALS:
                kind = RESULT_LITERALS[p]
                present = col[kind + "_present"] if kind in ("refhigh", "reflow") else col["value_present"]
                mask &= present
                obj = _term(o, row)
                if isinstance(obj, Variable):
                    if kind in ("value", "refhigh", "reflow"):
                        cols[obj] = ("num", col[kind])
                    else:
                        cols[obj] = ("code", col[kind])
                else:
                    if kind in ("value", "refhigh", "reflow"):
                        mask &= col[kind] == float(obj.toPython())
                    else:
                        mask &= col[kind] == batch.code(obj)
            elif p == RDF.type and o == B.UnusableResult:
                mask &= col["unusable"]
            elif p == B.qualitativeValue:
                mask &= col["qual"] == batch.code(_term(o, row))
            elif p in COMPARISONS:
                obj = _term(o, row)
                if isinstance(obj, Variable):   # any cut-off: ?r b12:undecidedAgainst ?t, ?t read nowhere else
                    if (any(obj in t for t in c.conj.triples if t != (s, p, o)) or obj in c.suffix
                            or any(obj in t for t in c.template)):
                        raise RuleError(f"rule {c.rule.id}: cut-off variable {obj} unbound by the knowledge part")
                    anyc = np.zeros(n, bool)
                    for (k, pp, _), m in batch.rfacts.items():
                        if k == key and pp == str(p):
                            anyc |= m
                    mask &= anyc
                else:
                    mask &= batch.rfacts.get((key, str(p), str(obj)), np.zeros(n, bool))
            else:
                raise RuleError(f"rule {c.rule.id}: result property {p} not compiled")
        elif s in c.finding_vars:
            if p == B.unassessedFinding:
                mask &= batch.findings.get(unassessed_key(_term(o, row)), np.zeros(n, bool))
                continue
            if p != RDF.type:
                raise RuleError(f"rule {c.rule.id}: finding property {p} not compiled")
            mask &= batch.findings.get(str(_term(o, row)), np.zeros(n, bool))
    for expr in c.conj.filters:
        val, _ = _expr(batch, expr, row, cols)
        mask &= val
    for alts in c.negated:
        exists = np.zeros(n, bool)
        for inner in alts:
            for irow in inner.rows_for(row):
                m, _ = patient_mask(batch, inner, irow)
                exists |= m
        mask &= ~exists
    return mask, cols


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "=": np.equal, "!=": np.not_equal}


def _operand(batch: Batch, x, row: dict, cols: dict):
    if isinstance(x, Variable):
        if x in cols:
            return cols[x]
        if x in row:
            x = row[x]
        else:
            raise RuleError(f"unbound variable {x} in a FILTER")
    if isinstance(x, Literal):
        v = x.toPython()
        if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
            return ("num", float(v))
        return ("code", batch.code(x))
    if isinstance(x, URIRef):
        return ("code", batch.code(x))
    raise RuleError(f"FILTER operand {x!r} not compiled")


def _expr(batch: Batch, expr, row: dict, cols: dict):
    """(value, error) masks of a FILTER expression; a filter keeps value & ~error."""
    n = batch.n
    name = getattr(expr, "name", None)
    if name == "RelationalExpression":
        a = _operand(batch, expr["expr"], row, cols)
        b = _operand(batch, expr["other"], row, cols)
        if a[0] != b[0]:
            raise RuleError("FILTER compares a number with a term")
        va, vb = a[1], b[1]
        res = _OPS[expr["op"]](va, vb)
        return np.broadcast_to(res, (n,)).copy(), np.zeros(n, bool)
    if name == "ConditionalAndExpression":
        parts = [_expr(batch, e, row, cols)[0] for e in [expr["expr"]] + list(expr["other"] or [])]
        out = parts[0].copy()
        for p in parts[1:]:
            out &= p
        return out, np.zeros(n, bool)
    if name == "ConditionalOrExpression":
        parts = [_expr(batch, e, row, cols)[0] for e in [expr["expr"]] + list(expr["other"] or [])]
        out = parts[0].copy()
        for p in parts[1:]:
            out |= p
        return out, np.zeros(n, bool)
    raise RuleError(f"FILTER expression {name!r} not compiled")


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Firing:
    code: str
    rule: str
    results: tuple
    thresholds: tuple
    findings: tuple
    contexts: tuple
    actions: tuple
    unassessed: bool = False      # an unassessed finding (findings.md v2, S1), not a derived one


def _bound_template(c: Compiled, row: dict) -> list:
    """The template triples whose variables this conjunction binds (CONSTRUCT leaves out a
    triple with an unbound variable, as in the other branch of a UNION)."""
    def bound(x):
        return (not isinstance(x, Variable) or x == THIS or x in row or x in c.suffix or x in c.result_vars
                or x in c.finding_vars)
    return [t for t in c.template if all(bound(x) for x in t)]


def _head_effects(batch: Batch, c: Compiled, row: dict, mask: np.ndarray, firings: list, graph: list | None,
                  base: str, finding_suffix: dict) -> None:
    rule_id = c.rule.id
    code = None
    used: dict[str, list] = {"result": [], "threshold": [], "finding": [], "context": [], "action": []}
    for s, p, o in _bound_template(c, row):
        s_t, o_t, p = _term(s, row), _term(o, row), _term(p, row)
        if s == THIS and not isinstance(o_t, Variable) and o not in c.suffix and p not in (B.hasFinding, B.unassessed):
            batch._fact(p, o_t)[mask] = True
        elif s in c.result_vars and p in COMPARISONS:
            key = _test_key(batch, _term(c.result_vars[s], row))
            k = (key, str(p), str(o_t))
            if k not in batch.rfacts:
                batch.rfacts[k] = np.zeros(batch.n, bool)
            batch.rfacts[k] |= mask
        elif s in c.suffix and p == B.unassessedFinding:
            code = unassessed_key(o_t)
            if code not in batch.findings:
                batch.findings[code] = np.zeros(batch.n, bool)
            batch.findings[code] |= mask
            finding_suffix[code] = c.suffix[s]
        elif s in c.suffix and p == RDF.type and str(o_t) not in (B12NS + "RuleApplication", B12NS + "Unassessed"):
            code = str(o_t)
            if code not in batch.findings:
                batch.findings[code] = np.zeros(batch.n, bool)
            batch.findings[code] |= mask
            finding_suffix[code] = c.suffix[s]
        if p == B.usedResult:
            used["result"].append(_test_key(batch, _term(c.result_vars[o], row)))
        elif p == B.usedThreshold:
            used["threshold"].append(str(o_t))
        elif p == B.usedFinding:
            unassessed = any(t[0] == THIS and t[1] == B.unassessed and t[2] == o for t in c.conj.triples)
            used["finding"].append(str(_term(c.finding_vars[o], row)) + (UNASSESSED_SUFFIX if unassessed else ""))
        elif p == B.usedContext:
            used["context"].append(str(o_t))
        elif p == B.recommendsAction:
            used["action"].append(str(o_t))
    if code is not None:
        f = Firing(code[len(B12NS):].removesuffix(UNASSESSED_SUFFIX), rule_id, tuple(used["result"]),
                   tuple(used["threshold"]), tuple(_based_on(x) for x in used["finding"]), tuple(used["context"]),
                   tuple(used["action"]), unassessed=code.endswith(UNASSESSED_SUFFIX))
        for i in np.flatnonzero(mask):
            firings[i].append(f)
    if graph is not None:
        _head_triples(batch, c, row, mask, graph, base, finding_suffix)


def _head_triples(batch: Batch, c: Compiled, row: dict, mask: np.ndarray, graph: list, base: str,
                  finding_suffix: dict) -> None:
    from urllib.parse import quote

    for i in np.flatnonzero(mask):
        rec = batch.records[i]
        p_iri = patient_iri(rec.id, base)

        def term(x):
            if x == THIS:
                return f"<{p_iri}>"
            if x in c.suffix:
                return f"<{p_iri}{c.suffix[x]}>"
            if x in c.result_vars:
                key = _test_key(batch, _term(c.result_vars[x], row))
                return f"<{p_iri}/result/{quote(key, safe='')}>"
            if x in c.finding_vars:
                cls = str(_term(c.finding_vars[x], row))
                if (THIS, B.unassessed, x) in c.conj.triples:
                    cls = unassessed_key(cls)
                return f"<{p_iri}{finding_suffix[cls]}>"
            t = _term(x, row)
            if isinstance(t, Variable):
                raise RuleError(f"unbound head variable {t}")
            return t.n3()
        for s, p, o in _bound_template(c, row):
            graph.append(f"{term(s)} {term(p)} {term(o)} .")


# ---------------------------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------------------------
def _rebuild_comp(cls, name, items, state, evalfn):
    obj = cls.__new__(cls)
    OrderedDict.__init__(obj)
    obj.__dict__.update(state)
    obj.name = name
    if cls is Expr:
        obj._evalfn = None if evalfn is None else MethodType(evalfn, obj)
    for k, v in items:
        OrderedDict.__setitem__(obj, k, v)
    return obj


def _reduce_comp(obj):
    """rdflib's parse-tree nodes (CompValue, Expr) cannot be unpickled as they are (their
    constructor needs a name; an Expr holds a method bound to itself): rebuild them field by field."""
    state = {k: v for k, v in obj.__dict__.items() if k not in ("name", "_evalfn", "ctx")}
    fn = getattr(obj.__dict__.get("_evalfn"), "__func__", None)
    return _rebuild_comp, (type(obj), obj.name, list(OrderedDict.items(obj)), state, fn)


copyreg.pickle(CompValue, _reduce_comp)
copyreg.pickle(Expr, _reduce_comp)


@once
def program() -> tuple[Compiled, ...]:
    """Every rule compiled, in evaluation order (one entry per UNION branch and per outer row);
    from the disk cache (b12kg.cache) when the rules, the ontology and this code are unchanged,
    read once per process."""
    return load_or_build("compiled-program", _compile_program, expect=tuple)


def _compile_program() -> tuple[Compiled, ...]:
    out: list[Compiled] = []
    for rule in load_rules():
        algebra = rule.algebra()
        template = list(algebra["template"])
        for conj in normalise(algebra["p"]):
            out.append(compile_conj(rule, conj, template))
    for c in out:
        for row in c.kb_rows:
            _solve_negated(c, row)
    return tuple(out)


def _solve_negated(c: Compiled, row: dict) -> None:
    """Solve the knowledge part of every NOT EXISTS block for every row the program will give it,
    now, so that the program is complete (and a cached one needs no knowledge base at run time)."""
    for alts in c.negated:
        for inner in alts:
            for irow in inner.rows_for(row):
                _solve_negated(inner, irow)


def run(records: list[PatientRecord], *, base: str, want_graph: bool = False) -> tuple[list[list[Firing]], str]:
    """Evaluate every rule on a batch; per record, the findings' firings, and the inferred graph."""
    batch = Batch(records)
    firings: list[list[Firing]] = [[] for _ in records]
    graph: list[str] | None = [] if want_graph else None
    finding_suffix: dict[str, str] = {}
    for c in program():
        # one entry is one SPARQL Update of the SPARQL engines (a rule, or one UNION branch of it):
        # every solution is found first, then inserted, so no row sees what another row of the same
        # entry derives (a NOT EXISTS on the rule's own finding must not hide a later row's evidence)
        fired = [(row, mask) for row in c.kb_rows for mask in (patient_mask(batch, c, row)[0],) if mask.any()]
        for row, mask in fired:
            _head_effects(batch, c, row, mask, firings, graph, base, finding_suffix)
    text = ""
    if graph:
        lines = sorted(set(graph))
        text = "\n".join(lines) + "\n"
    return firings, text


@functools.lru_cache(maxsize=65536)
def _merged(firings: tuple) -> Provenance:
    """The provenance of one finding from its rule firings (one object for every patient with
    the same firings)."""
    return Provenance.of(firings[0].code, (f.rule for f in firings), (k for f in firings for k in f.results),
                         (t for f in firings for t in f.thresholds), (x for f in firings for x in f.findings),
                         (c for f in firings for c in f.contexts), (a for f in firings for a in f.actions))


class CompiledEngine(Engine):
    """The rules compiled to NumPy masks over a batch of records. A record with a number beyond
    exact float comparison (``exact_for``) goes to the SPARQL engine instead: here, once, for
    every caller (the API, ``infer`` and the cohort alike)."""

    name = "compiled"

    def reason(self, records: Sequence[PatientRecord], *, base: str = DEFAULT_BASE,
               want_graph: bool = False) -> Reasoned:
        flags = [exact_for(r) for r in records]
        exact = [r for r, ok in zip(records, flags) if ok]
        others = [r for r, ok in zip(records, flags) if not ok]
        firings, graph = run(exact, base=base, want_graph=want_graph)
        found: Findings = {}
        unassessed: Findings = {}
        for rec, fs in zip(exact, firings):
            by_code: dict[str, list] = {}
            una: dict[str, list] = {}
            for f in fs:
                (una if f.unassessed else by_code).setdefault(f.code, []).append(f)
            iri = patient_iri(rec.id, base)
            found[iri] = {code: _merged(tuple(group)) for code, group in by_code.items()}
            unassessed[iri] = {code: _merged(tuple(group)) for code, group in una.items()}
        if others:
            more, g2, una2 = OxigraphEngine().reason(others, base=base, want_graph=want_graph)
            found.update(more)
            unassessed.update(una2)
            graph += g2
        return Reasoned(found, graph, unassessed)

    def infer_graph(self, input_ntriples: str) -> str:
        records, base = records_from_ntriples(input_ntriples)
        return self.infer(records, base=base)
