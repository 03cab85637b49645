"""The rules run inside a real SPARQL 1.1 server (`oxigraph serve`, from the `oxigraph` package,
a declared test dependency) give the same findings and the same inferred graph as the embedded
store, several worker processes share one server, each batch's graphs are dropped afterwards and
a bad endpoint is refused with a message naming it (docs/remote-store.md)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import sys
from pathlib import Path

import pytest

from b12kg.cohort import assess_cohort
from b12kg.inputs.csv import write_csv
from b12kg.engines.remote import Endpoint, free_port, kb_ntriples, oxigraph_server
from b12kg.errors import B12kgError
from b12kg.rdf.terms import KB_GRAPH
from b12kg.testing.synth import generate

REPO = Path(__file__).resolve().parent.parent
VALID = REPO / "vendor" / "shared" / "cases" / "valid"


def _server_binary() -> str:
    local = Path(sys.executable).parent / "oxigraph"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("oxigraph")
    if found is None:
        pytest.fail("the `oxigraph` server binary is not installed (neither next to "
                    f"{sys.executable} nor on PATH): it is a test dependency, pip install -e '.[test]' "
                    "(the `oxigraph` PyPI package provides it)")
    return found


@pytest.fixture
def server(tmp_path):
    """A fresh `oxigraph serve` on a free port with its own store folder; stopped afterwards."""
    with oxigraph_server(tmp_path / "store", binary=_server_binary(), log=tmp_path / "server.log") as srv:
        yield srv.url


def _ndjson(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _only_kb_left(endpoint: Endpoint) -> None:
    """(c): every batch's data and inferred graphs were dropped; the kb graph holds the knowledge
    base once (loading it again, also from two processes at once, added nothing) and its marker."""
    assert endpoint.graphs() == [KB_GRAPH]
    _, rows = endpoint.select(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{KB_GRAPH}> {{ ?s ?p ?o }} }}")
    assert int(rows[0]["n"]["value"]) == len(kb_ntriples()[0].splitlines()) + 1
    assert not endpoint.ask("ASK { ?s ?p ?o }"), "the default graph is not empty"


def _graph_lines(path: Path, graph: str) -> set[str]:
    tail = f" <{graph}> .\n"
    return {line for line in path.open(encoding="utf-8") if line.endswith(tail)}


def test_shared_cases_same_findings_as_embedded(server, tmp_path):
    """(a) the valid shared cases, loaded by INSERT DATA in small pieces (no store endpoint)."""
    n = len(list(VALID.glob("*.yaml")))
    ep = Endpoint(query=server + "/query", update=server + "/update", piece_bytes=20000)
    remote = assess_cohort(VALID, tmp_path / "remote", endpoint=ep, workers=1, progress=False)
    embedded = assess_cohort(VALID, tmp_path / "embedded", engine="oxigraph", workers=1, progress=False)
    assert remote.read == embedded.read == n and remote.refused == 0
    a, b = _ndjson(tmp_path / "remote" / "findings.ndjson"), _ndjson(tmp_path / "embedded" / "findings.ndjson")
    assert len(a) == len(b) == n
    for x, y in zip(a, b):
        assert x == y
    assert remote.findings == embedded.findings
    _only_kb_left(ep)
    # a rerun finds the knowledge base in place and gives the same findings again
    again = assess_cohort(VALID, tmp_path / "again", endpoint=ep, workers=1, progress=False, resume=False)
    assert _ndjson(tmp_path / "again" / "findings.ndjson") == a and again.findings == remote.findings
    _only_kb_left(ep)


def test_generated_cohort_two_workers_share_the_server(server, tmp_path):
    """(b) 300 generated patients, two worker processes on one fresh server (both find no
    knowledge base and load it at once), Graph Store Protocol loading, with the inferred graph."""
    csv_path = tmp_path / "cohort.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as fh:
        assert write_csv(generate(300, seed=11), fh) == 300
    ep = Endpoint(query=server + "/query", update=server + "/update", store=server + "/store")
    remote = assess_cohort(csv_path, tmp_path / "remote", endpoint=ep, workers=2, chunk_size=50, write_graph=True,
                           progress=False)
    embedded = assess_cohort(csv_path, tmp_path / "embedded", engine="oxigraph", workers=2, chunk_size=50,
                             write_graph=True, progress=False)
    assert remote.read == embedded.read == 300 and remote.chunks == 6
    assert remote.assessed == embedded.assessed and remote.refused == embedded.refused
    a, b = _ndjson(tmp_path / "remote" / "findings.ndjson"), _ndjson(tmp_path / "embedded" / "findings.ndjson")
    assert len(a) == len(b) == remote.assessed
    for x, y in zip(a, b):
        assert x == y
    _only_kb_left(ep)

    nq_r, nq_e = tmp_path / "remote" / "inferred.nq", tmp_path / "embedded" / "inferred.nq"
    data = "urn:b12kg:graph:data"
    inferred = "urn:b12kg:graph:inferred"
    assert _graph_lines(nq_r, data) == _graph_lines(nq_e, data)
    got, want = _graph_lines(nq_r, inferred), _graph_lines(nq_e, inferred)
    assert got and len(got) + len(_graph_lines(nq_r, data)) == sum(1 for _ in nq_r.open(encoding="utf-8"))
    assert got == want
    assert not any("_:" in line for line in got)


def test_bad_endpoints_are_named(server, tmp_path):
    """(d) a wrong URL, a port nobody listens on and a server that never answers each give a
    B12kgError naming the URL (and the HTTP status); nothing is written."""
    wrong = server + "/no-such-endpoint"
    ep = Endpoint(query=wrong, update=server + "/update")
    with pytest.raises(B12kgError) as info:
        ep.reason("", want_graph=False)
    assert wrong in str(info.value) and "404" in str(info.value)

    with pytest.raises(B12kgError) as info:
        assess_cohort(VALID, tmp_path / "out", endpoint=ep, workers=1, progress=False)
    assert wrong in str(info.value) and "404" in str(info.value)
    assert not (tmp_path / "out" / "findings.ndjson").exists()

    closed = f"http://127.0.0.1:{free_port()}/query"
    with pytest.raises(B12kgError, match="cannot connect") as info:
        Endpoint(query=closed).reason("", want_graph=False)
    assert closed in str(info.value)

    with socket.socket() as silent:       # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/sparql"
        with pytest.raises(B12kgError, match="timeout") as info:
            Endpoint(query=url, timeout=0.5).reason("", want_graph=False)
        assert url in str(info.value)

    # a query the server refuses (HTTP 400): the status and the server's words, with the URL
    with pytest.raises(B12kgError) as info:
        Endpoint(query=server + "/query").select("SELEC nothing")
    assert server + "/query" in str(info.value) and "400" in str(info.value)


def test_credentials_stay_out_of_messages(monkeypatch):
    """The password comes from the environment, is never in str(), repr() or an error, and the
    endpoint survives pickling (the runner sends it to worker processes)."""
    secret = "s3cret-Pa55"
    monkeypatch.setenv("B12KG_TEST_PASSWORD", secret)
    port = free_port()
    ep = Endpoint.from_options(query=f"http://127.0.0.1:{port}/sparql", update=None, store=None, user="dba",
                               password_env="B12KG_TEST_PASSWORD")
    assert ep.password == secret and ep.update_url == ep.query
    assert secret not in str(ep) and secret not in repr(ep) and "dba" in str(ep)
    clone = pickle.loads(pickle.dumps(ep))
    assert clone == ep and str(clone) == str(ep) and clone.password == secret
    with pytest.raises(B12kgError) as info:
        ep.reason("", want_graph=False)
    assert secret not in str(info.value) and ep.query in str(info.value)

    with pytest.raises(B12kgError, match="NO_SUCH_VARIABLE"):
        Endpoint.from_options(query="http://127.0.0.1/sparql", update=None, store=None, user="dba",
                              password_env="NO_SUCH_VARIABLE")
    with pytest.raises(B12kgError, match="--password-env"):
        Endpoint.from_options(query="http://127.0.0.1/sparql", update=None, store=None, user="dba", password_env=None)
    with pytest.raises(B12kgError, match="credentials") as info:
        Endpoint(query=f"http://dba:{secret}@127.0.0.1/sparql")
    assert secret not in str(info.value)
    with pytest.raises(B12kgError, match="http"):
        Endpoint(query="file:///etc/passwd")


class _CuttingEndpoint(Endpoint):
    """A store that silently cuts SELECT answers at 300 rows and CONSTRUCT answers at 1500
    triples (as Virtuoso cuts a CONSTRUCT at ResultSetMaxRows without a word)."""

    def _query(self, text, accept, what):
        body, headers = super()._query(text, accept, what)
        if "n-triples" in headers.get("content-type", ""):
            return b"\n".join(body.splitlines()[:1500]) + b"\n", headers
        doc = json.loads(body)
        if "results" in doc:
            doc["results"]["bindings"] = doc["results"]["bindings"][:300]
        return json.dumps(doc).encode(), headers


def test_cut_answers_are_noticed_and_the_batch_split(server, capsys):
    """An answer with fewer rows than the store counted is never taken for the whole: the batch
    is split by patient until each answer fits, and the result is the same as uncut."""
    from b12kg.rdf.patient import record_to_ntriples
    from b12kg.inputs.case import record_from_case

    nt = "".join(record_to_ntriples(record_from_case(c, source="synth")) for c in generate(40, seed=5))
    whole = Endpoint(query=server + "/query", update=server + "/update", store=server + "/store")
    rows, graph = whole.reason(nt, want_graph=True)
    assert len(rows) > 300 and len(graph.splitlines()) > 1500
    cut = _CuttingEndpoint(query=server + "/query", update=server + "/update", store=server + "/store")
    rows2, graph2 = cut.reason(nt, want_graph=True)
    assert sorted(rows2, key=repr) == sorted(rows, key=repr) and graph2 == graph
    assert "splitting the batch" in capsys.readouterr().err
    _only_kb_left(whole)


class _ForgetfulEndpoint(Endpoint):
    """A store that ignores FROM: its default graph is empty, so it finds nothing (as one store
    did: 'assessed 4' with zero findings and no error)."""

    def select(self, text, what="SPARQL query", *, expect=None):
        text = "\n".join(line for line in text.splitlines() if not line.startswith("FROM <"))
        return super().select(text, what, expect=None)

    def count(self, text, what):
        return super().count("\n".join(line for line in text.splitlines() if not line.startswith("FROM <")), what)


def test_a_store_that_ignores_from_is_caught_by_the_canary(server, tmp_path):
    from b12kg.errors import B12kgError
    from b12kg.rdf.patient import record_to_ntriples
    from b12kg.inputs.case import record_from_case

    nt = "".join(record_to_ntriples(record_from_case(c, source="synth")) for c in generate(5, seed=2))
    bad = _ForgetfulEndpoint(query=server + "/query", update=server + "/update", store=server + "/store")
    with pytest.raises(B12kgError, match="canary"):
        bad.reason(nt, want_graph=False)
    good = Endpoint(query=server + "/query", update=server + "/update", store=server + "/store")
    rows, _ = good.reason(nt, want_graph=True)
    assert rows and not any(r[0].startswith("urn:b12kg:canary/") for r in rows)
    _only_kb_left(good)
