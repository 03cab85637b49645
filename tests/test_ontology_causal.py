"""Causal chains as SPARQL property paths over obo:RO_0002304 (queries/report/causal-path.rq and
causal-chains.rq): B12 deficiency reaches raised ferritin through ineffective erythropoiesis,
inflammation reaches raised ferritin, and the masking chain holds the steps findings.md names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rdflib

from b12kg import paths
from b12kg.kb.build import merged_graph

REPO = Path(__file__).resolve().parents[1]
FINDINGS_MD = REPO / "vendor" / "shared" / "spec" / "findings.md"
B12 = "https://w3id.org/b12kg/"


@pytest.fixture(scope="module")
def graph() -> rdflib.Graph:
    return merged_graph()


def _causal_path(values_rows: str | None = None) -> str:
    query = paths.query_path("report/causal-path.rq").read_text(encoding="utf-8")
    if values_rows is None:
        return query
    new, n = re.subn(r"(VALUES \(\?start \?via \?end\) \{)(.*?)(\n  \})", lambda m: m[1] + values_rows + m[3], query, flags=re.S)
    assert n == 1, "causal-path.rq no longer has the documented VALUES block"
    return new


def _rows(graph: rdflib.Graph, query: str) -> set[tuple]:
    return {tuple(str(v) if v is not None else None for v in row) for row in graph.query(query)}


def test_b12_deficiency_reaches_raised_ferritin_through_ineffective_erythropoiesis_and_inflammation_too(graph) -> None:
    rows = _rows(graph, _causal_path())
    assert rows == {
        (B12 + "CobalaminDeficiencyState", B12 + "IneffectiveErythropoiesis", B12 + "RaisedSerumFerritin"),
        (B12 + "InflammatoryState", None, B12 + "RaisedSerumFerritin"),
    }


def test_causal_path_query_answers_no_for_chains_that_do_not_hold(graph) -> None:
    """Negative control: the reverse chains, and a detour through a node that is not on the chain."""
    rows = _rows(graph, _causal_path("""
    (b12:RaisedSerumFerritin UNDEF b12:CobalaminDeficiencyState)
    (b12:InflammatoryState b12:IneffectiveErythropoiesis b12:RaisedSerumFerritin)
    (b12:CobalaminDeficiencyState b12:AcutePhaseResponse b12:RaisedSerumFerritin)"""))
    assert rows == set()


def test_ineffective_erythropoiesis_label(graph) -> None:
    labels = list(graph.objects(rdflib.URIRef(B12 + "IneffectiveErythropoiesis"), rdflib.RDFS.label))
    assert labels == [rdflib.Literal("ineffective erythropoiesis", lang="en")]


# findings.md version 1 stated the chain ("for IronDeficiencyMaskingRisk: B12 deficiency, impaired
# DNA synthesis, ..."); version 2 asks for "the causal chain from the ontology" without listing it
# again, so the steps are kept here as version 1 wrote them (the mechanism did not change).
_MASKING_CHAIN_V1 = ("B12 deficiency, impaired DNA synthesis, megaloblastic erythropoiesis, ineffective erythropoiesis, "
                     "iron release, raised ferritin")


def _spec_masking_chain() -> list[str]:
    text = FINDINGS_MD.read_text(encoding="utf-8")
    m = re.search(r"for IronDeficiencyMaskingRisk:\s*(.*?)\)", text, flags=re.S)
    chain = m[1] if m else _MASKING_CHAIN_V1
    return [part.strip() for part in " ".join(chain.split()).split(",")]


def _chains(graph) -> dict[str, list[tuple[int, str]]]:
    query = paths.query_path("report/causal-chains.rq").read_text(encoding="utf-8")
    chains: dict[str, list[tuple[int, str]]] = {}
    for row in graph.query(query):
        chains.setdefault(str(row["finding"]), []).append((int(row["position"]), str(row["label"])))
    return {k: sorted(v) for k, v in chains.items()}


def test_every_declared_chain_is_a_single_ordered_path(graph) -> None:
    chains = _chains(graph)
    declared = set(map(str, graph.subjects(rdflib.URIRef(B12 + "causalChainStart"), None)))
    assert set(chains) == declared
    for finding, nodes in chains.items():
        positions = [p for p, _ in nodes]
        assert positions == list(range(len(nodes))), f"{finding}: positions {positions} are not 0..n-1"
        assert len(nodes) >= 2


def test_masking_chain_holds_the_steps_of_findings_md_in_order(graph) -> None:
    """Each step findings.md names matches, in order, a node whose label contains all its words."""
    labels = [label for _, label in _chains(graph)[B12 + "IronDeficiencyMaskingRisk"]]
    i = 0
    for step in _spec_masking_chain():
        words = set(step.lower().split())
        while i < len(labels) and not words <= set(labels[i].lower().replace(",", " ").split()):
            i += 1
        assert i < len(labels), f"step {step!r} not found in order in {labels}"
        i += 1
