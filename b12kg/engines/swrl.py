"""The SWRL engine: the monotone rules (b12kg.swrl, derived from the SPARQL rule text) run by
Pellet through owlready2 0.49 (``sync_reasoner_pellet``; HermiT refuses SWRL built-ins, and the
Pellet of owlready2 0.50/0.51 fails on Java 17).

What it computes: the findings of the rules in the SWRL subset (``swrl_subset()``), at patient
level. SWRL cannot mint nodes, so "the patient has a finding X" is the patient's membership of a
generated class ``<https://w3id.org/b12kg/swrl/Has_X>``, and "finding rule R fired for the patient"
its membership of ``<https://w3id.org/b12kg/swrl/fired/R>``. ``inferred_ntriples`` turns these
back into triples in the IRIs the SPARQL rules mint: ``<p> b12:hasFinding <p/finding/X>``,
``<p/finding/X> a b12:X ; b12:about <p>``, and for each fired rule the part of its CONSTRUCT
template that depends on the patient alone (``prov:wasGeneratedBy <p/finding/X/by/R>``, the rule
application's ``b12:rule``, a ``b12:recommendsAction``). **Without provenance otherwise**: no
results, cut-offs or earlier findings used (SWRL does not say which bindings fired a rule), and no
derivation (populations, cut-offs met); an explanation built on this output names the finding
and its rule but not its evidence.

A finding code is *fully covered* when every rule producing it is in the subset
(``swrl_subset()[1]``): for these codes the result equals the SPARQL engines'. A code only partly
covered (VitaminB12Deficiency, RaisedMMA, InvestigateCauseOfIronDeficiency: a rule outside the
subset also produces it) is reported when one of its monotone rules fires, and the SPARQL engines
then report it too; it can be missing where they find it by another rule. Codes that only
closed-world rules produce are never reported.

How it runs: for each batch of patients a fresh ``owlready2.World()`` holds the rule-support part
of the ontology (``rules.rule_support_graph()``), declarations of the classes, properties and
individuals the SWRL rules name (types only: no domains, ranges, functional properties or class
axioms, so Pellet infers what the rules say and nothing the SPARQL engines would not), the
patients' triples a SWRL rule body can match (no rule reads the others), and the SWRL rules as RDF.
Pellet realizes it; the memberships of the generated classes are read back from the world.
Patients go in batches (``batch_size``) because Pellet's rule network keeps every partial match:
its memory grows by about 5 MB per patient of one run, its answers do not depend on the batch (no
rule reads two patients).

Decimals: owlready2's own parsers turn an xsd:decimal literal into a Python float. This engine does
not let them: it writes each literal into the quadstore with its lexical form and datatype as
given, so the file Pellet reads holds the exact decimals, and Pellet compares them exactly
(tested: 104.99999999999999999 g/L is below 105, which a double cannot tell; integer cut-offs
against decimal values by numeric promotion). The tests put values exactly at every cut-off
(105 g/L, 10.5 g/dL, 0.28 umol/L, 14.5 %, ages 0.5 ... 50, censored '<' and '>') through this
engine and the oxigraph engine. Beyond 18 fractional digits (which the loader accepts, e.g. ferritin
0.5000000000000000001 ug/L) oxigraph's xsd:decimal cannot hold a value and every comparison with it
fails, so there the two disagree and this engine is the exact one.

The body order of each SWRL rule is chosen per run (``_ordered_rules``): it never changes what a
rule derives, only how much Pellet stores. Pellet regroups the atoms itself (by shared variable,
from the first atom on), so what matters is the first atom: starting from the patients makes
Pellet pair every result with every cut-off before any filter (2.7 GB for 20 patients, measured),
starting from the most selective knowledge-base atom (a cut-off criterion, an age band, a
threshold role) does not (0.4 GB).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from typing import Iterable

import rdflib
from rdflib import Literal, URIRef
from rdflib.namespace import OWL, RDF, XSD

from ..errors import B12kgError
from ..rdf.terms import B12, B12NS
from ..rules import rule_support_graph
from ..rules.swrl import (SwrlRule, finding_suffixes, fired_class, has_class, join_order, property_kinds, subset,
                          swrl_graph)
from .base import Engine
from ..cache import once

_lock = threading.Lock()   # owlready2 keeps process-wide state (its Pellet settings, namespaces)

RUN_ONTOLOGY = B12NS + "swrl/run"
BATCH_SIZE = 250            # patients per Pellet run
JAVA_MB_BASE = 800          # the JVM heap for one run: base + per patient (Pellet's rule network keeps
JAVA_MB_PER_PATIENT = 8     # about 5 MB per patient; a tighter heap runs out or spends its time in GC)
# The parallel collector: same time as the default G1 on these runs, a third less resident memory
# (measured: 2.9 GB against 3.9 GB for 250 patients). Passed in JAVA_TOOL_OPTIONS, before any the
# user set (theirs win), because owlready2 builds the java command line itself.
JAVA_OPTIONS = "-XX:+UseParallelGC"


def java_available() -> bool:
    return shutil.which("java") is not None


def _check_java() -> None:
    if not java_available():
        raise B12kgError("the swrl engine needs a Java runtime (Pellet through owlready2): no 'java' on PATH; "
                         "install a Java 11+ runtime, or use the oxigraph or pyshacl engine")


def swrl_subset() -> tuple[set[str], set[str], dict[str, str]]:
    """(ids of the rules in the SWRL subset, finding codes fully covered, excluded rule id -> reason)."""
    s = subset()
    return set(s.rule_ids), set(s.covered_codes), dict(s.excluded)


# ---------------------------------------------------------------------------------------------
# What goes into the world
# ---------------------------------------------------------------------------------------------
@once
def _vocabulary() -> tuple[frozenset, frozenset, dict, frozenset]:
    """(predicates a SWRL body matches, classes a SWRL body matches, kind of every property the
    SWRL rules name, predicates and classes a SWRL head derives)."""
    preds: set = set()
    classes: set = set()
    derived: set = set()
    used: set = set()
    for r in subset().swrl_rules():
        for a in r.body:
            if a.kind == "class":
                classes.add(a.predicate)
            elif a.kind in ("object", "data"):
                preds.add(a.predicate)
                used.add(a.predicate)
        for a in r.head:
            derived.add(a.predicate)
            if a.kind in ("object", "data"):
                used.add(a.predicate)
    kinds = property_kinds()
    return frozenset(preds), frozenset(classes), {p: kinds[p] for p in used}, frozenset(derived)


@once
def _static_triples() -> tuple:
    """The knowledge-base triples a rule can match, with the declarations Pellet needs (the same
    for every run): every property and class the rules name, every knowledge-base individual."""
    _, _, kinds, _ = _vocabulary()
    g = rdflib.Graph()
    for t in rule_support_graph():
        g.add(t)
    for t in swrl_graph():
        if t[1] == RDF.type and t[2] in (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.NamedIndividual):
            g.add(t)
    for p, kind in kinds.items():
        g.add((p, RDF.type, OWL.ObjectProperty if kind == "object" else OWL.DatatypeProperty))
    for s, p, o in rule_support_graph():
        g.add((s, RDF.type, OWL.NamedIndividual))
        if p == RDF.type:
            g.add((o, RDF.type, OWL.Class))
        elif kinds.get(p) == "object":
            g.add((o, RDF.type, OWL.NamedIndividual))
    return tuple(g)


def _patient_triples(ntriples: str) -> tuple[list, list[URIRef]]:
    """The triples of the input a SWRL rule body can match (with individual declarations), and the
    patients (instances of the rules' target class) in it."""
    g = rdflib.Graph()
    g.parse(data=ntriples, format="nt")
    preds, classes, kinds, _ = _vocabulary()
    out = []
    for s, p, o in g:
        if p == RDF.type:
            if o in classes:
                out.append((s, p, o))
                out.append((s, RDF.type, OWL.NamedIndividual))
        elif p in preds:
            out.append((s, p, o))
            out.append((s, RDF.type, OWL.NamedIndividual))
            if kinds.get(p) == "object":
                out.append((o, RDF.type, OWL.NamedIndividual))
    patients = sorted(s for s in g.subjects(RDF.type, B12.Patient) if isinstance(s, URIRef))
    return out, patients


def _batches(triples: list, patients: list, size: int) -> list[tuple[list, list]]:
    """Split the input into batches of at most ``size`` patients, each with everything connected
    to them (what one patient's rules can reach); data tied to no patient goes to every batch."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    subjects = {s for s, _, _ in triples}
    for s, p, o in triples:
        find(s)
        if o in subjects and p != RDF.type:
            a, b = find(s), find(o)
            if a != b:
                parent[a] = b
    groups: dict = {}
    for t in triples:
        groups.setdefault(find(t[0]), []).append(t)
    by_root: dict = {}
    for p in patients:
        by_root.setdefault(find(p), []).append(p)
    shared = [t for root, ts in groups.items() if root not in by_root for t in ts]
    out: list[tuple[list, list]] = []
    cur_t: list = []
    cur_p: list = []
    for root in sorted(by_root, key=lambda r: str(by_root[r][0])):
        if cur_p and len(cur_p) + len(by_root[root]) > size:
            out.append((cur_t + shared, cur_p))
            cur_t, cur_p = [], []
        cur_t.extend(groups.get(root, ()))
        cur_p.extend(by_root[root])
    if cur_p or not out:
        out.append((cur_t + shared, cur_p))
    return out


def _ordered_rules(data: Iterable[tuple]) -> tuple[SwrlRule, ...]:
    """The SWRL rules, each body starting from the atom with a constant that matches the fewest
    triples of the data at hand (knowledge base and patients; atoms a rule derives are left out,
    their count is not known before the run), the rest joined through shared variables."""
    rules = subset().swrl_rules()
    derived = _vocabulary()[3]
    po: Counter = Counter()
    sp: Counter = Counter()
    for s_, p_, o_ in data:
        po[(p_, o_)] += 1
        sp[(s_, p_)] += 1

    def count(a) -> int | None:
        if a.kind == "builtin" or a.predicate in derived:
            return None
        if a.kind == "class":
            return po[(RDF.type, a.predicate)]
        s_, o_ = a.args
        if not isinstance(o_, rdflib.Variable):
            return po[(a.predicate, o_)]
        if not isinstance(s_, rdflib.Variable):
            return sp[(s_, a.predicate)]
        return None

    out = []
    for r in rules:
        scored = [(c, i, a) for i, a in enumerate(r.body) if (c := count(a)) is not None]
        first = min(scored, key=lambda x: (x[0], x[1]))[2] if scored else None
        out.append(SwrlRule(r.rule_id, r.branch, join_order(r.body, first), r.head))
    return tuple(out)


def _load(world, triples: Iterable[tuple]) -> None:
    """Write triples into the world's quadstore as they are: IRIs, blank nodes, and literals with
    their lexical form and datatype (owlready2's parsers would turn an xsd:decimal into a float)."""
    onto = world.get_ontology(RUN_ONTOLOGY)
    insert_objs, insert_datas, finish = onto.graph.import_triples_from_queue(None, delete_existing_triples=False)
    objs, datas = [], []
    bnodes: dict = {}

    def node(t) -> str:
        if isinstance(t, rdflib.BNode):
            return bnodes.setdefault(t, f"_{len(bnodes) + 1}")
        return str(t)

    for s, p, o in triples:
        if isinstance(o, Literal):
            d = "@" + o.language if o.language else str(o.datatype or XSD.string)
            datas.append((node(s), str(p), str(o), d))
        else:
            objs.append((node(s), str(p), node(o)))
    insert_objs(objs)
    insert_datas(datas)
    finish()


# ---------------------------------------------------------------------------------------------
# Running Pellet
# ---------------------------------------------------------------------------------------------
@once
def _read_back() -> dict[str, tuple[str, str]]:
    """Generated class IRI -> ("code", finding code) for each Has_X class, ("rule", rule id) for
    each fired_class of a finding rule in the subset."""
    out = {str(has_class(cls)): ("code", code) for code, (cls, _) in finding_suffixes().items()}
    s = subset()
    for t in s.translations:
        if t.rule_id in s.rule_ids and t.focus_template:
            out[str(fired_class(t.rule_id))] = ("rule", t.rule_id)
    return out


def _java_message(exc: Exception) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Picked up JAVA_TOOL_OPTIONS")
             and not ln.lstrip().startswith("at ")]
    return " ".join(lines)[:2000]


def _run(triples: list, patients: list, *, keep_file: bool,
         derived: set | None = None) -> dict[str, tuple[set[str], set[str]]]:
    import owlready2
    import owlready2.reasoning

    static = _static_triples()
    rules = _ordered_rules(static + tuple(triples))
    out: dict[str, tuple[set[str], set[str]]] = {str(p): (set(), set()) for p in patients}
    with _lock:
        world = owlready2.World()
        saved_memory = owlready2.reasoning.JAVA_MEMORY
        saved_options = os.environ.get("JAVA_TOOL_OPTIONS")
        owlready2.reasoning.JAVA_MEMORY = JAVA_MB_BASE + JAVA_MB_PER_PATIENT * len(patients)
        os.environ["JAVA_TOOL_OPTIONS"] = f"{JAVA_OPTIONS} {saved_options}" if saved_options else JAVA_OPTIONS
        try:
            _load(world, static)
            _load(world, triples)
            _load(world, tuple(swrl_graph(rules)))
            try:
                owlready2.sync_reasoner_pellet(world, infer_property_values=derived is not None,
                                               infer_data_property_values=False, debug=0, keep_tmp_file=keep_file)
            except owlready2.OwlReadyInconsistentOntologyError as exc:  # no rule here can cause one
                raise B12kgError(f"Pellet found the patient data inconsistent: {_java_message(exc)}") from None
            except owlready2.OwlReadyJavaError as exc:
                raise B12kgError(f"Pellet failed on {len(patients)} patients: {_java_message(exc)}") from None
            rdf_type = world._abbreviate(str(RDF.type))
            for iri, (kind, name) in _read_back().items():
                storid = world._abbreviate(iri, False)
                if storid is None:
                    continue
                for (s,) in world.graph.execute("SELECT DISTINCT s FROM objs WHERE p=? AND o=?", (rdf_type, storid)):
                    subj = world._unabbreviate(s)
                    if subj in out:
                        out[subj][0 if kind == "code" else 1].add(name)
            if derived is not None:
                kinds = _vocabulary()[2]
                for prop in _vocabulary()[3]:
                    storid = world._abbreviate(str(prop), False)
                    if storid is None or kinds.get(prop) != "object":
                        continue
                    for s_, o_ in world.graph.execute("SELECT DISTINCT s, o FROM objs WHERE p=?", (storid,)):
                        derived.add((world._unabbreviate(s_), str(prop), world._unabbreviate(o_)))
        finally:
            owlready2.reasoning.JAVA_MEMORY = saved_memory
            if saved_options is None:
                os.environ.pop("JAVA_TOOL_OPTIONS", None)
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = saved_options
            world.close()
    return out


def reason(ntriples: str, *, batch_size: int = BATCH_SIZE, keep_file: bool = False) -> dict[str, tuple[set[str], set[str]]]:
    """For every patient (b12:Patient) in the N-Triples of one or many patients: (the finding codes
    the SWRL rules derive, the ids of the finding rules that fired). One Pellet run per
    ``batch_size`` patients."""
    _check_java()
    if batch_size < 1:
        raise B12kgError(f"batch_size must be at least 1, not {batch_size}")
    triples, patients = _patient_triples(ntriples)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for ts, ps in _batches(triples, patients, batch_size):
        if ps:
            out.update(_run(ts, ps, keep_file=keep_file))
    return out


def derived_triples(ntriples: str, *, batch_size: int = BATCH_SIZE) -> set[tuple[str, str, str]]:
    """The object-property values the SWRL rules derive (b12:inPopulation, b12:satisfies,
    b12:doesNotSatisfy, b12:hasCauseCategory: the derivations, which findings do not all show),
    as (subject, predicate, object) IRIs; Pellet run with ``infer_property_values`` (slower)."""
    _check_java()
    triples, patients = _patient_triples(ntriples)
    out: set = set()
    for ts, ps in _batches(triples, patients, batch_size):
        if ps:
            _run(ts, ps, keep_file=False, derived=out)
    return out


def findings_batch(ntriples: str, *, batch_size: int = BATCH_SIZE) -> dict[str, set[str]]:
    """Patient IRI -> finding codes the SWRL rules derive, for every patient of the input."""
    return {p: codes for p, (codes, _) in reason(ntriples, batch_size=batch_size).items()}


def findings(patient_ntriples: str) -> dict[str, set[str]]:
    """Patient IRI -> finding codes, for the patient (or patients) of the input."""
    return findings_batch(patient_ntriples)


def _n3(t) -> str:
    return t.n3() if isinstance(t, (URIRef, Literal)) else f"<{t}>"


def findings_ntriples(found: dict[str, tuple[set[str], set[str]]]) -> str:
    """The findings as sorted N-Triples: for each finding rule that fired, its CONSTRUCT template
    triples that depend on nothing but the patient (the finding node in the SPARQL rules' IRI, its
    class, ``b12:about``, the rule application and its rule, a recommended action); and for each
    code, the finding node and its class."""
    s = subset()
    by_rule = {t.rule_id: t for t in s.translations}
    suffixes = finding_suffixes()
    lines: set[str] = set()
    for p, (codes, rules) in found.items():
        patient = URIRef(p)
        for code in codes:
            cls, suffix = suffixes[code]
            f = URIRef(p + suffix)
            lines.add(f"{_n3(patient)} {_n3(B12.hasFinding)} {_n3(f)} .")
            lines.add(f"{_n3(f)} {_n3(RDF.type)} {_n3(URIRef(cls))} .")
            lines.add(f"{_n3(f)} {_n3(B12.about)} {_n3(patient)} .")
        for rid in rules:
            t = by_rule[rid]
            values: dict = {}
            for var, base, suffix in t.minted:
                values[base] = patient
                values[var] = URIRef(p + suffix)
            for triple in t.focus_template:
                terms = [values.get(x, x) if isinstance(x, rdflib.Variable) else x for x in triple]
                if not any(isinstance(x, rdflib.Variable) for x in terms):
                    lines.add(" ".join(_n3(x) for x in terms) + " .")
    out = sorted(lines)
    return "\n".join(out) + ("\n" if out else "")


def inferred_ntriples(patient_ntriples: str) -> str:
    """The inferred triples, same contract as the other engines but findings only: for each patient
    and each finding code X the SWRL rules derive, ``<p> b12:hasFinding <p/finding/X>``,
    ``<p/finding/X> a b12:X`` and ``<p/finding/X> b12:about <p>``, and for each finding rule that
    fired, the rule application (``prov:wasGeneratedBy <p/finding/X/by/RULE>``, ``b12:rule``) and
    any recommended action it names. No evidence (results, cut-offs, findings used), no
    derivations (populations, cut-offs met), no finding outside the SWRL subset (see the module
    docstring)."""
    return findings_ntriples(reason(patient_ntriples))


class SwrlEngine(Engine):
    """The monotone rules translated to SWRL and run by Pellet (owlready2, Java): findings only."""

    name = "swrl"

    def infer_graph(self, input_ntriples: str) -> str:
        return inferred_ntriples(input_ntriples)
