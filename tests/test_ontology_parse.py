"""Every Turtle file of the ontology and of the rules parses, and the ontology header, its imports,
the Protégé catalog and the module files agree with one another."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import OWL, RDF

from b12kg import paths

REPO = Path(__file__).resolve().parents[1]
TTL_FILES = sorted((REPO / "ontology").glob("**/*.ttl")) + sorted((REPO / "rules").glob("**/*.ttl"))
HEADER_IRI = rdflib.URIRef("https://w3id.org/b12kg/ontology")
CATALOG_NS = {"c": "urn:oasis:names:tc:entity:xmlns:xml:catalog"}


@pytest.mark.parametrize("path", TTL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_turtle_file_parses(path: Path) -> None:
    g = rdflib.Graph()
    g.parse(path, format="turtle")
    assert len(g) > 0, f"{path} parsed to an empty graph"


def _module_iri(path: Path) -> rdflib.URIRef:
    g = rdflib.Graph().parse(path, format="turtle")
    headers = list(g.subjects(RDF.type, OWL.Ontology))
    assert len(headers) == 1, f"{path.name}: expected one owl:Ontology header, found {headers}"
    return headers[0]


def test_header_imports_every_module_and_nothing_else() -> None:
    header = rdflib.Graph().parse(paths.ONTOLOGY_DIR / "b12kg.ttl", format="turtle")
    assert set(header.subjects(RDF.type, OWL.Ontology)) == {HEADER_IRI}
    imported = set(header.objects(HEADER_IRI, OWL.imports))
    modules = {_module_iri(f) for f in paths.module_files()}
    assert imported == modules


def test_catalog_maps_each_module_iri_to_its_file() -> None:
    root = ET.parse(paths.ONTOLOGY_DIR / "catalog-v001.xml").getroot()
    entries = {e.get("name"): e.get("uri") for e in root.findall("c:uri", CATALOG_NS)}
    expected = {str(_module_iri(f)): f"modules/{f.name}" for f in paths.module_files()}
    assert entries == expected
    for uri in entries.values():
        assert (paths.ONTOLOGY_DIR / uri).is_file()
