"""Assembling an assessment: the findings of one patient read from the inferred graph with the
queries of ``queries/explain`` (the one place findings are built for the API and the CLI)."""

from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal
from typing import Mapping

import pyoxigraph as ox

from ..engines.oxigraph import Session, forced_codes, load_patients, new_store
from ..errors import B12kgError
from ..inputs.record import PatientRecord
from ..kb import finding_classes, limit_text, reading_notes, unassessed_notes
from ..rdf.store import load_ntriples, run_query
from ..rdf.terms import DEFAULT_BASE, INFERRED_GRAPH, UNASSESSED_MARK, last_segment, patient_iri
from ..units import format_decimal
from .model import Assessment, Evidence, Finding, RuleRef, Threshold
from .text import explanation, limit_outcome

_local = threading.local()


def explanation_store(input_ntriples: str, inferred_ntriples: str) -> ox.Store:
    """A store with the knowledge base, the patient and the inferred graph, for the queries."""
    store = new_store()
    load_patients(store, input_ntriples)
    if inferred_ntriples:
        load_ntriples(store, inferred_ntriples, INFERRED_GRAPH)
    return store


def graph_store(paths) -> ox.Store:
    """A store with the knowledge base and the N-Quads files of cohort runs (``assess-cohort
    --graph`` writes inferred.nq: the input and inferred graphs), for the shipped queries."""
    store = new_store()
    for p in paths:
        try:
            store.bulk_load(path=str(p), format=ox.RdfFormat.N_QUADS)
        except (SyntaxError, ValueError) as exc:
            raise B12kgError(f"{p}: not an N-Quads file b12kg can load: {exc}") from None
    return store


def _session() -> Session:
    """This thread's reusable explanation store (the whole knowledge base loaded once)."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = Session(full=True)
    return s


def assessment_of(rec: PatientRecord, input_nt: str, inferred_nt: str, *, engine: str,
                  base: str = DEFAULT_BASE) -> Assessment:
    """The assessment of one patient from its patient graph and the graph an engine inferred."""
    session = _session()
    session.load(input_nt, inferred_nt)
    return build_assessment(rec, input_nt, inferred_nt, engine=engine, base=base, store=session.store,
                            single_patient=True)


def build_assessment(rec: PatientRecord, input_nt: str, inferred_nt: str, *, engine: str,
                     base: str = DEFAULT_BASE, store: ox.Store | None = None,
                     single_patient: bool = False) -> Assessment:
    """Read the findings of one patient from a store with the queries of queries/explain.
    With ``single_patient`` (the store holds this patient only), each query runs once for all
    findings instead of once per finding."""
    piri = patient_iri(rec.id, base)
    if store is None:
        store = explanation_store(input_nt, inferred_nt)
        single_patient = True
    classes = finding_classes()
    items: dict[str, list] = {}
    chains: dict[str, list] = {}
    if single_patient:
        for it in run_query(store, "explain/explain-finding.rq"):
            items.setdefault(it["finding"], []).append(it)
        for c in run_query(store, "explain/causal-chain.rq"):
            chains.setdefault(c["finding"], []).append(c)
    rows = run_query(store, "explain/patient-findings.rq", patient=piri)
    for row in rows:
        f = row["finding"]
        if not single_patient:
            items[f] = run_query(store, "explain/explain-finding.rq", finding=f)
            chains[f] = run_query(store, "explain/causal-chain.rq", finding=f)
    # unassessed findings first: a derived finding's explanation may name one (unassessed_notes)
    unassessed = [_build_finding(row, items.get(row["finding"], []), chains.get(row["finding"], []), rec, classes)
                  for row in rows if row["status"] == "unassessed"]
    decides = recommendations_decided_by(input_nt, piri, [u.code for u in unassessed], classes)
    unassessed = [dataclasses.replace(u, changes_recommendations=decides[u.code]) for u in unassessed]
    by_code = {u.code: u for u in unassessed}
    findings = [_build_finding(row, items.get(row["finding"], []), chains.get(row["finding"], []), rec, classes,
                               extra_notes=_context_notes(row["code"], items.get(row["finding"], []), rec, by_code))
                for row in rows if row["status"] != "unassessed"]
    findings.sort(key=output_order)
    unassessed.sort(key=output_order)
    return Assessment(patient_id=rec.id, profile=rec.profile, engine=engine, findings=tuple(findings),
                      notes=tuple(rec.notes), patient_iri=piri, input_ntriples=input_nt,
                      inferred_ntriples=inferred_nt, record_summary=record_summary(rec),
                      unassessed=tuple(unassessed))


def recommendations_decided_by(input_nt: str, patient: str, codes: list[str],
                               classes: Mapping[str, dict]) -> dict[str, tuple[str, ...]]:
    """Per unassessed finding of ``codes``: the recommendation codes (findings with a priority)
    that differ between the patient's assessment with it forced true and with it forced false."""
    if not codes:
        return {}
    forced = forced_codes(input_nt, patient, codes)

    def recommendations(c):
        return {x for x in c if classes.get(x, {}).get("priority")}
    return {code: tuple(sorted(recommendations(forced[code, True]) ^ recommendations(forced[code, False])))
            for code in codes}


FIRST = "UrgentClinicalAssessment"       # findings.md v2: before everything, in every output
_SECTION_ORDER = {"diagnosis": 0, "caution": 1, "next-step": 2, "result": 3}


def output_order(f: Finding) -> tuple:
    """The order of findings in every output (findings.md v2): UrgentClinicalAssessment first, then
    the other urgent alerts, the diagnoses, then recommendations and alerts by priority (caution,
    treat, test, investigate), then the interpretations of single results."""
    if f.code == FIRST:
        return (0, 0, 0, f.code)
    if f.priority_rank == 1:
        return (1, 0, 0, f.code)
    if f.kind == "diagnosis":
        return (2, 0, 0, f.code)
    if f.priority_rank is not None:
        return (3, f.priority_rank, 0, f.code)
    return (4, _SECTION_ORDER.get(f.section, 9), 0, f.code)


def record_summary(rec: PatientRecord) -> dict:
    return {
        "id": rec.id,
        "sex": rec.sex,
        "age_years": format_decimal(rec.age_years),
        "pregnant": rec.pregnant,
        "trimester": rec.trimester,
        "symptoms": rec.symptoms,
        "context": rec.contexts,
        "results": {k: {"value_as_given": r.value_as_given, "unit_as_given": r.unit_as_given,
                        "value_compared": format_decimal(r.compared_value), "unit_compared": r.compared_unit,
                        "comparator": r.comparator if not r.qualitative else None,
                        "source": r.source} for k, r in sorted(rec.results.items())},
    }


def _context_notes(code: str, items: list, rec: PatientRecord, unassessed: Mapping[str, Finding]) -> list[str]:
    """Notes the ontology puts on a finding: a context's reading note when the finding was read from
    a result it concerns (recent transfusion, iron treatment), and the note of an unassessed finding
    it depends on, with the comparison that decided nothing (IndeterminateB12: possibly deficient)."""
    notes = []
    analytes = {it["testKey"] for it in items if it["item_kind"] == "result"}
    for kw in rec.contexts:
        note, keys = reading_notes().get(kw, (None, frozenset()))
        if note and analytes & keys:
            notes.append(note)
    for other, note in unassessed_notes().get(code, ()):
        u = unassessed.get(other)
        if u is not None:
            undecided = [t for t in u.thresholds if t.outcome == "undecided"]
            why = "; ".join(f"{e.text()} {limit_outcome(t)}" for e in u.evidence for t in undecided
                            if t.analyte == e.analyte) or "; ".join(e.text() for e in u.evidence)
            notes.append(f"{note}{': ' + why if why else ''}")
    return notes


def _build_finding(row: Mapping, items: list, chain_rows: list, rec: PatientRecord, classes: Mapping,
                   extra_notes: list[str] = ()) -> Finding:
    firi = row["finding"]
    rules: dict[str, RuleRef] = {}
    evidence: dict[str, Evidence] = {}
    thresholds: dict[str, dict] = {}
    based_on: set[str] = set()
    context: set[str] = set()
    actions: set[str] = set()
    compared_units: dict[str, str] = {}
    for it in items:
        rules.setdefault(it["ruleId"], RuleRef(it["ruleId"], it["ruleLabel"], it["ruleDefinition"], it["ruleSource"]))
        kind = it["item_kind"]
        if kind == "result":
            evidence.setdefault(it["item"], Evidence(
                analyte=it["testKey"], label=it["itemLabel"], value_as_given=it["valueAsGiven"] or "",
                unit_as_given=it["unitAsGiven"], comparator=it["comparator"], value_compared=format_decimal(it["comparedValue"]),
                unit_compared=it["comparedUnit"], derivation=it["derivation"], reference_high=it["refHighAsGiven"],
                reference_low=it["refLowAsGiven"],
                iri=it["item"], unusable=it["unusableReason"]))
            if it["comparedUnit"]:
                compared_units[it["testKey"]] = it["comparedUnit"]
        elif kind == "threshold":
            t = thresholds.setdefault(it["item"], {"row": it, "limits": {}})
            t["limits"][it["limitUnit"]] = limit_text(it["criterion"], it["limitUnit"], it["limitValue"],
                                                      it["limitLower"], it["limitUpper"])
        elif kind == "finding":
            based_on.add(it["code"] + (UNASSESSED_MARK if it["itemStatus"] == "unassessed" else ""))
        elif kind == "context":
            context.add(it["itemLabel"])
        elif kind == "action":
            actions.add(it["itemLabel"])
    ths = []
    notes = []
    for iri, t in sorted(thresholds.items()):
        r = t["row"]
        cu = next((u for u in t["limits"] if u in compared_units.values()), None)
        ths.append(Threshold(
            id=last_segment(iri), iri=iri, label=r["itemLabel"], analyte=r["thresholdAnalyte"], role=r["role"], criterion=r["criterion"],
            limits=tuple(t["limits"][u] for u in sorted(t["limits"])), compared_limit=t["limits"].get(cu) if cu else None,
            population=r["populationLabel"], source=r["sourceShort"], source_title=r["sourceTitle"],
            source_year=r["sourceYear"], source_link=r["sourceLink"], verification=r["verification"], note=r["scopeNote"],
            outcome=r["outcome"]))
        if r["scopeNote"]:
            notes.append(r["scopeNote"])
        adults = r["sourceAdultsFrom"]
        if adults is not None and (rec.age_years is None or rec.age_years < Decimal(adults)):
            who = "of unknown age" if rec.age_years is None else f"aged {format_decimal(rec.age_years)} years"
            notes.append(f"{r['sourceShort']} is written for people over {adults}; no paediatric cut-off is verified, "
                         f"so the adult cut-off is applied to this patient {who}.")
    notes.extend(extra_notes)
    chain = tuple(c["stateLabel"] for c in sorted(chain_rows, key=lambda c: c["position"]))
    code = row["code"]
    cls = classes.get(code, {})
    f_rules = tuple(rules[k] for k in sorted(rules))
    ev = tuple(evidence[k] for k in sorted(evidence))
    text = explanation(row["label"], f_rules, ev, tuple(ths), sorted(based_on), sorted(context), sorted(actions), chain, notes)
    return Finding(code=code, label=row["label"], kind=row["kind"], section=row["group"], definition=row["definition"],
                   iri=firi, rules=f_rules, evidence=ev, thresholds=tuple(ths), based_on=tuple(sorted(based_on)),
                   context=tuple(sorted(context)), actions=tuple(sorted(actions)), causal_chain=chain,
                   claims=tuple(cls.get("claims", ())), explanation=text, status=row["status"] or "derived",
                   priority=row["priority"], priority_rank=None if row["priorityRank"] is None else int(row["priorityRank"]))


