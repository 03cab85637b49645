"""The build (python -m b12kg.build DIR) writes the merged ontology as Turtle and JSON-LD (with an
inline context), deterministically; the Turtle loads in both pyoxigraph and rdflib and the same
SPARQL queries give the same answers on both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from rdflib.compare import isomorphic
from rdflib.namespace import OWL, RDF

import b12kg
from b12kg import paths
from b12kg.kb import build

REPO = Path(__file__).resolve().parents[1]
ONTOLOGY = rdflib.URIRef("https://w3id.org/b12kg/ontology")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "b12kg.build", str(out)], cwd=REPO, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def dist_graph(dist: Path) -> rdflib.Graph:
    return rdflib.Graph().parse(dist / "b12kg.ttl", format="turtle")


def test_build_writes_both_files(dist: Path) -> None:
    assert (dist / "b12kg.ttl").stat().st_size > 0
    assert (dist / "b12kg.jsonld").stat().st_size > 0


def test_one_ontology_with_version_from_the_package(dist_graph: rdflib.Graph) -> None:
    assert set(dist_graph.subjects(RDF.type, OWL.Ontology)) == {ONTOLOGY}
    assert not list(dist_graph.triples((None, OWL.imports, None)))
    assert list(dist_graph.objects(ONTOLOGY, OWL.versionIRI)) == [rdflib.URIRef(f"{ONTOLOGY}/{b12kg.__version__}")]
    assert [str(v) for v in dist_graph.objects(ONTOLOGY, OWL.versionInfo)] == [b12kg.__version__]


def test_dist_holds_every_module_triple(dist_graph: rdflib.Graph) -> None:
    """Every triple of every module (except module headers and imports) is in the build; blank-node
    structures are compared by isomorphism."""
    expected = rdflib.Graph()
    for f in paths.module_files():
        g = rdflib.Graph().parse(f, format="turtle")
        headers = set(g.subjects(RDF.type, OWL.Ontology))
        for t in g:
            if t[0] not in headers and t[1] != OWL.imports:
                expected.add(t)
    header_part = rdflib.Graph()
    for t in dist_graph.triples((ONTOLOGY, None, None)):
        header_part.add(t)
    without_header = dist_graph - header_part
    assert isomorphic(expected, without_header)


def test_jsonld_has_an_inline_context_and_the_same_triples(dist: Path, dist_graph: rdflib.Graph) -> None:
    doc = json.loads((dist / "b12kg.jsonld").read_text(encoding="utf-8"))
    assert isinstance(doc["@context"], dict), "the @context must be inline, never a remote reference"

    def contexts(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "@context":
                    yield v
                yield from contexts(v)
        elif isinstance(node, list):
            for v in node:
                yield from contexts(v)

    assert all(isinstance(c, dict) for c in contexts(doc))
    jsonld = rdflib.Graph().parse(dist / "b12kg.jsonld", format="json-ld")
    assert isomorphic(jsonld, dist_graph)


def test_build_is_deterministic(dist: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "b12kg.build", str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    for name in ("b12kg.ttl", "b12kg.jsonld"):
        assert (tmp_path / name).read_bytes() == (dist / name).read_bytes(), f"{name} differs between two builds"


def test_merged_graph_returns_independent_copies() -> None:
    g = build.merged_graph()
    n = len(g)
    g.add((ONTOLOGY, rdflib.RDFS.comment, rdflib.Literal("probe")))
    assert len(build.merged_graph()) == n


def _normalise(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (ox.NamedNode, ox.Literal)):
        return value.value
    return str(value)


@pytest.mark.parametrize("query_name", ["report/claims-traceability.rq", "report/causal-chains.rq", "report/causal-path.rq"])
def test_pyoxigraph_and_rdflib_agree_on_dist(dist: Path, dist_graph: rdflib.Graph, query_name: str) -> None:
    query = paths.query_path(query_name).read_text(encoding="utf-8")
    store = ox.Store()
    store.load(path=str(dist / "b12kg.ttl"), format=ox.RdfFormat.TURTLE)
    ox_result = store.query(query)
    names = [v.value for v in ox_result.variables]
    ox_rows = sorted(tuple(_normalise(sol[n]) for n in names) for sol in ox_result)
    rdf_rows = sorted(tuple(_normalise(row[n]) for n in names) for row in dist_graph.query(query))
    assert ox_rows, f"{query_name} returned nothing"
    assert ox_rows == rdf_rows
