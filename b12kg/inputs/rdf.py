"""Patient records given as RDF (Turtle, N-Triples, JSON-LD) in b12kg's own patient vocabulary.

The graph is parsed without any network access (a JSON-LD document whose @context is not inline
is refused; owl:imports are never followed), checked against the SHACL shapes of
rules/shapes/patient.shapes.ttl, and then read into a PatientRecord through the same loader checks
as every other input: the values and units as given are re-normalised, so values 'as compared'
are always computed by b12kg, never taken from the input."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import rdflib
from rdflib.namespace import RDF

from .. import paths
from ..errors import InputError, Issue
from ..kb import parse_turtle, vocabulary
from ..rdf.terms import B12, INPUT_BASE, SH, TRIMESTER_IRIS, postpartum_status_iri
from .files import load_json, read_bytes
from .normalise import (NOT_TEXT, add_notes, finish, is_text, normalise_result, parse_decimal, parse_time, parse_value,
                        shown_text)
from .record import (MAX_AGE, MAX_DECIMAL_PLACES, MAX_DIGITS, MAX_GESTATIONAL_WEEKS, MAX_RESULTS_PER_RECORD, PatientRecord,
                     Result)
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


def _undefined_jsonld_terms(doc: Any) -> list[tuple[str, str]]:
    """(where, key) of every key of a JSON-LD document that is neither a keyword, an IRI or compact
    IRI (holding ':'), nor a term defined in an @context of the document (a simple over-approximation
    of scoped contexts: a term defined anywhere counts as defined)."""
    defined: set[str] = set()
    has_vocab = False

    def contexts(node: Any) -> None:
        nonlocal has_vocab
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "@context":
                    for c in v if isinstance(v, list) else [v]:
                        if isinstance(c, dict):
                            defined.update(c)
                            has_vocab = has_vocab or "@vocab" in c
                contexts(v)
        elif isinstance(node, list):
            for v in node:
                contexts(v)

    contexts(doc)
    if has_vocab:          # every term expands: an unknown one is refused as an unknown property
        return []
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "@context":
                    continue
                here = f"{path}.{k}" if path else k
                if not k.startswith("@") and ":" not in k and k not in defined:
                    found.append((path or "document", k))
                walk(v, here)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(doc, "")
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
        unknown = _undefined_jsonld_terms(doc)
        if unknown:
            raise InputError([Issue(where, term, "is not a term of the document's @context nor an IRI: JSON-LD "
                                    "processing would drop it and what it holds without a word")
                              for where, term in unknown[:20]], source=source)
    elif isinstance(data, bytes) and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]          # a UTF-8 byte-order mark (Windows editors write one): not part of the text
    elif isinstance(data, str) and data.startswith("\ufeff"):
        data = data[1:]
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
    data = read_bytes(path)
    if len(data) > MAX_RDF_BYTES:
        raise InputError([Issue("file", str(path), f"is {len(data)} bytes, over the {MAX_RDF_BYTES} byte limit for one "
                                "patient given as RDF (rdflib holds about 100 times the text in memory)")])
    return record_from_graph(parse_rdf(data, fmt, source=str(path)), source=str(path), profile=profile)


# Bounds of an RDF patient document (bench/rdf_input.py measures them): rdflib keeps about 100
# bytes of memory per byte of Turtle (29 MB took 3.2 GB and 80 s), so one patient's document is
# limited to MAX_RDF_BYTES (its 10,000 results, as b12kg writes them, take about 2.6 MB); the SHACL
# check of "one current result per test" grows faster than the square of the current results of
# one test (400 took 68 s), so that is checked first, in linear time, as is the result count.
MAX_RDF_BYTES = 8 * 1024 * 1024


def _bounded_graph(g: rdflib.Graph, *, source: str | None) -> None:
    issues = []
    for p in g.subjects(RDF.type, B12.Patient):
        n = sum(1 for _ in g.objects(p, B12.hasResult)) + sum(1 for _ in g.objects(p, B12.hasSupersededResult))
        if n > MAX_RESULTS_PER_RECORD:
            issues.append(Issue(f"<{p}>", f"{n} results", f"are more than the {MAX_RESULTS_PER_RECORD} results one record "
                                "may hold"))
            continue
        by_test: dict[str, int] = {}
        for r in g.objects(p, B12.hasResult):
            t = str(g.value(r, B12.test))
            by_test[t] = by_test.get(t, 0) + 1
        for t, k in sorted(by_test.items()):
            if k > 1:
                issues.append(Issue(f"<{p}> b12:hasResult", f"{k} current results", f"of the test <{t}>: at most one "
                                    "result of a test is current (link the others with b12:hasSupersededResult)"))
    if issues:
        raise InputError(issues, source=source)


def record_from_graph(g: rdflib.Graph, *, source: str | None = None, profile: str | None = None) -> PatientRecord:
    _bounded_graph(g, source=source)
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
    rec.age_years = _number(g.value(p, B12.ageYears), "b12:ageYears", Decimal(0), MAX_AGE, issues)
    preg = g.value(p, B12.pregnancyStatus)
    if preg is not None and g.value(p, B12.pregnancyStatusAssumed) is None:
        rec.pregnant = preg == B12.Pregnant
    rec.gestational_weeks = _number(g.value(p, B12.gestationalWeeks), "b12:gestationalWeeks", Decimal(0),
                                    MAX_GESTATIONAL_WEEKS + 1, issues)
    unread, unread_notes = _unread_terms(g, p)
    issues.extend(unread)
    rec.notes.extend(unread_notes)
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
        if loinc is not None and str(loinc) not in info.loinc:
            refused = vocab.refused_codes.get(str(loinc))
            issues.append(Issue(f"{fld} b12:loincCode", str(loinc), f"is refused: {refused[1]}" if refused else
                                f"is not a LOINC code of {info.key} (its codes: {', '.join(info.loinc) or 'none'})"))
            continue
        comparator = g.value(r, B12.comparator)
        if comparator is not None and not info.qualitative and str(comparator) != "=":
            own = parse_value(value)
            if own is None or own[0] == "=":
                value = f"{comparator}{value}"
            elif own[0] != str(comparator):
                issues.append(Issue(f"{fld} b12:comparator", str(comparator), f"conflicts with the comparator in "
                                    f"b12:valueAsGiven {value!r}"))
                continue
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
    trimester = g.value(p, B12.trimester)
    if trimester is not None and not issues and str(trimester) != TRIMESTER_IRIS[rec.trimester]:
        issues.append(Issue("b12:trimester", str(trimester), f"disagrees with the pregnancy status and gestational weeks "
                            f"given, which make it <{TRIMESTER_IRIS[rec.trimester]}> (b12kg derives the trimester from "
                            "b12:gestationalWeeks: give the weeks)"))
    postpartum = g.value(p, B12.postpartumStatus)
    said = postpartum_status_iri(rec.contexts)
    if postpartum is not None and not issues and str(postpartum) != said:
        issues.append(Issue("b12:postpartumStatus", str(postpartum), f"disagrees with the contexts given, which make it "
                            f"<{said}> (b12kg derives it from b12:hasContext postpartum: give the context)"))
    if rec.pregnant and "postpartum" in rec.contexts:
        issues.append(Issue("b12:hasContext", "postpartum", "is recorded for a patient recorded as pregnant: "
                            "a record both pregnant and postpartum is refused (findings.md v2)"))
    if issues:
        raise InputError(issues, source=source)
    add_notes(rec)
    return rec


def _number(lit: Any, fld: str, low: Decimal, under: Decimal, issues: list[Issue]) -> Decimal | None:
    """An age or a number of weeks as an exact, bounded decimal (parse_decimal), from low to under
    ``under``; else an issue: an age of 30 decimal places made every comparison fail silently."""
    if lit is None:
        return None
    d = parse_decimal(str(lit)) if isinstance(lit, rdflib.Literal) else None
    if d is None or not low <= d < under:
        issues.append(Issue(fld, str(lit), f"is not a number from {low} to under {under} of at most "
                            f"{MAX_DECIMAL_PLACES} decimal places and {MAX_DIGITS} significant digits"))
        return None
    return d


# What the reader reads, by kind of node: any other property, or a node that is neither the
# patient nor linked from it, is refused by name (issue 11: unknown terms and unlinked results
# were dropped without a word). The derived values of a graph b12kg wrote (comparedValue, ...)
# are allowed and recomputed, never read.
_PATIENT_TERMS = frozenset(B12[t] for t in (
    "patientId", "profile", "sex", "pregnancyStatus", "trimester", "ageStatus", "pregnancyStatusAssumed", "ageYears",
    "postpartumStatus",
    "gestationalWeeks", "unrecognisedContext", "hasResult", "hasSupersededResult", "hasUnusableResult",
    "hasUnmappedClinicalCode", "hasSymptom", "hasContext")) | {RDF.type}
_RESULT_TERMS = frozenset(B12[t] for t in (
    "test", "valueAsGiven", "sourceRecord", "qualitativeValue", "comparator", "comparedValue", "comparedUnit",
    "unitAsGiven", "referenceHighCompared", "referenceHighAsGiven", "referenceLowCompared", "referenceLowAsGiven",
    "effectiveTime", "loincCode", "derivedFromResult", "derivationMethod")) | {RDF.type}
_UNUSABLE_TERMS = frozenset(B12[t] for t in ("test", "unusableReason")) | {RDF.type}


def _unread_terms(g: rdflib.Graph, p: Any) -> tuple[list[Issue], list[str]]:
    """(issues, notes) on what the reader would not read. In b12kg's namespace (a misspelt property,
    a b12:LabResult not linked from the patient) it is refused: a result or a fact the rules need
    would be lost. Other vocabularies (owl:imports, a label) are named in the notes, unread."""
    allowed = {p: _PATIENT_TERMS}
    for link, terms in ((B12.hasResult, _RESULT_TERMS), (B12.hasSupersededResult, _RESULT_TERMS),
                        (B12.hasUnusableResult, _UNUSABLE_TERMS)):
        for node in g.objects(p, link):
            allowed[node] = terms
    ours = str(B12)
    issues: list[Issue] = []
    foreign: list[str] = []
    unlinked: dict[Any, bool] = {}
    for s_, pred, o in sorted(g, key=lambda t: (str(t[0]), str(t[1]), str(t[2]))):
        terms = allowed.get(s_)
        mine = str(pred).startswith(ours) or (pred == RDF.type and str(o).startswith(ours))
        if terms is None:
            unlinked[s_] = unlinked.get(s_, False) or mine
        elif pred not in terms:
            if str(pred).startswith(ours):
                issues.append(Issue(f"<{s_}>", str(pred), "is not a property b12kg reads on this node, so what it "
                                    "says would be dropped"))
            else:
                foreign.append(f"<{s_}> <{pred}>")
    for node in sorted((n for n, mine in unlinked.items() if mine), key=str)[:20]:
        issues.append(Issue(f"<{node}>", None, "is not the patient nor linked from it (b12:hasResult, "
                            "b12:hasSupersededResult, b12:hasUnusableResult), so what it says would be dropped"))
    foreign += [f"<{n}>" for n, mine in sorted(unlinked.items(), key=lambda x: str(x[0])) if not mine]
    notes = []
    if foreign:
        shown = ", ".join(sorted(set(foreign))[:5])
        more = len(set(foreign)) - 5
        notes.append(f"Not read by b12kg (not in its patient vocabulary): {shown}"
                     + (f" and {more} more" if more > 0 else "") + ".")
    return issues[:50], notes


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
