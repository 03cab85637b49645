"""Injection (issue 5): patient ids and free text with quotes, angle brackets, newlines,
backslashes, unicode and SPARQL fragments neither break an IRI nor change a query.

For each hostile string used as a patient id: the patient graph parses as N-Triples (rdflib),
holds exactly one b12:Patient whose b12:patientId literal is the id exactly, every IRI b12kg
minted is a valid IRI (no space, control character or any of <>"{}|^`\\), and the findings are
those of the same record with a plain id. The same holds through the cohort runner. Hostile
free text elsewhere (context words, symptoms, values, units, FHIR ids and texts) is either kept
as an escaped literal with no effect on the findings, or refused with an InputError naming the
field."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import b12kg
from b12kg import InputError
from b12kg.inputs.normalise import is_text
from b12kg.rdf.patient import DEFAULT_BASE

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "vendor" / "shared" / "cases" / "fhir" / "p21-dual-deficiency.bundle.json"
B12 = rdflib.Namespace("https://w3id.org/b12kg/")

HOSTILE = [
    '"', "'", '""', "\\", "\\\\", '\\"', "<", ">", "<>", "<http://x>", "<http://x> <http://y> <http://z> .",
    "> . } DROP ALL ; INSERT DATA {", '" . } DROP ALL ; INSERT DATA { <a> <b> "c', "x'; DROP GRAPH <urn:x> ; --",
    "} } ; DELETE WHERE { ?s ?p ?o } #", "?s ?p ?o", "$this", "@prefix x: <http://x/> .", "_:b0", "a\nb", "a\r\nb",
    "a\tb", "line\u2028sep", " leading and trailing ", "a b", "%", "%20", "%2F..%2F", "../../etc/passwd", "#frag",
    "?q=1&r=2", "a/b", "a:b", "{}|^`", "\x00", "a\x00b", "\x7f", "\x1b[31mred", "\u202eevil", "\ufeffbom",
    "e\u0301", "\U0001f9ea\U0001fa78", "\u65e5\u672c", "\u0645\u0631\u064a\u0636", "x" * 5000, "1", "0",
    "patient", "https://w3id.org/b12kg/data/patient/other",
    # SPARQL codepoint escapes written out (backslash, u, digits): harmless as N-Triples, and they
    # must stay harmless inside SPARQL text (the remote store's INSERT DATA)
    "\\u0022 . } ; DROP ALL ; #", "\\u005C", "\\U00000022", "\\\\u0022", "\\u003E",
]
BAD_IRI_CHARS = re.compile(r'[\x00-\x20<>"{}|^`\\\x7f]')


def _record(pid) -> dict:
    return {"id": pid, "patient": {"sex": "male", "age_years": 61},
            "observations": {"b12": {"value": 95, "unit": "pmol/L"}, "ferritin": {"value": 7, "unit": "ug/L"},
                             "hemoglobin": {"value": 11.1, "unit": "g/dL"}, "crp": {"value": 2, "unit": "mg/L"}},
            "symptoms": ["fatigue"], "context": ["metformin"]}


@pytest.fixture(scope="module")
def plain():
    return b12kg.assess(_record("plain"))


def _findings(a) -> list:
    """Findings without the patient's IRI (codes, rules, evidence values, thresholds)."""
    out = []
    for f in a.findings:
        out.append((f.code, f.rule_ids, tuple((e.analyte, e.value_as_given, e.unit_as_given, e.value_compared)
                                               for e in f.evidence),
                    tuple(t.iri for t in f.thresholds), f.based_on, f.context, f.actions))
    return out


def _iris(g: rdflib.Graph) -> set[str]:
    return {str(t) for triple in g for t in triple if isinstance(t, rdflib.URIRef)}


def check_patient_graph(a, pid: str) -> None:
    g = rdflib.Graph()
    g.parse(data=a.input_ntriples, format="nt")
    inferred = rdflib.Graph()
    inferred.parse(data=a.inferred_ntriples, format="nt")
    patients = list(g.subjects(rdflib.RDF.type, B12.Patient))
    assert len(patients) == 1
    assert str(patients[0]) == a.patient_iri == DEFAULT_BASE + quote(pid, safe="")
    ids = list(g.objects(patients[0], B12.patientId))
    assert ids == [rdflib.Literal(pid)] and str(ids[0]) == pid
    assert a.patient_id == pid
    for iri in _iris(g) | _iris(inferred):
        assert not BAD_IRI_CHARS.search(iri), iri
        assert iri.isascii(), iri
    # every minted IRI of this patient sits under its own IRI: the id cannot reach another's
    for iri in _iris(g) | _iris(inferred):
        if iri.startswith(DEFAULT_BASE):
            assert iri == a.patient_iri or iri.startswith(a.patient_iri + "/"), iri
    # and the JSON output carries the id as given
    assert json.loads(json.dumps(a.to_json(), ensure_ascii=False))["patient"] == pid


@pytest.mark.parametrize("pid", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_hostile_patient_id_round_trips_and_changes_nothing(pid, plain):
    a = b12kg.assess(_record(pid))
    check_patient_graph(a, pid)
    assert _findings(a) == _findings(plain)
    assert a.codes == plain.codes


def _valid_id(s: str) -> bool:
    return s.strip() != "" and is_text(s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=60).filter(_valid_id))
def test_any_text_as_patient_id_round_trips(pid):
    plain_codes = _plain_codes()
    a = b12kg.assess(_record(pid))
    check_patient_graph(a, pid)
    assert a.codes == plain_codes


_PLAIN: list = []


def _plain_codes():
    if not _PLAIN:
        _PLAIN.append(b12kg.assess(_record("plain")).codes)
    return _PLAIN[0]


@pytest.mark.parametrize("pid", ["", " ", "\n\t", None, [], {}, 1.5, True])
def test_blank_or_non_string_ids_are_refused_or_defaulted(pid):
    rec = _record(pid)
    if pid is None:
        assert b12kg.assess(rec).patient_id == "patient"      # no id: the documented default
        return
    with pytest.raises(InputError) as exc:
        b12kg.assess(rec)
    assert any(i.field == "id" for i in exc.value.issues)


@pytest.mark.parametrize("pid", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_id_with_a_lone_surrogate_is_refused_naming_the_field(pid):
    # Before the fix, JSON '"\\ud800"' as an id reached the IRI minting and raised UnicodeEncodeError.
    with pytest.raises(InputError) as exc:
        b12kg.assess(_record(pid))
    assert [i.field for i in exc.value.issues] == ["id"]


def test_context_word_with_a_lone_surrogate_is_refused_naming_the_field():
    # Before the fix, an unknown context word with a lone surrogate became the N-Triples escape
    # \uD800, which pyoxigraph refused with an uncaught SyntaxError.
    rec = _record("x")
    rec["context"] = ["metformin", "bad\ud800word"]
    with pytest.raises(InputError) as exc:
        b12kg.assess(rec)
    assert [i.field for i in exc.value.issues] == ["context[1]"]


def test_rdf_input_with_a_lone_surrogate_literal_is_refused(tmp_path):
    rec = b12kg.load_record(_record("x"))
    rec.unrecognised_contexts.append("zzz")     # as a system-export reader may keep one (case files refuse it)
    a = b12kg.assess(rec)
    p = tmp_path / "s.nt"
    p.write_text(a.input_ntriples.replace('"x"', '"\\uD800"'), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        b12kg.assess(p)
    assert "b12:patientId" in str(exc.value)
    p.write_text(a.input_ntriples.replace('"zzz"', '"\\uDC00"'), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        b12kg.assess(p)
    assert "b12:unrecognisedContext" in str(exc.value)


# ---------------------------------------------------------------------------------------------
# Free text elsewhere
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("word", HOSTILE[:30], ids=[repr(h)[:40] for h in HOSTILE[:30]])
def test_hostile_context_word_is_refused_naming_the_field_or_kept_as_an_escaped_literal(word, plain):
    # findings.md v2: an unknown word in a case file refuses the record, naming the field
    rec = _record("plain")
    rec["context"] = ["metformin", word]
    if word.strip():
        with pytest.raises(InputError) as exc:
            b12kg.assess(rec)
        assert [i.field for i in exc.value.issues] == ["context[1]"]
        str(exc.value)                                           # the message can be built
        r = b12kg.load_record(_record("plain") | {"context": ["metformin"]})
        r.unrecognised_contexts.append(word.strip())            # as a system-export reader may keep one
        a = b12kg.assess(r)
        check_patient_graph(a, "plain")
        g = rdflib.Graph().parse(data=a.input_ntriples, format="nt")
        kept = [str(o) for o in g.objects(rdflib.URIRef(a.patient_iri), B12.unrecognisedContext)]
        assert kept == [word.strip()]
    else:                                                        # a blank word is no context at all
        a = b12kg.assess(rec)
        check_patient_graph(a, "plain")
        assert _findings(a) == _findings(plain)


@pytest.mark.parametrize("word", HOSTILE[:30], ids=[repr(h)[:40] for h in HOSTILE[:30]])
def test_hostile_symptom_is_refused_naming_the_field(word, plain):
    rec = _record("plain")
    rec["symptoms"] = ["fatigue", word]
    if word.strip():                                           # findings.md v2: refused, naming the field
        with pytest.raises(InputError) as exc:
            b12kg.assess(rec)
        assert [i.field for i in exc.value.issues] == ["symptoms[1]"]
        str(exc.value)
    else:                                                      # a blank word is no symptom at all
        a = b12kg.assess(rec)
        check_patient_graph(a, "plain")
        assert _findings(a) == _findings(plain)


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
@pytest.mark.parametrize("where", ["value", "unit", "ref_high", "time", "comparator", "analyte"])
def test_hostile_result_fields_are_refused_naming_the_field(text, where):
    rec = _record("plain")
    if where == "analyte":
        rec["observations"][text] = {"value": 5, "unit": "ug/L"}
        field = f"observations.{text}"
    else:
        rec["observations"]["ferritin"][where] = text
        field = f"observations.ferritin.{where}"
    if where == "value" and text in ("1", "0"):
        rec["observations"]["ferritin"]["value"] = text + " ug/L"
    if (where, text) in (("ref_high", "1"), ("comparator", "<"), ("comparator", ">")):
        b12kg.assess(rec)                   # a valid value of this field: read, not refused (raises otherwise)
        return
    with pytest.raises(InputError) as exc:
        b12kg.assess(rec)
    assert any(i.field.startswith(field) for i in exc.value.issues), (field, [i.field for i in exc.value.issues])


# ---------------------------------------------------------------------------------------------
# FHIR
# ---------------------------------------------------------------------------------------------
def _bundle() -> dict:
    return json.loads(BUNDLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def plain_bundle():
    return b12kg.assess(_bundle())


@pytest.mark.parametrize("url", [h for h in HOSTILE if h.strip() and not re.search(r"\s", h)][:25])
def test_fhir_patient_fullurl_as_id_round_trips(url, plain_bundle):
    b = _bundle()
    del b["entry"][0]["resource"]["id"]
    b["entry"][0]["fullUrl"] = url
    for e in b["entry"][1:]:
        e["resource"]["subject"]["reference"] = url
    try:
        a = b12kg.assess(b)
    except InputError as exc:                   # the FHIR uri type refuses some strings
        assert all(i.field.startswith("Bundle.") for i in exc.issues)
        return
    if any("is not valid FHIR R4" in n for n in a.notes):   # an entry whose reference the uri type refuses
        return                                              # is listed and skipped
    check_patient_graph(a, url)
    assert _findings(a) == _findings(plain_bundle)


@pytest.mark.parametrize("text", HOSTILE[:20], ids=[repr(h)[:40] for h in HOSTILE[:20]])
def test_fhir_hostile_ids_and_texts(text, plain_bundle):
    b = _bundle()
    b["entry"][0]["resource"]["id"] = text          # Patient.id: FHIR's id type, [A-Za-z0-9-.]{1,64}
    try:
        b12kg.assess(b)
    except InputError as exc:
        assert any(i.field.startswith("Bundle.entry[0].resource(Patient/?).id") for i in exc.issues)
    b = _bundle()
    b["entry"][1]["resource"]["code"]["text"] = text  # free text of an Observation: never read
    b["entry"][1]["resource"]["code"]["coding"][0]["display"] = text
    a = b12kg.assess(b)                             # an Observation never makes the record unusable
    if _findings(a) != _findings(plain_bundle):     # the FHIR string type refuses some texts: that
        assert any(n.startswith("Bundle.entry[1].resource(Observation/obs-1) is not valid FHIR R4")  # Observation
                   for n in a.notes)                # is listed and skipped


# ---------------------------------------------------------------------------------------------
# Through the cohort runner: the same ids in one batch, one store
# ---------------------------------------------------------------------------------------------
def test_hostile_ids_in_a_cohort_csv(tmp_path, plain):
    from b12kg.cohort import assess_cohort
    from b12kg.inputs.csv import case_to_row, csv_columns

    ids = [h for h in HOSTILE if h.strip() and h == h.strip()] + ["plain"]
    path = tmp_path / "hostile.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=csv_columns())
        w.writeheader()
        for pid in ids:
            w.writerow(case_to_row(_record(pid)))
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (len(ids), len(ids), 0)
    # NDJSON lines end at "\n" only: str.splitlines() would also split at U+2028 inside a string
    text = (tmp_path / "out" / "findings.ndjson").read_text(encoding="utf-8")
    lines = [json.loads(x) for x in text.split("\n") if x]
    assert [x["patient"] for x in lines] == ids
    codes = {x["patient"]: sorted(f["code"] for f in x["findings"]) for x in lines}
    assert all(c == sorted(plain.codes) for c in codes.values()), codes


# ---------------------------------------------------------------------------------------------
# Inside SPARQL text: the remote store loads the escaped N-Triples with INSERT DATA
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pid", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_patient_graph_inside_insert_data_is_the_same_graph(pid):
    import pyoxigraph as ox

    from b12kg.rdf.patient import record_to_ntriples

    rec = b12kg.load_record(_record(pid) | {"context": ["metformin"]})
    if pid.strip():
        rec.unrecognised_contexts.append(pid.strip())          # as a system-export reader may keep one
    nt = record_to_ntriples(rec)
    store = ox.Store()
    sentinel = ox.Quad(ox.NamedNode("urn:s"), ox.NamedNode("urn:p"), ox.Literal("kept"), ox.DefaultGraph())
    store.add(sentinel)
    store.update(f"INSERT DATA {{ GRAPH <urn:b12kg:graph:data:test> {{\n{nt}}} }}")
    g = ox.NamedNode("urn:b12kg:graph:data:test")
    inserted = {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, g)}
    loaded = ox.Store()                      # the same text loaded as N-Triples (the store normalises decimals)
    loaded.load(nt.encode(), format=ox.RdfFormat.N_TRIPLES)
    expected = {(q.subject, q.predicate, q.object) for q in loaded}
    assert inserted == expected
    assert set(store) == {sentinel} | {ox.Quad(*t, g) for t in expected}
    ids = [q.object.value for q in store.quads_for_pattern(None, ox.NamedNode("https://w3id.org/b12kg/patientId"), None, g)]
    assert ids == [pid]
