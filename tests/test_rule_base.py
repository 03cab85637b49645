"""The rule base as a whole: stable ids, stratification (a rule reads only what lower strata
write, so one pass in sh:order is the fixpoint for every engine), every finding code derived by
some rule, and the mechanical forms each engine runs."""

from __future__ import annotations

import re

import pytest
import rdflib
from rdflib.namespace import RDF
from rdflib.plugins.sparql import prepareQuery

from b12kg import kb
from b12kg.rules import load_rules, rule_support_graph, split_construct
from b12kg.rules.base import _walk

B12 = "https://w3id.org/b12kg/"
RULES = load_rules()
# Structural links every finding rule writes; which finding they belong to is told by its class.
STRUCTURAL = {B12 + p for p in ("hasFinding", "about", "rule", "usedResult", "usedThreshold", "usedFinding",
                                "usedContext", "unassessed", "undecidedCriterion")} | {
    "http://www.w3.org/ns/prov#wasGeneratedBy", "http://www.w3.org/ns/prov#wasDerivedFrom"}
UNASSESSED = B12 + "unassessedFinding"       # "X unassessed" is an item of its own, per finding class X


def _parts(rule):
    q = prepareQuery(rule.prefix_block() + rule.construct)
    body: list = []
    _walk(q.algebra.get("p"), body, [])
    head = list(q.algebra["template"])
    return head, body


def _produced(rule) -> set[str]:
    head, _ = _parts(rule)
    out = set()
    for s, p, o in head:
        if p == RDF.type and isinstance(o, rdflib.URIRef) and str(o) not in (B12 + "RuleApplication", B12 + "Unassessed"):
            out.add(str(o))
        elif str(p) == UNASSESSED:
            out.add("unassessed:" + str(o))
        elif isinstance(p, rdflib.URIRef) and p != RDF.type and str(p) not in STRUCTURAL:
            out.add(str(p))
    return out


def _read(rule) -> set[str]:
    _, body = _parts(rule)
    q = prepareQuery(rule.prefix_block() + rule.construct)
    values: list = []
    _walk(q.algebra, [], values)
    out = set()
    for s, p, o in body:
        if p == RDF.type or str(p) == UNASSESSED:
            pre = "" if p == RDF.type else "unassessed:"
            if isinstance(o, rdflib.URIRef):
                out.add(pre + str(o))
            else:
                out.update(pre + str(t) for row in values for v, t in row.items() if v == o)
        elif str(p) not in STRUCTURAL:
            out.add(str(p))
    return out


def test_rule_ids_are_unique_and_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        # una-/und-: the generated three-valued companions (rules/unassessed.ttl) of the rule they name
        assert re.fullmatch(r"((una|und)-)?(drv|cls|dx|rec)-[a-z0-9]+(-[a-z0-9]+)*", r.id), r.id
        assert r.iri.endswith("/rule/" + r.id)
        assert r.label and re.match(r"(\([a-z]\) )?If ", r.definition), r.id     # "(a) If ...": a lettered clause


def test_every_rule_reads_only_what_lower_strata_write():
    producers: dict[str, list] = {}
    for r in RULES:
        for item in _produced(r):
            producers.setdefault(item, []).append(r)
    problems = []
    for r in RULES:
        for item in _read(r):
            for p in producers.get(item, []):
                if (r.id.startswith("und-") and p.id.startswith("und-") and p.finding == r.finding
                        and item.endswith("/" + str(r.finding))):
                    # the companions that fire a finding (S1) each fire it only when it was not derived
                    # yet; they run one after the other (sh:order + 0.01 each), so the finding's set is
                    # the same in any order and every engine records the same rule application
                    continue
                if p.order >= r.order:
                    problems.append(f"{r.id} (order {r.order}) reads {item} written by {p.id} (order {p.order})")
    assert not problems, "\n".join(problems)


def test_every_finding_code_is_derived_by_a_rule_and_every_rule_targets_a_code():
    codes = set(kb.finding_classes())
    derived = {r.finding for r in RULES if r.finding}
    assert codes == derived
    for r in RULES:
        if r.finding:
            assert B12 + r.finding in _produced(r), f"{r.id} does not write its own finding class"


def test_rules_contain_no_threshold_numbers():
    """Cut-offs are data: a rule text holds no numeric literal (sh:order aside)."""
    for r in RULES:
        _, body = split_construct(r.construct)
        text = re.sub(r'"[^"]*"', '""', body)           # string literals (IRIs built by CONCAT)
        text = re.sub(r"<[^>]*>", "<>", text)
        assert not re.search(r"(?<![\w:/-])\d+(\.\d+)?(?![\w-])", text), f"{r.id} has a number in its text"


def test_update_form_is_the_construct_with_the_focus_type_added():
    from rdflib.plugins.sparql.parser import parseUpdate

    from b12kg.rules import set_at_a_time_updates

    for r in RULES:
        template, _ = split_construct(r.construct)
        updates = set_at_a_time_updates(r, graphs=True)
        assert updates, r.id
        for u in updates:
            assert template in u and "$this a b12:Patient ." in u, r.id
            parseUpdate(u)                 # valid SPARQL 1.1 Update text


def test_closed_world_rules_are_exactly_those_with_negation():
    for r in RULES:
        assert r.closed_world == bool(re.search(r"NOT EXISTS", r.construct)), r.id
    # the monotone part is not empty: SWRL has something to run
    assert sum(not r.closed_world for r in RULES) >= 30


def test_rule_support_graph_holds_what_the_rules_match_and_nothing_else():
    g = rule_support_graph()
    preds = {str(p) for p in g.predicates()}
    assert B12 + "limit" in preds and B12 + "admitsSex" in preds and B12 + "causeCategory" in preds
    assert "http://www.w3.org/2000/01/rdf-schema#label" not in preds
    assert len(g) < len(kb.ontology_graph()) / 2
