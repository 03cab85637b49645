"""OWL 2 DL reasoning with HermiT (through owlready2): the merged ontology is consistent and has no
unsatisfiable class. Needs a Java runtime; the rest of the suite never does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import RDF

from b12kg.kb.build import merged_graph

pytestmark = [
    pytest.mark.java,
    pytest.mark.skipif(shutil.which("java") is None, reason="Java runtime not found: HermiT test skipped"),
]

B12 = rdflib.Namespace("https://w3id.org/b12kg/")


def _reason(graph: rdflib.Graph, tmp_path: Path):
    import owlready2

    path = tmp_path / "b12kg.nt"
    path.write_text(graph.serialize(format="nt"), encoding="utf-8")
    world = owlready2.World()
    onto = world.get_ontology(path.as_uri()).load()
    with onto:
        owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
    return world


def test_hermit_consistent_and_no_unsatisfiable_class(tmp_path: Path) -> None:
    world = _reason(merged_graph(), tmp_path)
    assert list(world.inconsistent_classes()) == []


def test_hermit_detects_a_contradiction(tmp_path: Path) -> None:
    """Negative control: cobalamin asserted to be a laboratory test contradicts the disjointness
    of nutrients and tests, and HermiT must say so."""
    import owlready2

    g = merged_graph()
    g.add((B12.Cobalamin, RDF.type, B12.LabTest))
    with pytest.raises(owlready2.OwlReadyInconsistentOntologyError):
        _reason(g, tmp_path)


def test_hermit_finds_an_unsatisfiable_class(tmp_path: Path) -> None:
    """Negative control: a class under two disjoint classes is unsatisfiable, and is reported."""
    g = merged_graph()
    probe = B12.QcProbeNutrientTest
    g.add((probe, RDF.type, rdflib.OWL.Class))
    g.add((probe, rdflib.RDFS.subClassOf, B12.Nutrient))
    g.add((probe, rdflib.RDFS.subClassOf, B12.LabTest))
    world = _reason(g, tmp_path)
    assert str(probe) in [c.iri for c in world.inconsistent_classes()]
