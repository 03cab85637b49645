"""Run the rules inside a remote SPARQL 1.1 store (docs/remote-store.md).

The rule text is the same as everywhere else: each rule in the set-at-a-time form of
``b12kg.rules.set_at_a_time_updates``, sent as SPARQL 1.1 Updates over the SPARQL 1.1 Protocol.
Per endpoint, the knowledge base (``rules.rule_support_graph()``) is loaded once into
urn:b12kg:graph:kb; per batch of patients:

1. the patients go into a graph of their own, urn:b12kg:graph:data:<uuid> (Graph Store HTTP
   Protocol PUT when a store endpoint is given, else ``INSERT DATA`` in pieces of bounded size);
2. every rule runs in sh:order, reading the kb, the batch's data and the batch's inferred graph
   (``USING``) and writing into urn:b12kg:graph:inferred:<uuid>;
3. the findings are read back with queries/report/findings-evidence.rq over those three graphs
   (``FROM``), and the inferred triples with a CONSTRUCT when asked;
4. the batch's two graphs are dropped, also when a step failed.

So several worker processes (and several runs) share one store: each batch only touches its own
graphs, and the knowledge base is loaded idempotently (its blank nodes are given stable skolem
IRIs, so loading it twice adds nothing) under a marker triple holding its digest.

Only the URLs the user named are contacted: proxies from the environment are not used and
redirects are refused. Passwords come from an environment variable (``--password-env``) and never
appear in messages, in ``str()`` or in ``repr()``.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import uuid
from dataclasses import dataclass, field
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import (HTTPBasicAuthHandler, HTTPDigestAuthHandler, HTTPPasswordMgrWithDefaultRealm,
                            parse_http_list, parse_keqv_list,
                            HTTPRedirectHandler, ProxyHandler, Request, build_opener)

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import B12kgError, RuleError
from ..inputs.record import PatientRecord
from ..paths import EXAMPLES_DIR, query_text
from ..rdf.terms import (DATA_GRAPH_PREFIX as DATA_PREFIX, DEFAULT_BASE, INFERRED_GRAPH_PREFIX as INFERRED_PREFIX,
                         KB_DIGEST, KB_GRAPH, PATIENT_CLASS, RDF_TYPE, SKOLEM_PREFIX, patient_iri)
from ..rules import load_rules, rule_support_graph, set_at_a_time_updates
from .base import FINDINGS_QUERY_NAME, FINDINGS_VARS, Engine, Reasoned, findings_from_rows, patients_ntriples
from ..cache import once
from ..inputs.case import record_from_case
from ..rdf.patient import record_to_ntriples
from .oxigraph import inferred_ntriples as _embedded_inferred, reason as _embedded_reason
from .base import rows_from_solutions


class Truncated(B12kgError):
    """The store cut an answer at its row limit."""


class _Deadlock(B12kgError):
    """The store refused a request as deadlocked with another; it may be sent again."""


# ---------------------------------------------------------------------------------------------
# What is sent: the knowledge base, the rules, the findings query
# ---------------------------------------------------------------------------------------------
@once
def kb_ntriples() -> tuple[str, str]:
    """(N-Triples of the knowledge base the rules read, its sha256). Blank nodes are replaced by
    skolem IRIs named by rdflib's canonical labelling, the same in every process and run, so a
    second load of the same knowledge base adds nothing (no rule looks at blank-node-ness)."""
    import rdflib
    from rdflib.compare import to_canonical_graph

    canon = to_canonical_graph(rule_support_graph())

    def sk(t):
        return rdflib.URIRef(SKOLEM_PREFIX + str(t)) if isinstance(t, rdflib.BNode) else t

    g = rdflib.Graph()
    for s, p, o in canon:
        g.add((sk(s), p, sk(o)))
    lines = sorted(ln for ln in g.serialize(format="nt").splitlines() if ln.strip())
    text = "\n".join(lines) + "\n"
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=64)
def rule_updates(kb: str, data: str, inferred: str) -> tuple[tuple[str, str], ...]:
    """(rule id, update text) for every rule, in evaluation order, over the three graphs."""
    return tuple((r.id, u) for r in load_rules()
                 for u in set_at_a_time_updates(r, graphs=True, kb_graph=kb, data_graph=data, inferred_graph=inferred))


def findings_query(graphs: tuple[str, ...], *, count: bool = False) -> str:
    """queries/report/findings-evidence.rq with FROM clauses naming ``graphs`` after its SELECT
    clause: its default graph is their merge, as the embedded engine's default graph is. With
    ``count``, the same query counting its rows (to tell a complete answer from a cut one)."""
    text = query_text(FINDINGS_QUERY_NAME)
    m = re.search(r"(?m)^\s*SELECT\b[^{]*?(?=\bWHERE\s*\{)", text)
    if m is None:
        raise RuleError(f"{FINDINGS_QUERY_NAME}: no SELECT ... WHERE {{ to add FROM clauses to")
    froms = "".join(f"FROM <{g}>\n" for g in graphs)
    if count:
        if re.search(r"\b(DISTINCT|REDUCED)\b", m.group(0), re.I):
            raise RuleError(f"{FINDINGS_QUERY_NAME}: its rows cannot be counted with COUNT(*)")
        return text[:m.start()] + "SELECT (COUNT(*) AS ?n)\n" + froms + text[m.end():]
    return text[:m.end()] + froms + text[m.end():]


def inferred_query(inferred: str, *, count: bool = False) -> str:
    """The batch's inferred graph, every triple the rules wrote (what the embedded engine writes
    as urn:b12kg:graph:inferred), or with ``count`` its size."""
    head = "SELECT (COUNT(*) AS ?n)" if count else "CONSTRUCT { ?s ?p ?o }"
    return f"{head}\nFROM NAMED <{inferred}>\nWHERE {{ GRAPH <{inferred}> {{ ?s ?p ?o }} }}"


def pieces(ntriples: str, limit: int, max_lines: int = 1000) -> list[str]:
    """N-Triples split at line ends into pieces of at most ``limit`` bytes and ``max_lines``
    triples (a longer line is a piece of its own). Lines with blank nodes all go into the first
    piece, so that a blank node stays one node: each INSERT DATA request has its own blank-node
    scope. (b12kg's own data has none: patients are IRIs, the knowledge base is skolemised.)"""
    lines = [ln for ln in ntriples.splitlines() if ln.strip()]
    blank = [ln for ln in lines if "_:" in ln]
    other = [ln for ln in lines if "_:" not in ln]
    out: list[str] = []
    cur: list[str] = list(blank)
    size = sum(len(x.encode("utf-8")) + 1 for x in cur)
    for ln in other:
        n = len(ln.encode("utf-8")) + 1
        if cur and (size + n > limit or len(cur) >= max_lines):
            out.append("\n".join(cur) + "\n")
            cur, size = [], 0
        cur.append(ln)
        size += n
    if cur:
        out.append("\n".join(cur) + "\n")
    return out


def split_patients(ntriples: str) -> tuple[str, str] | None:
    """The N-Triples of a batch as two batches of about half the patients each, every triple with
    its patient (the subject is the patient's IRI or an IRI under it, as rdfpatient writes them);
    None when there are fewer than two patients or a triple belongs to no patient."""
    lines = [ln for ln in ntriples.splitlines() if ln.strip()]
    patient_type = f"<{RDF_TYPE}> <{PATIENT_CLASS}> ."
    patients = [ln.split(" ", 1)[0][1:-1] for ln in lines if ln.endswith(patient_type)]
    if len(patients) < 2:
        return None
    index = {p: i for i, p in enumerate(dict.fromkeys(patients))}
    cut = len(index) // 2
    halves: tuple[list[str], list[str]] = ([], [])
    for ln in lines:
        subject = ln.split(" ", 1)[0]
        if not (subject.startswith("<") and subject.endswith(">")):
            return None
        iri = subject[1:-1]
        owner = iri if iri in index else None
        pos = len(iri)
        while owner is None and pos > 0:
            pos = iri.rfind("/", 0, pos)
            if pos <= 0:
                break
            owner = iri[:pos] if iri[:pos] in index else None
        if owner is None:
            return None
        halves[index[owner] >= cut].append(ln)
    return "\n".join(halves[0]) + "\n", "\n".join(halves[1]) + "\n"


_NOTED: set[str] = set()


def _note_truncation(message: str) -> None:
    """Say once per process that batches are being split (correct, but slower)."""
    key = message.split(":", 1)[0]
    if key not in _NOTED:
        _NOTED.add(key)
        print(f"b12kg: {message}; splitting the batch and going on", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------
class _NoRedirect(HTTPRedirectHandler):
    """A redirect would send the request (and credentials) to a URL the user did not name."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def _check_url(url: str | None, what: str) -> None:
    if url is None:
        return
    if not isinstance(url, str) or not url:
        raise B12kgError(f"{what} endpoint: no URL given")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise B12kgError(f"{what} endpoint: {url.split('@')[-1]!r} is not a URL") from None
    if "@" in parts.netloc:
        raise B12kgError(f"{what} endpoint for host {host}: the URL holds credentials; "
                         f"give --user and the name of an environment variable with --password-env instead")
    if parts.scheme not in ("http", "https") or not host:
        raise B12kgError(f"{what} endpoint {url!r}: not an http:// or https:// URL")
    if parts.fragment:
        raise B12kgError(f"{what} endpoint {url!r}: a URL with a #fragment")


# The canary: a patient whose findings b12kg knows from its own embedded store, sent with every
# batch. A store that answers anything else for it (a FROM ignored, an answer cut, graphs mixed)
# stops the run with a clear error instead of a cohort with silently missing findings.
CANARY_BASE = "urn:b12kg:canary/"
_CANARY_CASE = {"id": "canary", "patient": {"sex": "male", "age_years": 61},
                "observations": {"hemoglobin": {"value": 101, "unit": "g/L"}, "mcv": {"value": 92, "unit": "fL"},
                                 "b12": {"value": 95, "unit": "pmol/L"}, "ferritin": {"value": 7, "unit": "ug/L"},
                                 "crp": {"value": 2, "unit": "mg/L"}, "folate": {"value": 2.1, "unit": "ng/mL"}},
                "symptoms": ["tingling"], "context": ["metformin"]}


@once
def canary() -> tuple[str, tuple, frozenset]:
    """(the canary's N-Triples, its findings-evidence rows sorted, its inferred triples) as the
    embedded store gives them."""
    nt = record_to_ntriples(record_from_case(_CANARY_CASE, source="canary"), CANARY_BASE)
    store = _embedded_reason(nt, full=False)
    rows = rows_from_solutions(store.query(query_text(FINDINGS_QUERY_NAME), use_default_graph_as_union=True))
    return nt, tuple(sorted(rows, key=repr)), frozenset(ln for ln in _embedded_inferred(store).splitlines() if ln)


def _check_canary(where: str, rows: list[tuple], lines: list[str] | None) -> tuple[list[tuple], list[str] | None]:
    """The batch's rows and inferred lines without the canary's, once the canary's are checked."""
    _, want_rows, want_lines = canary()
    mine = [r for r in rows if r[0] is not None and r[0].startswith(CANARY_BASE)]
    others = [r for r in rows if not (r[0] is not None and r[0].startswith(CANARY_BASE))]
    if tuple(sorted(mine, key=repr)) != want_rows:
        raise B12kgError(f"{where} answered the canary patient wrongly ({len(mine)} finding rows instead of "
                         f"{len(want_rows)}): the store does not evaluate b12kg's queries as SPARQL 1.1 says "
                         "(a FROM clause ignored, an answer cut or graphs mixed); no result of this run is trusted")
    if lines is None:
        return others, None
    prefix = "<" + CANARY_BASE
    got = {ln for ln in lines if ln.startswith(prefix)}
    if got != want_lines:
        raise B12kgError(f"{where} returned the canary patient's inferred graph wrongly ({len(got)} triples instead "
                         f"of {len(want_lines)}); no result of this run is trusted")
    return others, [ln for ln in lines if not ln.startswith(prefix)]


PREAUTH_BYTES = 64 * 1024       # a body larger than this is sent only once authentication is negotiated
_DIGEST: dict[tuple, HTTPDigestAuthHandler] = {}
_KB_READY: set[tuple] = set()   # endpoints whose knowledge base this process has checked or loaded


@dataclass(frozen=True)
class Endpoint:
    """A SPARQL 1.1 store: query endpoint, update endpoint (default: the query endpoint) and,
    optionally, a Graph Store HTTP Protocol endpoint for loading. Picklable (the cohort runner
    sends it to its worker processes); ``str()`` names it without credentials."""

    query: str
    update: str | None = None
    store: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 600.0              # seconds per HTTP request
    piece_bytes: int = 1 << 20          # largest INSERT DATA request when there is no store endpoint,
    piece_triples: int = 1000           # in bytes and in triples (Virtuoso 7 refuses ~2000 triples)

    def __post_init__(self) -> None:
        _check_url(self.query, "query")
        _check_url(self.update, "update")
        _check_url(self.store, "store")
        if (self.user is None) != (self.password is None):
            raise B12kgError("remote store: a user name needs a password (--password-env) and a password a user (--user)")
        if not self.timeout or self.timeout <= 0:
            raise B12kgError(f"remote store: timeout {self.timeout!r} is not a positive number of seconds")

    @classmethod
    def from_options(cls, query: str, update: str | None = None, store: str | None = None, user: str | None = None,
                     password_env: str | None = None) -> "Endpoint":
        """From the command line: the password is read from the environment variable named by
        ``password_env``, never given on the command line."""
        password = None
        if password_env is not None:
            if user is None:
                raise B12kgError("--password-env needs --user")
            password = os.environ.get(password_env)
            if password is None:
                raise B12kgError(f"--password-env {password_env}: the environment variable {password_env} is not set")
        elif user is not None:
            raise B12kgError("--user needs --password-env (the name of an environment variable holding the password)")
        return cls(query=query, update=update, store=store, user=user, password=password)

    @property
    def update_url(self) -> str:
        return self.update or self.query

    def __str__(self) -> str:
        s = f"SPARQL 1.1 store: query {self.query}, update {self.update_url}, "
        s += f"graph store {self.store}" if self.store else "loading by INSERT DATA"
        return s + (f", user {self.user}" if self.user else "")

    # -- transport -------------------------------------------------------------------------------
    def _opener(self):
        handlers: list = [ProxyHandler({}), _NoRedirect()]
        if self.user is not None:
            mgr = HTTPPasswordMgrWithDefaultRealm()
            for url in {self.query, self.update_url, self.store} - {None}:
                mgr.add_password(None, url, self.user, self.password)
            handlers += [HTTPDigestAuthHandler(mgr), HTTPBasicAuthHandler(mgr)]
        return build_opener(*handlers)

    def _http(self, what: str, url: str, data: bytes | None, headers: dict[str, str], method: str = "POST",
              params: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of one request; every failure is a B12kgError naming the URL and the
        HTTP status, never the password. A partial answer (Virtuoso's X-SQL-State other than
        00000, sent when an "anytime" query ran out of time) is a failure too. A request the store
        refused as deadlocked (two workers writing at once) is sent again, up to 4 times in all:
        every request b12kg sends is idempotent (set semantics, no blank nodes in what it loads)."""
        import time

        for attempt in range(4):
            try:
                return self._http_once(what, url, data, headers, method, params)
            except _Deadlock:
                if attempt == 3:
                    raise
                time.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _http_once(self, what: str, url: str, data: bytes | None, headers: dict[str, str], method: str,
                   params: dict[str, str] | None) -> tuple[bytes, dict[str, str]]:
        full = url + (("&" if "?" in url else "?") + urlencode(params, quote_via=quote) if params else "")
        req = Request(full, data=data, headers=headers, method=method)
        if self.user is not None and data is not None and len(data) > PREAUTH_BYTES:
            self._preauthorize(req, what)
        try:
            with self._opener().open(req, timeout=self.timeout) as resp:
                body = resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except HTTPError as exc:
            self._raise_http(what, url, exc)
        except (TimeoutError, socket.timeout):
            raise B12kgError(f"{what} at {url}: no answer within {self.timeout:g} s (timeout)") from None
        except URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise B12kgError(f"{what} at {url}: no answer within {self.timeout:g} s (timeout)") from None
            raise B12kgError(f"{what} at {url}: cannot connect ({reason})") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise B12kgError(f"{what} at {url}: {type(exc).__name__}: {exc}") from None
        if headers.get("x-sql-state", "00000").strip() not in ("", "00000"):
            raise B12kgError(f"{what} at {url}: the store sent a partial answer (X-SQL-State {headers['x-sql-state']}: "
                             f"{headers.get('x-sql-message', '')}); raise its time limits (docs/remote-store.md)")
        return body, headers

    def _preauthorize(self, req: Request, what: str) -> None:
        """Negotiate HTTP digest authentication before a large body is sent: ask for the
        challenge with a bodiless request, then send the body once, with its Authorization. (urllib
        sends the whole body first and answers the 401 after it; a store that closes the
        connection on the 401, as Virtuoso does, broke the upload with 'Broken pipe'.)"""
        probe = Request(req.full_url, method="GET")
        try:
            with build_opener(ProxyHandler({}), _NoRedirect()).open(probe, timeout=self.timeout):
                return                      # no authentication asked for here
        except HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
        except (URLError, OSError, http.client.HTTPException):
            return                          # the real request will say what is wrong
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() != "digest":
            return
        chal = parse_keqv_list(parse_http_list(rest))
        handler = _DIGEST.get((self.user, req.full_url))
        if handler is None:               # one per process and URL: it counts the nonce's uses
            mgr = HTTPPasswordMgrWithDefaultRealm()
            mgr.add_password(None, req.full_url, self.user, self.password)
            handler = _DIGEST[(self.user, req.full_url)] = HTTPDigestAuthHandler(mgr)
        auth = handler.get_authorization(req, chal)
        if auth:
            req.add_unredirected_header("Authorization", f"Digest {auth}")

    def _raise_http(self, what: str, url: str, exc: HTTPError):
        try:
            detail = exc.read(400).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - the status is what matters
            detail = ""
        if self.password:
            detail = detail.replace(self.password, "***")
        if 300 <= exc.code < 400:
            detail = f"redirected to {exc.headers.get('Location')}; give that URL instead"
        cls = _Deadlock if re.search(r"\bSR172\b|\b40001\b|deadlock", detail, re.I) else B12kgError
        raise cls(f"{what} at {url}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")) from None

    def run_update(self, text: str, what: str = "SPARQL update") -> None:
        self._http(what, self.update_url, urlencode({"update": text}).encode("utf-8"),
                   {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def _query(self, text: str, accept: str, what: str) -> tuple[bytes, dict[str, str]]:
        return self._http(what, self.query, urlencode({"query": text}).encode("utf-8"),
                          {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": accept})

    def _check_complete(self, what: str, headers: dict[str, str], count: int, expect: int | None) -> None:
        """An answer is cut when it holds fewer rows than counted before, or when it reaches the
        row limit a store announces (Virtuoso: X-SPARQL-MaxRows, from ResultSetMaxRows)."""
        if expect is not None and count < expect:
            raise Truncated(f"{what} at {self.query}: the store sent {count} of {expect} rows "
                            f"(Virtuoso: raise ResultSetMaxRows in [SPARQL] of virtuoso.ini, or lower --chunk-size)")
        limit = headers.get("x-sparql-maxrows")
        if limit and limit.strip().isdigit() and count >= int(limit):
            raise Truncated(f"{what} at {self.query}: the store cut the answer at {limit} rows "
                            f"(Virtuoso: raise ResultSetMaxRows in [SPARQL] of virtuoso.ini, or lower --chunk-size)")

    def count(self, text: str, what: str) -> int:
        """The ?n of a SELECT (COUNT(*) AS ?n) query."""
        _, rows = self.select(text, what)
        try:
            return int(rows[0]["n"]["value"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise B12kgError(f"{what} at {self.query}: the answer holds no count: {rows[:1]!r}") from None

    def select(self, text: str, what: str = "SPARQL query", *, expect: int | None = None) -> tuple[list[str], list[dict]]:
        """(variables, bindings) of a SELECT, as SPARQL 1.1 Query Results JSON; ``Truncated``
        when the store says it cut the answer or it holds fewer than ``expect`` rows."""
        body, headers = self._query(text, "application/sparql-results+json", what)
        try:
            doc = json.loads(body)
            names, rows = doc["head"]["vars"], doc["results"]["bindings"]
        except (ValueError, KeyError, TypeError):
            raise B12kgError(f"{what} at {self.query}: the answer ({headers.get('content-type', 'no content type')}) "
                             f"is not SPARQL results JSON: {body[:200]!r}") from None
        self._check_complete(what, headers, len(rows), expect)
        return names, rows

    def ask(self, text: str, what: str = "SPARQL ASK") -> bool:
        body, headers = self._query(text, "application/sparql-results+json", what)
        try:
            doc = json.loads(body)
            if "boolean" not in doc and doc.get("head", {}).get("vars") == ["__ASK_RETVAL"]:
                # Virtuoso 7 answers ASK in JSON as a one-column table: a row whose value is 1 for
                # true, no row (or 0) for false.
                rows = doc["results"]["bindings"]
                return bool(rows) and rows[0]["__ASK_RETVAL"]["value"] not in ("0", "false")
            return bool(doc["boolean"])
        except (ValueError, KeyError, TypeError, IndexError):
            raise B12kgError(f"{what} at {self.query}: the answer ({headers.get('content-type', 'no content type')}) "
                             f"is not a SPARQL boolean: {body[:200]!r}") from None

    def construct(self, text: str, what: str = "SPARQL CONSTRUCT", *, expect: int | None = None) -> list[str]:
        """The triples of a CONSTRUCT as sorted N-Triples lines, each written the way the
        embedded engine writes it (pyoxigraph's terms), whatever syntax the store answered in;
        ``Truncated`` when the store says it cut the answer or it holds fewer than ``expect``
        triples (Virtuoso cuts a CONSTRUCT at ResultSetMaxRows without saying so)."""
        import pyoxigraph as ox

        body, headers = self._query(text, "application/n-triples, text/turtle;q=0.9, text/plain;q=0.5", what)
        ctype = headers.get("content-type", "")
        mime = ctype.split(";")[0].strip().lower()
        fmt = ox.RdfFormat.TURTLE if mime in ("text/turtle", "application/x-turtle") else ox.RdfFormat.N_TRIPLES
        try:
            lines = sorted({f"{q.subject} {q.predicate} {q.object} ." for q in ox.parse(body, format=fmt)})
        except (SyntaxError, ValueError) as exc:
            raise B12kgError(f"{what} at {self.query}: cannot read the answer ({ctype or 'no content type'}): {exc}") from None
        self._check_complete(what, headers, len(lines), expect)
        return lines

    def put_graph(self, graph: str, ntriples: str, *, replace: bool, what: str) -> None:
        """Graph Store HTTP Protocol: PUT (replace) or POST (add) N-Triples to ?graph=<graph>."""
        self._http(what, self.store, ntriples.encode("utf-8"), {"Content-Type": "application/n-triples"},
                   method="PUT" if replace else "POST", params={"graph": graph})

    def insert_data(self, graph: str, ntriples: str, what: str) -> None:
        for piece in pieces(ntriples, self.piece_bytes, self.piece_triples):
            self.run_update(f"INSERT DATA {{ GRAPH <{graph}> {{\n{piece}}} }}", what)

    # -- the knowledge base ----------------------------------------------------------------------
    def ensure_kb(self) -> None:
        """Load the knowledge base into urn:b12kg:graph:kb unless this process already did or the
        store holds it (ASK on the marker triple with its digest). Loading adds (POST / INSERT
        DATA) and is idempotent, so workers that load at the same time do no harm; a knowledge
        base of another b12kg version (another digest) is replaced."""
        key = (self.query, self.update_url, self.store)
        if key in _KB_READY:
            return
        text, digest = kb_ntriples()
        marker = f'<{KB_GRAPH}> <{KB_DIGEST}> "{digest}" .'
        if not self.ask(f"ASK {{ GRAPH <{KB_GRAPH}> {{ {marker[:-2]} }} }}", "checking the knowledge base"):
            stale = self.ask(f"ASK {{ GRAPH <{KB_GRAPH}> {{ <{KB_GRAPH}> <{KB_DIGEST}> ?d }} }}",
                             "checking the knowledge base")
            if self.store:
                self.put_graph(KB_GRAPH, text, replace=stale, what="loading the knowledge base")
            else:
                if stale:
                    self.run_update(f"DROP SILENT GRAPH <{KB_GRAPH}>", "replacing the knowledge base")
                self.insert_data(KB_GRAPH, text, "loading the knowledge base")
            self.run_update(f"INSERT DATA {{ GRAPH <{KB_GRAPH}> {{ {marker} }} }}", "marking the knowledge base loaded")
        _KB_READY.add(key)

    # -- one batch ----------------------------------------------------------------------------------
    def reason(self, patients_ntriples: str, *, want_graph: bool) -> tuple[list[tuple], str]:
        """Run every rule over a batch of patients inside the store: the rows of
        findings-evidence.rq (as ``engine.rows_from_solutions`` gives them) and, if asked, the
        inferred triples as sorted N-Triples. When the store cuts an answer at a row limit, the
        batch is split in two and each half run on its own (patients are independent)."""
        self.ensure_kb()
        try:
            return self._reason_once(patients_ntriples, want_graph)
        except Truncated as exc:
            halves = split_patients(patients_ntriples)
            if halves is None:
                raise B12kgError(str(exc)) from None
            _note_truncation(str(exc))
            rows: list[tuple] = []
            lines: list[str] = []
            for half in halves:
                r, g = self.reason(half, want_graph=want_graph)
                rows += r
                lines += g.splitlines()
            lines = sorted(set(lines))
            return rows, "\n".join(lines) + ("\n" if lines else "")

    def _reason_once(self, patients_ntriples: str, want_graph: bool) -> tuple[list[tuple], str]:
        tag = uuid.uuid4().hex
        data, inferred = DATA_PREFIX + tag, INFERRED_PREFIX + tag
        failed = True
        try:
            patients_ntriples += canary()[0]
            if self.store:
                self.put_graph(data, patients_ntriples, replace=True, what="loading the patients")
            else:
                self.insert_data(data, patients_ntriples, "loading the patients")
            for rid, text in rule_updates(KB_GRAPH, data, inferred):
                self.run_update(text, f"rule {rid}")
            graphs = (KB_GRAPH, data, inferred)
            n = self.count(findings_query(graphs, count=True), "counting the findings")
            _, bindings = self.select(findings_query(graphs), "reading the findings", expect=n)
            rows = [tuple(b[v]["value"] if v in b else None for v in FINDINGS_VARS) for b in bindings]
            graph = ""
            lines = None
            if want_graph:
                n = self.count(inferred_query(inferred, count=True), "counting the inferred triples")
                lines = self.construct(inferred_query(inferred), "reading the inferred graph", expect=n)
            rows, lines = _check_canary(str(self), rows, lines)
            if lines is not None:
                graph = "\n".join(lines) + ("\n" if lines else "")
            failed = False
            return rows, graph
        finally:
            try:
                self.run_update(f"DROP SILENT GRAPH <{data}> ;\nDROP SILENT GRAPH <{inferred}>",
                                "dropping the batch's graphs")
            except B12kgError:
                if not failed:
                    raise

    def graphs(self) -> list[str]:
        """The named graphs the store holds (for checks and the tests)."""
        _, rows = self.select("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }", "listing the graphs")
        return sorted(r["g"]["value"] for r in rows)


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------
class RemoteEngine(Engine):
    """The rules as SPARQL 1.1 Updates inside a remote SPARQL 1.1 store (``Endpoint``)."""

    name = "remote"

    def __init__(self, endpoint: "Endpoint") -> None:
        self.endpoint = endpoint

    def reason(self, records: Sequence[PatientRecord], *, base: str = DEFAULT_BASE,
               want_graph: bool = False) -> Reasoned:
        if not records:
            return Reasoned({}, "")
        rows, graph = self.endpoint.reason(patients_ntriples(records, base), want_graph=want_graph)
        found, unassessed = findings_from_rows(rows, [patient_iri(r.id, base) for r in records])
        return Reasoned(found, graph, unassessed)

    def infer_graph(self, input_ntriples: str) -> str:
        return self.endpoint.reason(input_ntriples, want_graph=True)[1]


# ---------------------------------------------------------------------------------------------
# A local `oxigraph serve` (the demo, the tests and the benchmark start it here, and only here)
# ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def oxigraph_binary() -> str | None:
    """The `oxigraph` server of the `oxigraph` package: next to this Python, else on PATH."""
    import shutil

    local = Path(sys.executable).parent / "oxigraph"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("oxigraph")


def wait_until_up(url: str, proc=None, seconds: float = 30.0) -> None:
    """Wait until a SPARQL endpoint answers ASK {}."""
    import time

    ep = Endpoint(query=url, timeout=2.0)
    deadline = time.monotonic() + seconds
    while True:
        try:
            ep.ask("ASK {}")
            return
        except B12kgError as exc:
            if proc is not None and proc.poll() is not None:
                raise B12kgError(f"the SPARQL server exited with status {proc.returncode} before answering") from None
            if time.monotonic() > deadline:
                raise B12kgError(f"the SPARQL server did not answer within {seconds:g} s: {exc}") from None
            time.sleep(0.1)


def stop_process(proc, seconds: float = 10.0) -> None:
    """Stop a server process: terminate, and kill it if it has not ended within ``seconds``."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Server:
    url: str            # the base URL: /query, /update and /store below it
    pid: int


@contextmanager
def oxigraph_server(location: str | Path | None = None, *, binary: str | None = None,
                    log: str | Path | None = None, seconds: float = 30.0) -> Iterator[Server]:
    """Start `oxigraph serve` on a free port of 127.0.0.1 (with its store in ``location``, or in
    memory), wait until it answers, yield it, and stop it afterwards."""
    import subprocess

    server = binary or oxigraph_binary()
    if server is None:
        raise B12kgError("no oxigraph server binary: pip install 'b12kg[server]' (the oxigraph package)")
    port = free_port()
    cmd = [server, "serve", "--bind", f"127.0.0.1:{port}"]
    if location is not None:
        cmd[2:2] = ["--location", str(location)]
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/query", proc, seconds)
        yield Server(base, proc.pid)
    finally:
        stop_process(proc)
        if log is not None:
            out.close()


def demo(argv: list[str]) -> int:
    """`python -m b12kg.cohort.remote demo`: the example patients through an oxigraph server."""
    import argparse
    import shutil
    import subprocess
    import tempfile

    ap = argparse.ArgumentParser(prog="python -m b12kg.cohort.remote demo",
                                 description="assess the example patients inside an oxigraph SPARQL server")
    ap.add_argument("input", nargs="?", default=str(EXAMPLES_DIR), help="what to assess (default: the examples)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (store, outputs, server log)")
    args = ap.parse_args(argv)
    if oxigraph_binary() is None:
        print("no oxigraph server binary: pip install 'b12kg[server]' (the oxigraph package)", file=sys.stderr)
        return 2
    b12kg = Path(sys.executable).parent / "b12kg"
    cli = [str(b12kg)] if b12kg.is_file() else [sys.executable, "-c", "import sys; from b12kg.cli import main; sys.exit(main())"]
    tmp = Path(tempfile.mkdtemp(prefix="b12kg-demo-store-"))
    try:
        with oxigraph_server(tmp / "store", log=tmp / "server.log") as server:
            base = server.url
            print(f"oxigraph server {base} (pid {server.pid}, store in {tmp / 'store'})")
            cmd = cli + ["assess-cohort", args.input, "--out", str(tmp / "out"), "--endpoint", base + "/query",
                         "--update-endpoint", base + "/update", "--store-endpoint", base + "/store", "--quiet"]
            print("$ " + " ".join(["b12kg"] + cmd[len(cli):]), flush=True)
            rc = subprocess.call(cmd)
            graphs = Endpoint(query=base + "/query").graphs()
            print(f"graphs left in the store: {', '.join(graphs) or 'none'}")
            return rc
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "demo":
        print("usage: python -m b12kg.cohort.remote demo [INPUT] [--keep]", file=sys.stderr)
        return 2
    try:
        return demo(argv[1:])
    except B12kgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
