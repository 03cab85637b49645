"""The release stands alone (issue 13, item 1): dist/ holds the ontology (Turtle, JSON-LD, RDF/XML)
and the rule descriptions (Turtle, JSON-LD); loading dist/b12kg.ttl and dist/b12kg-rules.ttl beside
a cohort's inferred.nq into an empty store answers every query of queries/explain and
queries/report exactly as b12kg's own knowledge-base store does (before, explain-finding and
patient-findings gave 0 rows: the rule descriptions were only in rules/*.ttl)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from rdflib.compare import isomorphic

from b12kg.cohort import assess_cohort
from b12kg.engines.oxigraph import new_store
from b12kg.kb import build
from b12kg.paths import QUERIES_DIR

REPO = Path(__file__).resolve().parents[1]
QUERIES = sorted(p.relative_to(QUERIES_DIR).as_posix() for p in (QUERIES_DIR / "explain").glob("*.rq")) + \
    sorted(p.relative_to(QUERIES_DIR).as_posix() for p in (QUERIES_DIR / "report").glob("*.rq"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    dist = out / "dist"
    subprocess.run([sys.executable, "-m", "b12kg.build", str(dist)], cwd=REPO, check=True, capture_output=True)
    assess_cohort(REPO / "vendor" / "shared" / "cases" / "valid", out / "cohort", workers=1, progress=False,
                  write_graph=True, engine="oxigraph")
    return dist, (out / "cohort" / "inferred.nq").read_bytes()


@pytest.mark.slow
def test_the_release_has_every_file_in_every_format(release):
    dist, _ = release
    assert sorted(p.name for p in dist.iterdir()) == sorted(build.RELEASE_FILES)
    ttl = rdflib.Graph().parse(dist / "b12kg.ttl", format="turtle")
    assert isomorphic(ttl, rdflib.Graph().parse(dist / "b12kg.owl", format="xml"))
    assert isomorphic(ttl, rdflib.Graph().parse(dist / "b12kg.jsonld", format="json-ld"))
    rules = rdflib.Graph().parse(dist / "b12kg-rules.ttl", format="turtle")
    assert isomorphic(rules, rdflib.Graph().parse(dist / "b12kg-rules.jsonld", format="json-ld"))
    assert len(rules) > 1000


def _rows(store: ox.Store, name: str) -> list[tuple]:
    res = store.query((QUERIES_DIR / name).read_text(encoding="utf-8"), use_default_graph_as_union=True)
    if isinstance(res, ox.QuerySolutions):
        names = [v.value for v in res.variables]
        return sorted(tuple("" if s[n] is None else str(s[n]) for n in names) for s in res)
    return sorted(str(t) for t in res)


@pytest.mark.parametrize("name", QUERIES)
def test_dist_and_inferred_nq_answer_each_query_as_the_embedded_store(release, name):
    dist, nquads = release
    alone = ox.Store()
    alone.load(path=str(dist / "b12kg.ttl"), format=ox.RdfFormat.TURTLE, to_graph=ox.NamedNode("urn:x:ontology"))
    alone.load(path=str(dist / "b12kg-rules.ttl"), format=ox.RdfFormat.TURTLE, to_graph=ox.NamedNode("urn:x:rules"))
    alone.load(nquads, format=ox.RdfFormat.N_QUADS)
    embedded = new_store(full=True)
    embedded.load(nquads, format=ox.RdfFormat.N_QUADS)
    got, want = _rows(alone, name), _rows(embedded, name)
    assert got == want, f"{name}: {len(got)} rows from dist/ + inferred.nq, {len(want)} embedded"
    if name in ("explain/explain-finding.rq", "explain/patient-findings.rq", "report/claims-traceability.rq"):
        assert want, f"{name} gives no rows at all: the test would prove nothing"
