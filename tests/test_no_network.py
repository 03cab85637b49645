"""No network, ever (issue 5): input that names remote resources opens no socket.

Two guards are active in every test of this module:
- ``no_network`` replaces socket.socket.connect/connect_ex, socket.create_connection and
  socket.getaddrinfo with functions that record the attempt and raise, and fails the test if any
  attempt was made (Python code: rdflib, pyshacl, fhir.resources, urllib);
- ``canary`` listens on a local port and fails the test if anything connects to it. Inputs name
  it (http://127.0.0.1:<port>/...) next to http://example.org/...: code outside Python (pyoxigraph
  is Rust) does not go through the socket module, so only a listener sees its connections.

Inputs: Turtle and JSON-LD with owl:imports and remote prefixes; JSON-LD with remote @context in
every position (refused before parsing); FHIR references, fullUrls, profiles and code systems with
http URLs; case records whose ``input`` is a URL; YAML with Python tags (refused by the safe
loader, nothing executed); user SPARQL with SERVICE and FROM for ``b12kg query``; and a cohort
folder holding all of these."""

from __future__ import annotations

import copy
import io
import json
import socket
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import b12kg
from b12kg import InputError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "vendor" / "shared" / "cases" / "fhir" / "p21-dual-deficiency.bundle.json"
CASE = REPO / "vendor" / "shared" / "cases" / "valid" / "p02-dual-deficiency-normocytic.yaml"


class Canary:
    """A local TCP listener that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: list = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def url(self, path: str = "x") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.hits.append(addr)
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def canary_server():
    c = Canary()
    yield c
    c.close()


@pytest.fixture(autouse=True)
def canary(canary_server):
    before = len(canary_server.hits)
    yield canary_server
    time.sleep(0.05)
    assert canary_server.hits[before:] == [], "something connected to the canary listener"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    attempts: list = []

    def refuse(name):
        def f(*args, **kwargs):
            attempts.append((name, args[1:] if name.startswith("socket.") else args))
            raise OSError(f"network access refused by the test guard ({name})")
        return f

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


def test_the_guards_see_what_they_must(no_network, canary):
    """Both guards work: a Python connection is stopped and recorded, a raw one is seen."""
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen("http://example.org/", timeout=1)
    assert no_network and no_network[0][0] in ("getaddrinfo", "create_connection", "socket.connect")
    no_network.clear()
    import _socket

    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)   # below the socket module, like Rust code
    s.connect(("127.0.0.1", canary.port))
    s.close()
    time.sleep(0.3)
    assert canary.hits
    canary.hits.clear()


# ---------------------------------------------------------------------------------------------
# RDF input
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def patient_nt():
    return b12kg.assess(CASE).input_ntriples


def _turtle_with(extra: str, nt: str) -> str:
    return "@prefix owl: <http://www.w3.org/2002/07/owl#> .\n" + nt + extra


def test_turtle_with_owl_imports_is_read_without_fetching(tmp_path, patient_nt, canary):
    p = tmp_path / "imports.ttl"
    p.write_text(_turtle_with(f"""
<https://w3id.org/b12kg/data/patient/p02> owl:imports <http://example.org/x> , <{canary.url("onto.ttl")}> .
<http://example.org/ontology> a owl:Ontology ; owl:imports <{canary.url("other.owl")}> .
""", patient_nt), encoding="utf-8")
    a = b12kg.assess(p)
    assert "CombinedB12IronDeficiency" in a.codes
    b12kg.assess(p, engine="pyshacl")         # the SHACL engine and validation: do_owl_imports off


def test_turtle_with_remote_prefixes_and_base_is_read_without_fetching(tmp_path, patient_nt, canary):
    p = tmp_path / "prefixes.ttl"
    p.write_text(f"@base <{canary.url('base/')}> .\n@prefix ex: <http://example.org/> .\n"
                 f"@prefix c: <{canary.url('ns#')}> .\n" + patient_nt + "c:a ex:b <relative> .\n", encoding="utf-8")
    b12kg.assess(p)


@pytest.mark.parametrize("where", ["top", "list", "nested-node", "scoped-term", "import", "graph-node", "canary"])
def test_jsonld_with_a_remote_context_is_refused_before_parsing(tmp_path, where, canary, monkeypatch):
    import rdflib.plugins.parsers.jsonld as jsonld_parser

    def no_parse(*a, **k):
        raise AssertionError("the JSON-LD parser was reached")

    monkeypatch.setattr(jsonld_parser.JsonLDParser, "parse", no_parse)
    remote = canary.url("context.jsonld") if where == "canary" else "http://example.org/context.jsonld"
    node = {"@id": "https://w3id.org/b12kg/data/patient/x", "@type": "https://w3id.org/b12kg/Patient"}
    doc = {
        "top": {"@context": remote, **node},
        "canary": {"@context": remote, **node},
        "list": {"@context": [{"b12": "https://w3id.org/b12kg/"}, remote], **node},
        "nested-node": {"@context": {"b12": "https://w3id.org/b12kg/"}, "@graph": [{"@context": remote, **node}]},
        "scoped-term": {"@context": {"b12": "https://w3id.org/b12kg/", "p": {"@id": "b12:p", "@context": remote}}, **node},
        "import": {"@context": {"@version": 1.1, "@import": remote}, **node},
        "graph-node": {"@graph": [node, {"@id": "urn:x", "@context": [remote]}]},
    }[where]
    p = tmp_path / "remote.jsonld"
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        b12kg.assess(p)
    assert "remote JSON-LD context" in str(exc.value) and "@context" in str(exc.value)


def test_jsonld_with_an_inline_context_and_owl_imports_is_read_without_fetching(tmp_path, patient_nt, canary):
    import rdflib

    g = rdflib.Graph().parse(data=patient_nt, format="nt")
    g.add((rdflib.URIRef("https://w3id.org/b12kg/data/patient/p02"), rdflib.OWL.imports, rdflib.URIRef(canary.url("o"))))
    p = tmp_path / "inline.jsonld"
    p.write_text(g.serialize(format="json-ld", context={"b12": "https://w3id.org/b12kg/"}), encoding="utf-8")
    assert "CombinedB12IronDeficiency" in b12kg.assess(p).codes


# ---------------------------------------------------------------------------------------------
# FHIR
# ---------------------------------------------------------------------------------------------
def _bundle() -> dict:
    return json.loads(BUNDLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("ref", ["http://evil.example/Patient/1", "canary"])
def test_fhir_reference_to_a_remote_patient_is_not_used_not_fetched(ref, canary):
    # Since issue 10 the result is listed and not used (the patient is assessed on the rest).
    b = _bundle()
    b["entry"][1]["resource"]["subject"]["reference"] = canary.url("Patient/1") if ref == "canary" else ref
    a = b12kg.assess(b)
    assert any("does not refer to the Bundle's Patient" in n for n in a.notes)


def test_fhir_http_urls_everywhere_are_compared_as_strings_only(canary):
    b = _bundle()
    url = canary.url("fhir/Patient/p21")
    b["entry"][0]["fullUrl"] = url
    b["entry"][0]["resource"]["meta"] = {"profile": [canary.url("StructureDefinition/x")], "source": "http://evil.example/"}
    b["entry"][0]["resource"]["extension"] = [{"url": canary.url("ext"), "valueUri": "http://evil.example/v"}]
    for e in b["entry"][1:]:
        e["resource"]["subject"]["reference"] = url
        e["resource"]["code"]["coding"].append({"system": canary.url("cs"), "code": "x"})
        e["resource"]["basedOn"] = [{"reference": "http://evil.example/ServiceRequest/1"}]
        e["resource"]["performer"] = [{"reference": canary.url("Practitioner/1")}]
    b["entry"].append({"fullUrl": "http://evil.example/Organization/1",
                       "resource": {"resourceType": "Organization", "id": "o1", "name": "x"}})
    b["link"] = [{"relation": "next", "url": canary.url("next-page")}]
    a = b12kg.assess(b)
    assert "CombinedB12IronDeficiency" in a.codes


# ---------------------------------------------------------------------------------------------
# Case records and YAML
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://example.org/case.yaml", "https://example.org/b.json", "file:///etc/passwd",
                                 "ftp://example.org/x", "canary"])
def test_case_input_naming_a_url_is_refused(url, canary, tmp_path):
    target = canary.url("case.yaml") if url == "canary" else url
    p = tmp_path / "case.yaml"
    p.write_text(f"id: x\ninput: {target}\n", encoding="utf-8")
    with pytest.raises(InputError, match="nothing is fetched"):
        b12kg.assess(p)


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.check_output [['touch', '{marker}']]",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:argparse.Namespace {{a: 1}}",
    "!!python/object/apply:urllib.request.urlopen ['{url}']",
])
def test_yaml_python_tags_are_refused_and_nothing_runs(tmp_path, tag, canary):
    marker = tmp_path / "pwned"
    text = tag.format(marker=marker, url=canary.url("yaml"))
    for doc in (text + "\n", f"id: x\nobservations:\n  ferritin:\n    unit: ug/L\n    value: {text}\n",
                f"id: x\ncontext:\n  - metformin\n  - {text}\n"):
        p = tmp_path / "tagged.yaml"
        p.write_text(doc, encoding="utf-8")
        with pytest.raises(InputError) as exc:
            b12kg.load_record(p)
        assert "could not determine a constructor" in str(exc.value) and "line" in str(exc.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# SPARQL written by the user: b12kg query
# ---------------------------------------------------------------------------------------------
def _cli(*argv: str) -> tuple[int, str, str]:
    from b12kg.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


SERVICE_QUERIES = [
    "SELECT * WHERE {{ SERVICE <{u}> {{ ?s ?p ?o }} }}",
    "select * where {{ service silent <{u}> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ \\u0053ERVICE <{u}> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ ?s ?p ?o FILTER EXISTS {{ SERVICE <{u}> {{ ?a ?b ?c }} }} }}",
    "ASK {{ FILTER NOT EXISTS {{ SERVICE <{u}> {{ ?a ?b ?c }} }} }}",
    "SELECT * WHERE {{ {{ SELECT * WHERE {{ SERVICE <{u}> {{ ?s ?p ?o }} }} }} }}",
    "SELECT * WHERE {{ VALUES ?e {{ <{u}> }} SERVICE ?e {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ BIND(<{u}> AS ?e) SERVICE ?e {{ ?s ?p ?o }} }}",
    "CONSTRUCT {{ ?s ?p ?o }} WHERE {{ OPTIONAL {{ SERVICE <{u}> {{ ?s ?p ?o }} }} }}",
    "DESCRIBE ?s WHERE {{ {{ ?s ?p ?o }} UNION {{ SERVICE <{u}> {{ ?s ?p ?o }} }} }}",
    "PREFIX e: <{base}> SELECT * WHERE {{ SERVICE e:sparql {{ ?s ?p ?o }} }}",
    "BASE <{base}> SELECT * WHERE {{ SERVICE <sparql> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ # a comment\n SERVICE <{u}> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ GRAPH ?g {{ SERVICE <{u}> {{ ?s ?p ?o }} }} }}",
    "LOAD <{u}>",
    "INSERT DATA {{ <urn:a> <urn:b> <urn:c> }} ; LOAD <{u}>",
]


@pytest.mark.parametrize("query", SERVICE_QUERIES, ids=range(len(SERVICE_QUERIES)))
def test_user_query_with_service_or_load_is_refused_without_a_connection(tmp_path, canary, query):
    q = tmp_path / "q.rq"
    q.write_text(query.format(u=canary.url("sparql"), base=canary.url("")), encoding="utf-8")
    rc, out, err = _cli("query", str(q), str(CASE))
    assert rc == 1 and "refused" in err


@pytest.mark.parametrize("query", [
    "SELECT ?s WHERE {{ ?s ?p ?o }} LIMIT 1",
    "SELECT * FROM <{u}> WHERE {{ ?s ?p ?o }} LIMIT 1",
    "SELECT * FROM NAMED <{u}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }} LIMIT 1",
    "SELECT * WHERE {{ BIND(IRI('{u}') AS ?x) ?x ?p ?o }}",
    "SELECT * WHERE {{ ?s ?p ?o FILTER(STRSTARTS(STR(?s), '{u}')) }}",
])
def test_user_query_naming_urls_as_data_runs_without_a_connection(tmp_path, canary, query):
    q = tmp_path / "q.rq"
    q.write_text(query.format(u=canary.url("data")), encoding="utf-8")
    rc, out, err = _cli("query", str(q), str(CASE))
    assert rc == 0, err


# ---------------------------------------------------------------------------------------------
# All of it through the CLI and the cohort runner
# ---------------------------------------------------------------------------------------------
def test_a_folder_of_hostile_records_through_the_cli_and_the_cohort_runner(tmp_path, patient_nt, canary):
    from b12kg.cohort import assess_cohort

    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "a-imports.ttl").write_text(_turtle_with(
        f"<https://w3id.org/b12kg/data/patient/p02> owl:imports <{canary.url('o')}> .\n", patient_nt), encoding="utf-8")
    (folder / "b-remote.jsonld").write_text(json.dumps({"@context": canary.url("ctx"), "@id": "urn:x"}), encoding="utf-8")
    b = _bundle()
    b["entry"][1]["resource"]["subject"]["reference"] = canary.url("Patient/1")
    (folder / "c-bundle.json").write_text(json.dumps(b), encoding="utf-8")
    (folder / "d-tag.yaml").write_text(f"!!python/object/apply:urllib.request.urlopen ['{canary.url('y')}']\n",
                                       encoding="utf-8")
    (folder / "e-input.yaml").write_text(f"id: e\ninput: {canary.url('case.yaml')}\n", encoding="utf-8")
    # a patient id of its own: a-imports.ttl is patient p02 too, and a repeated id is refused (issue 12)
    (folder / "f-good.yaml").write_text(CASE.read_text(encoding="utf-8").replace(
        "id: p02-dual-deficiency-normocytic", "id: f-good", 1), encoding="utf-8")
    files = sorted(str(p) for p in folder.iterdir())
    rc, out, err = _cli("validate", *files)
    # c-bundle: the Observation about a remote Patient is listed and not used, never fetched (a FHIR
    # export keeps its usable parts, issue 10); the other three hostile records are refused
    assert rc == 1 and out.count("INVALID") == 3 and out.count(": valid") == 3
    rc, out, err = _cli("assess", "--format", "json", *files)
    assert rc == 1
    s = assess_cohort(folder, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (6, 3, 3)
