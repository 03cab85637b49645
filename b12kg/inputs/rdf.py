"""Patient records given as RDF (Turtle, N-Triples, JSON-LD) in b12kg's own patient vocabulary.

The graph is parsed without any network access (a JSON-LD document whose @context is not inline
is refused; owl:imports are never followed), checked against the SHACL shapes of
rules/shapes/patient.shapes.ttl, and then read into a PatientRecord through the same loader checks
as every other input: the values and units as given are re-normalised, so values 'as compared'
are always computed by b12kg, never taken from the input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import rdflib
from rdflib.namespace import RDF

from .. import paths
from ..errors import InputError, Issue
from ..kb import parse_turtle, vocabulary
from ..rdf.terms import B12, INPUT_BASE, SH
from .files import load_json, read_bytes
from .normalise import NOT_TEXT, add_notes, finish, is_text, normalise_result, parse_time, shown_text
from .record import PatientRecord, Result
from ..cache import import_once, once

_FORMATS = {".ttl": "turtle", ".nt": "nt", ".jsonld": "json-ld"}


@once
def shapes_graph() -> rdflib.Graph:
    return parse_turtle(sorted((paths.RULES_DIR / "shapes").glob("*.ttl")))


def _remote_contexts(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else k
            if k in ("@context", "@import"):
                items = v if isinstance(v, list) else [v]
                for it in items:
                    if isinstance(it, str):
                        found.append(f"{here}: {it}")
                    elif isinstance(it, dict) and "@import" in it:
                        found.append(f"{here}.@import: {it['@import']}")
            found.extend(_remote_contexts(v, here))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.extend(_remote_contexts(v, f"{path}[{i}]"))
    return found


def parse_rdf(data: str | bytes, fmt: str, *, source: str | None = None) -> rdflib.Graph:
    """Parse RDF text with no network access."""
    if fmt == "json-ld":
        try:
            doc = load_json(data)
        except (ValueError, RecursionError) as exc:
            raise InputError([Issue("document", source, f"is not valid JSON: {exc}")], source=source) from None
        remote = _remote_contexts(doc)
        if remote:
            raise InputError([Issue(r.split(": ", 1)[0], r.split(": ", 1)[1], "is a remote JSON-LD context: b12kg never "
                                    "fetches anything; put the context inline") for r in remote[:5]], source=source)
    g = rdflib.Graph()
    try:
        g.parse(data=data, format=fmt)
    except Exception as exc:  # the rdflib parsers raise many kinds
        problem = str(exc)[:300]
        where = "document"
        if fmt in _OX_FORMATS and not re.search(r"line \d+", problem):
            problem = _syntax_error_place(data, fmt) or problem
        elif fmt == "json-ld":
            where = _jsonld_error_place(data) or where
        raise InputError([Issue(where, source, f"is not valid {fmt}: {problem}")], source=source) from None
    return g


def _jsonld_error_place(data: str | bytes) -> str | None:
    """The part of well-formed JSON that JSON-LD processing fails on ('@context', '@graph[3]',
    or a key of the top node), found by processing each part alone with the document's context;
    rdflib's JSON-LD errors name no place."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(doc, list):
        doc = {"@graph": doc}
    if not isinstance(doc, dict):
        return "document (not a JSON object or array)"
    ctx = {"@context": doc["@context"]} if "@context" in doc else {}

    def fails(part: dict) -> bool:
        try:
            rdflib.Graph().parse(data=json.dumps(part), format="json-ld")
        except Exception:  # any failure of this part alone
            return True
        return False

    if ctx and fails(ctx):
        return "@context"
    graph = doc.get("@graph")
    if isinstance(graph, list):
        for i, node in enumerate(graph):
            if fails({**ctx, "@graph": [node]}):
                return f"@graph[{i}]"
    for key, value in doc.items():
        if key not in ("@context", "@graph") and fails({**ctx, "@id": doc.get("@id", "urn:x"), key: value}):
            return key
    return None


_OX_FORMATS = {"turtle": "TURTLE", "nt": "N_TRIPLES"}


def _syntax_error_place(data: str | bytes, fmt: str) -> str | None:
    """Where Turtle or N-Triples text fails to parse, from pyoxigraph's parser (its errors give a
    line and columns; some of rdflib's give none), or None if it parses there."""
    import pyoxigraph as ox

    try:
        for _ in ox.parse(data.encode("utf-8") if isinstance(data, str) else data,
                          format=getattr(ox.RdfFormat, _OX_FORMATS[fmt]), base_iri=INPUT_BASE):
            pass
    except Exception as exc:  # pyoxigraph's SyntaxError, and ValueError for bytes that are not UTF-8
        return str(exc)[:300]
    return None


def validate_shapes(g: rdflib.Graph, *, source: str | None = None) -> None:
    """Refuse a patient graph that does not conform to the patient shapes, naming each violation."""
    pyshacl = import_once("pyshacl")
    conforms, report, _ = pyshacl.validate(g, shacl_graph=shapes_graph(), advanced=True, inference="none",
                                           do_owl_imports=False, allow_warnings=True)
    if conforms:
        return
    issues = []
    for res in report.subjects(RDF.type, SH.ValidationResult):
        focus = report.value(res, SH.focusNode)
        msg = report.value(res, SH.resultMessage)
        val = report.value(res, SH.value)
        issues.append(Issue(f"<{focus}>", None if val is None else str(val), str(msg)))
    issues.sort(key=lambda i: (i.field, i.problem))
    raise InputError(issues or [Issue("graph", None, "does not conform to the patient shapes")], source=source)


def record_from_rdf_file(path: Path, *, profile: str | None = None) -> PatientRecord:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError([Issue("file", str(path), "is not .ttl, .nt or .jsonld (RDF/XML is not read)")])
    return record_from_graph(parse_rdf(read_bytes(path), fmt, source=str(path)), source=str(path), profile=profile)


def record_from_graph(g: rdflib.Graph, *, source: str | None = None, profile: str | None = None) -> PatientRecord:
    validate_shapes(g, source=source)
    patients = list(g.subjects(RDF.type, B12.Patient))
    if len(patients) != 1:
        raise InputError([Issue("b12:Patient", f"{len(patients)} patients", "must be exactly one patient per document")],
                         source=source)
    vocab = vocabulary()
    p = patients[0]
    issues: list[Issue] = []
    rec = PatientRecord(id=str(g.value(p, B12.patientId)), source=source)
    if not is_text(rec.id):
        issues.append(Issue("b12:patientId", shown_text(rec.id), NOT_TEXT))
    sex = g.value(p, B12.sex)
    rec.sex = {B12.Female: "female", B12.Male: "male"}.get(sex)
    age = g.value(p, B12.ageYears)
    if age is not None:
        rec.age_years = age.toPython()
    preg = g.value(p, B12.pregnancyStatus)
    if preg is not None and g.value(p, B12.pregnancyStatusAssumed) is None:
        rec.pregnant = preg == B12.Pregnant
    gw = g.value(p, B12.gestationalWeeks)
    if gw is not None:
        rec.gestational_weeks = gw.toPython()
    prof = g.value(p, B12.profile)
    names = {v: k for k, v in vocab.profiles.items()}
    rec.profile = profile or names.get(str(prof), "default")
    by_iri = {info.iri: info for info in vocab.tests_by_key.values()}
    candidates: dict[str, list[Result]] = {}
    for i, r in enumerate(sorted(g.objects(p, B12.hasResult), key=str)):
        if g.value(r, B12.derivedFromResult) is not None:
            continue  # a derived result (TSAT from iron and TIBC) is recomputed, never read
        if (r, RDF.type, B12.UnusableResult) in g:
            continue  # an unusable result, read below through b12:hasUnusableResult
        test = g.value(r, B12.test)
        fld = f"<{r}>"
        info = by_iri.get(str(test))
        if info is None:
            issues.append(Issue(f"{fld} b12:test", str(test), "is not a laboratory test of the ontology"))
            continue
        when = parse_time(str(g.value(r, B12.effectiveTime)) if g.value(r, B12.effectiveTime) is not None else None,
                           f"{fld} b12:effectiveTime", issues)
        ref = g.value(r, B12.referenceHighAsGiven)
        ref_low = g.value(r, B12.referenceLowAsGiven)
        qual = g.value(r, B12.qualitativeValue)
        value: Any = str(g.value(r, B12.valueAsGiven))
        if info.qualitative and qual is not None:
            value = {str(v): k for k, v in vocab.qualitative_values.items()}.get(str(qual), value)
        unit = g.value(r, B12.unitAsGiven)
        given_source = g.value(r, B12.sourceRecord)
        loinc = g.value(r, B12.loincCode)
        res = normalise_result(info, value=value, unit=None if unit is None else str(unit), fld=fld, issues=issues,
                               ref_high=None if ref is None else str(ref),
                               ref_low=None if ref_low is None else str(ref_low), time=when, vocab=vocab,
                               loinc=None if loinc is None else str(loinc),
                               source=str(given_source) if given_source is not None else str(r))
        if res is not None:
            candidates.setdefault(info.key, []).append(res)
    finish(rec, candidates, issues, vocab)
    sym = {v: k for k, v in vocab.symptoms.items()}
    ctx = {v: k for k, v in vocab.contexts.items()}
    for s in g.objects(p, B12.hasSymptom):
        (rec.symptoms if str(s) in sym else rec.unrecognised_symptoms).append(sym.get(str(s), str(s)))
    for c in g.objects(p, B12.hasContext):
        (rec.contexts if str(c) in ctx else rec.unrecognised_contexts).append(ctx.get(str(c), str(c)))
    for w in g.objects(p, B12.unrecognisedContext):
        if not is_text(str(w)):
            issues.append(Issue("b12:unrecognisedContext", shown_text(str(w)), NOT_TEXT))
            continue
        rec.unrecognised_contexts.append(str(w))
    rec.symptoms.sort(); rec.contexts.sort(); rec.unrecognised_symptoms.sort(); rec.unrecognised_contexts.sort()
    by_test = {info.iri: key for key, info in vocab.tests_by_key.items()}
    for u in g.objects(p, B12.hasUnusableResult):
        key = by_test.get(str(g.value(u, B12.test)))
        if key is not None:
            rec.unusable_results[key] = str(g.value(u, B12.unusableReason) or "")
    rec.unmapped_codes = sorted(str(c) for c in g.objects(p, B12.hasUnmappedClinicalCode))
    if rec.pregnant and "postpartum" in rec.contexts:
        issues.append(Issue("b12:hasContext", "postpartum", "is recorded for a patient recorded as pregnant: "
                            "a record both pregnant and postpartum is refused (findings.md v2)"))
    if issues:
        raise InputError(issues, source=source)
    add_notes(rec)
    return rec


def records_from_ntriples(text: str) -> tuple[list[PatientRecord], str]:
    """The patient of a patient graph written by ``b12kg.rdf.patient`` (N-Triples), and the base
    its patient IRI was minted with."""
    g = parse_rdf(text, "nt")
    rec = record_from_graph(g)
    iri = str(next(iter(g.subjects(RDF.type, B12.Patient))))
    suffix = quote(rec.id, safe="")
    if not iri.endswith(suffix):
        raise InputError([Issue("b12:Patient", iri, f"is not an IRI minted from the patient id {rec.id!r}")])
    return [rec], iri[: -len(suffix)]
