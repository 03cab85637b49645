"""The QC checks of queries/qc: each one passes on the knowledge graph, and each one can fail (a
deliberately broken copy of the graph makes it report a row), so that no check passes vacuously."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import rdflib
from rdflib import Literal, URIRef
from rdflib.namespace import DCTERMS, OWL, RDF, SKOS

from b12kg.kb.build import merged_graph
from b12kg import paths
from b12kg.kb.qc import COLUMNS, qc_files, run_qc

B12 = rdflib.Namespace("https://w3id.org/b12kg/")
OBO = rdflib.Namespace("http://purl.obolibrary.org/obo/")
CLAIM = rdflib.Namespace("https://w3id.org/b12kg/claim/")
THRESHOLD = rdflib.Namespace("https://w3id.org/b12kg/threshold/")
QC = {p.stem: p for p in qc_files()}
NEEDS_RULES = {"qc-finding-without-rule"}


@pytest.fixture(scope="module")
def ontology() -> rdflib.Graph:
    return merged_graph()


@pytest.fixture(scope="module")
def ontology_and_rules() -> rdflib.Graph:
    files = paths.rule_files(recursive=True)
    assert files, "no rule files under rules/: every finding code still lacks a rule"
    g = merged_graph()
    for f in files:
        g.parse(f, format="turtle")
    return g


def _run(graph: rdflib.Graph, name: str) -> list[tuple]:
    return run_qc(graph, [QC[name]])[name]


@pytest.mark.parametrize("name", sorted(QC))
def test_qc_file_is_well_formed(name: str) -> None:
    text = QC[name].read_text(encoding="utf-8")
    assert text.startswith("# "), f"{name}: the first line must be a '#' comment saying what the check guards"
    assert "SELECT" in text.upper()


@pytest.mark.parametrize("name", sorted(QC))
def test_qc_check_passes(request: pytest.FixtureRequest, name: str) -> None:
    graph = request.getfixturevalue("ontology_and_rules" if name in NEEDS_RULES else "ontology")
    rows = _run(graph, name)
    assert rows == [], f"{name}: {len(rows)} failure(s) ({', '.join(COLUMNS)}):\n" + "\n".join(map(str, rows[:20]))


# ---------------------------------------------------------------------------------------------
# Each check must be able to fail: a mutation that breaks exactly what the check guards.
# ---------------------------------------------------------------------------------------------
def _add_bare_class(g: rdflib.Graph) -> None:
    g.add((B12.QcProbeClass, RDF.type, OWL.Class))


def _second_path_iron_to_anaemia(g: rdflib.Graph) -> None:
    g.add((B12.IronDeficiencyState, OBO.RO_0002304, B12.AnaemicState))


def _break_threshold(g: rdflib.Graph) -> None:
    t = THRESHOLD["ferritin-id-adults-bsg2021"]
    assert (t, RDF.type, B12.Threshold) in g
    g.remove((t, B12.population, None))


MUTATIONS: dict[str, tuple[Callable[[rdflib.Graph], None], URIRef]] = {
    "qc-missing-label": (_add_bare_class, B12.QcProbeClass),
    "qc-missing-definition": (_add_bare_class, B12.QcProbeClass),
    "qc-missing-source": (lambda g: g.remove((B12.Cobalamin, DCTERMS.source, None)), B12.Cobalamin),
    "qc-threshold-incomplete": (_break_threshold, THRESHOLD["ferritin-id-adults-bsg2021"]),
    "qc-finding-without-claim": (lambda g: g.remove((B12.Macrocytosis, B12.claim, None)), B12.Macrocytosis),
    "qc-finding-without-rule": (lambda g: None, B12.Anemia),  # the ontology alone has no rules
    "qc-unverified-code-used": (lambda g: g.add((B12.Iron, SKOS.closeMatch, OBO.CHEBI_18248)), B12.Iron),
    "qc-claim-not-encoded": (lambda g: g.remove((None, B12.claim, CLAIM.C05)), CLAIM.C05),
    "qc-causal-assertion-without-claim": (_second_path_iron_to_anaemia, B12.IronDeficiencyState),
    "qc-causal-chain-not-unique": (_second_path_iron_to_anaemia, B12.IronDeficiencyAnemia),
    "qc-causal-cycle": (lambda g: g.add((B12.RaisedSerumFerritin, OBO.RO_0002304, B12.CobalaminDeficiencyState)),
                        B12.CobalaminDeficiencyState),
    "qc-mapping-without-provenance": (lambda g: g.add((B12.Liver, SKOS.exactMatch, OBO.UBERON_0002107)), B12.Liver),
    "qc-undeclared-entity": (lambda g: g.add((B12.Liver, B12.occursIn, B12.Livr)), B12.Livr),
}


def test_every_check_has_a_mutation() -> None:
    assert set(MUTATIONS) == set(QC)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_qc_check_can_fail(name: str) -> None:
    mutate, culprit = MUTATIONS[name]
    g = merged_graph()
    mutate(g)
    rows = _run(g, name)
    assert any(row[0] == str(culprit) for row in rows), f"{name} did not report {culprit}: {rows[:5]}"


def test_unverified_level_is_caught_on_axioms_too() -> None:
    g = merged_graph()
    axiom = rdflib.BNode()
    g.add((axiom, RDF.type, OWL.Axiom))
    g.add((axiom, OWL.annotatedSource, B12.Ferritin))
    g.add((axiom, B12.verification, Literal("UNVERIFIED (from memory)")))
    assert any(row[0] == str(B12.Ferritin) for row in _run(g, "qc-unverified-code-used"))
