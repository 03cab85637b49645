"""External codes (SKOS mappings) are only those clinical-reference.md verifies: every mapped code is
written in the reference sheet, never where it is tagged UNVERIFIED, and marked V2 where the sheet
tags it V2 only. HPO mappings that cite loinc2hpo agree with the vendored loinc2hpo table."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import OWL, RDF, SKOS

from b12kg.kb.build import merged_graph

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "vendor" / "shared" / "spec" / "clinical-reference.md"
LOINC2HPO = REPO / "data" / "loinc2hpo" / "loinc2hpo-annotations.tsv"
B12 = rdflib.Namespace("https://w3id.org/b12kg/")
MATCHES = (SKOS.exactMatch, SKOS.closeMatch, SKOS.broadMatch, SKOS.narrowMatch, SKOS.relatedMatch)
IRI_FORMS = [  # IRI convention of mappings.ttl -> the code as the reference sheet writes it
    (re.compile(r"^http://purl\.obolibrary\.org/obo/([A-Za-z]+)_(\w+)$"), lambda m: f"{m[1]}:{m[2]}"),
    (re.compile(r"^http://snomed\.info/id/(\d+)$"), lambda m: m[1]),
    (re.compile(r"^http://hl7\.org/fhir/sid/icd-10/([A-Z]\d\d(?:\.\d+)?)$"), lambda m: m[1]),
    (re.compile(r"^https://loinc\.org/(\d+-\d)/$"), lambda m: m[1]),
]


def code_of(iri: str) -> str:
    for pattern, fmt in IRI_FORMS:
        m = pattern.match(iri)
        if m:
            return fmt(m)
    raise AssertionError(f"mapping target {iri} follows none of the IRI conventions of mappings.ttl")


def _mappings(graph: rdflib.Graph) -> list[tuple]:
    out = []
    for p in MATCHES:
        for s, o in graph.subject_objects(p):
            if str(s).startswith(str(B12)):
                axioms = [a for a in graph.subjects(OWL.annotatedSource, s)
                          if (a, OWL.annotatedProperty, p) in graph and (a, OWL.annotatedTarget, o) in graph]
                out.append((s, p, o, axioms))
    return out


@pytest.fixture(scope="module")
def graph() -> rdflib.Graph:
    return merged_graph()


def _places(code: str) -> list[dict]:
    """Where the sheet writes the code. For each place: ``own`` is the clause holding the code (a
    table cell or a sentence, cut at ';' and '. '); ``tag`` is what the row's last column (tag or
    source) says about it: the clause of that cell naming the code if there is one, else the whole
    cell; ``table`` and ``in_tag_cell`` say where the code sits. A table has a tag column when the
    header of its last column says "tag" or "note" (the MONDO/DOID and HPO tables have none)."""
    found = []
    pat = re.compile(rf"(?<![\w.:-]){re.escape(code)}(?![\w-]|\.\d)")

    def clauses(text: str) -> list[str]:
        return re.split(r";|\.\s", text)

    has_tag_column = False
    previous = ""
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            # a table's header row: its last column is a tag column only if it says so
            last = line.strip().strip("|").split("|")[-1].lower()
            has_tag_column = "tag" in last or "note" in last
        previous = line
        if not pat.search(line):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            in_tag = [seg for seg in clauses(cells[-1]) if pat.search(seg)]
            tag = (in_tag[0] if in_tag else cells[-1]) if has_tag_column else ""
            for i, cell in enumerate(cells):
                for seg in clauses(cell):
                    if pat.search(seg):
                        found.append({"own": seg, "tag": tag, "table": True, "in_tag_cell": i == len(cells) - 1})
        else:
            for seg in clauses(line):
                if pat.search(seg):
                    found.append({"own": seg, "tag": "", "table": False, "in_tag_cell": False})
    return found


def _unverified(place: dict) -> bool:
    tag = place["tag"].upper()
    return "UNVERIFIED" in place["own"].upper() or ("UNVERIFIED" in tag and "[V1" not in tag and "[V2" not in tag)


def _defining_place(places: list[dict]) -> dict:
    """The place that introduces the code: a table row where it is the subject, else any table row,
    else a sentence."""
    for wanted in (lambda p: p["table"] and not p["in_tag_cell"], lambda p: p["table"], lambda p: True):
        for p in places:
            if wanted(p):
                return p
    raise AssertionError("no place")


def test_there_are_mappings(graph) -> None:
    assert len(_mappings(graph)) > 40


def _v2_levels() -> dict[str, str]:
    """Codes checked for findings.md version 2 (docs/verification-v2.tsv): code -> level reached."""
    import csv

    path = Path(__file__).resolve().parents[1] / "docs" / "verification-v2.tsv"
    with open(path, encoding="utf-8", newline="") as fh:
        return {r["value"]: r["level"] for r in csv.DictReader(fh, delimiter="\t")
                if r["kind"] in ("snomed", "loinc", "atc", "rxnorm")}


def test_every_mapped_code_is_verified_in_the_reference_sheet(graph) -> None:
    """Every mapped code is verified, in clinical-reference.md or (codes added for findings.md
    version 2) in docs/verification-v2.tsv, at the level its mapping states; never UNVERIFIED."""
    problems = []
    v2 = _v2_levels()
    for s, p, o, axioms in _mappings(graph):
        code = code_of(str(o))
        places = _places(code)
        levels = {str(v) for a in axioms for v in graph.objects(a, B12.verification)}
        if len(axioms) != 1:
            problems.append(f"{s} {p} {o}: expected one annotated axiom, found {len(axioms)}")
        if not places and code in v2:
            if v2[code] not in ("V1", "V2") or levels != {v2[code]}:
                problems.append(f"{code} ({s}) is {v2[code]} in docs/verification-v2.tsv but the mapping says "
                                f"{levels or 'nothing'}")
            continue
        if not places:
            problems.append(f"{code} ({s}) is not in clinical-reference.md nor docs/verification-v2.tsv")
            continue
        if any(_unverified(place) for place in places):
            problems.append(f"{code} ({s}) is tagged UNVERIFIED where the sheet writes it")
        d = _defining_place(places)
        v2_only = "[V2" in d["own"] or (
            "[V1" not in d["own"] and d["table"] and "[V2" in d["tag"] and "[V1" not in d["tag"])
        if v2_only and levels != {"V2"}:
            problems.append(f"{code} ({s}) is V2 in the sheet but the mapping says {levels or 'nothing'}")
        v1_only = "[V1" in d["own"] or (
            "[V2" not in d["own"] and d["table"] and "[V1" in d["tag"] and "[V2" not in d["tag"])
        if v1_only and levels != {"V1"}:
            problems.append(f"{code} ({s}) is V1 in the sheet but the mapping says {levels or 'nothing'}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("code", ["DOID:11758", "CHEBI:18248", "GO:0055072", "RO:0002200", "5140-4"])
def test_the_sheet_reading_sees_unverified_codes(code: str) -> None:
    """Negative control for the reading above: codes the sheet marks UNVERIFIED are seen as such."""
    assert any(_unverified(p) for p in _places(code))


def test_loinc2hpo_rows_agree(graph) -> None:
    with LOINC2HPO.open(encoding="utf-8") as fh:
        table = {(r["loincId"], r["outcome"]): r["hpoTermId"] for r in csv.DictReader(fh, delimiter="\t")}
    checked = 0
    for s, p, o, axioms in _mappings(graph):
        for a in axioms:
            for row in graph.objects(a, B12.loinc2hpoRow):
                loinc, outcome = str(row).split()
                assert table.get((loinc, outcome)) == code_of(str(o)), f"{s}: loinc2hpo {row} gives {table.get((loinc, outcome))}, not {o}"
                checked += 1
    assert checked >= 5


def test_loinc2hpo_license_travels_with_the_data() -> None:
    assert (LOINC2HPO.parent / "License.md").is_file()


def test_mapped_loinc_codes_are_the_tests_own(graph) -> None:
    """A LOINC mapping of a lab test is one of the codes the test accepts (b12:loinc)."""
    for s, p, o, _ in _mappings(graph):
        if str(o).startswith("https://loinc.org/"):
            accepted = {str(c) for c in graph.objects(s, B12.loinc)}
            assert code_of(str(o)) in accepted, f"{s} maps to {o} but does not accept that code"
            if p == SKOS.exactMatch:
                assert [str(c) for c in graph.objects(s, B12.preferredLoinc)] == [code_of(str(o))]
