"""The 28 claims of claims.tsv are individuals of the ontology, and each is encoded somewhere: the
report query queries/report/claims-traceability.rq lists, per claim, the axioms, entities and rules
that carry it."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
import rdflib

from b12kg import paths
from b12kg.kb.build import merged_graph
from b12kg.kb.qc import qc_graph

REPO = Path(__file__).resolve().parents[1]
CLAIMS_TSV = REPO / "vendor" / "shared" / "spec" / "claims.tsv"
B12 = rdflib.Namespace("https://w3id.org/b12kg/")
CLAIM = rdflib.Namespace("https://w3id.org/b12kg/claim/")
RO_POSITIVE = rdflib.URIRef("http://purl.obolibrary.org/obo/RO_0002304")
RO_NEGATIVE = rdflib.URIRef("http://purl.obolibrary.org/obo/RO_0002305")


def spec_claims() -> dict[str, str]:
    with CLAIMS_TSV.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return {row[0]: row[1] for row in rows[1:] if row}


SPEC = spec_claims()


@pytest.fixture(scope="module")
def trace() -> dict[str, list[dict]]:
    query = paths.query_path("report/claims-traceability.rq").read_text(encoding="utf-8")
    by_claim: dict[str, list[dict]] = defaultdict(list)
    for row in merged_graph().query(query):
        d = {k: (str(v) if v is not None else None) for k, v in row.asdict().items()}
        by_claim[d["id"]].append(d)
    for k in SPEC:
        by_claim.setdefault(k, [])
    return by_claim


def test_claims_table_has_28_claims() -> None:
    assert sorted(SPEC) == [f"C{i:02d}" for i in range(1, 29)]


@pytest.mark.parametrize("cid", sorted(SPEC))
def test_claim_individual_matches_the_table(cid: str) -> None:
    g = merged_graph()
    c = CLAIM[cid]
    assert (c, rdflib.RDF.type, B12.Claim) in g
    assert [str(x) for x in g.objects(c, B12.claimKind)] == [SPEC[cid]]
    assert [str(x) for x in g.objects(c, rdflib.RDFS.label)] == [cid]
    assert list(g.objects(c, B12.claimText)), f"{cid} has no b12:claimText"


@pytest.mark.parametrize("cid", sorted(SPEC))
def test_claim_is_encoded(trace: dict[str, list[dict]], cid: str) -> None:
    carriers = [r for r in trace[cid] if r["carrierKind"] is not None]
    assert carriers, f"{cid}: no axiom, entity or rule carries b12:claim {cid}"


@pytest.mark.parametrize("cid", sorted(c for c, kind in SPEC.items() if kind == "causal"))
def test_causal_claim_is_a_causal_assertion(trace: dict[str, list[dict]], cid: str) -> None:
    """A claim of kind 'causal' must be carried by at least one RO causal assertion."""
    causal = [r for r in trace[cid] if r["carrierKind"] == "axiom" and r["predicate"] in (str(RO_POSITIVE), str(RO_NEGATIVE))]
    assert causal, f"{cid} is causal but no obo:RO_0002304/RO_0002305 assertion carries it"


def test_traceability_query_sees_rules_when_given_them() -> None:
    """The same query, run on the ontology plus rules, reports rule carriers as 'rule'."""
    query = paths.query_path("report/claims-traceability.rq").read_text(encoding="utf-8")
    g = qc_graph()
    kinds = {str(r["carrierKind"]) for r in g.query(query) if r["carrierKind"] is not None}
    assert {"axiom", "entity"} <= kinds
    rules_with_claims = any((s, rdflib.RDF.type, B12.Rule) in g for s in g.subjects(B12.claim, None))
    assert ("rule" in kinds) == rules_with_claims
