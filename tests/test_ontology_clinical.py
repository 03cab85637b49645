"""Context words and symptoms of findings.md exist with their exact keywords and the cause
categories the rules read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import RDF

from b12kg.kb.build import merged_graph

REPO = Path(__file__).resolve().parents[1]
FINDINGS_MD = REPO / "vendor" / "shared" / "spec" / "findings.md"
B12 = rdflib.Namespace("https://w3id.org/b12kg/")

# how findings.md words an effect -> the cause category individual
EFFECT_CATEGORY = {
    "dietary cause": B12.DietaryCauseCategory,
    "drug cause": B12.DrugCauseCategory,
    "malabsorption cause": B12.MalabsorptionCauseCategory,
    "ferritin confounded": B12.FerritinConfounderCategory,
}


def context_table() -> dict[str, str]:
    """{context word: effect} from the 'context | effect' table of findings.md."""
    out: dict[str, str] = {}
    in_table = False
    for line in FINDINGS_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith("context"):      # "context (aliases)" in version 2
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set("-: ") or cells[0].startswith("any other"):
            continue
        words = re.sub(r"\(.*?\)", "", cells[0])
        for w in words.split(","):          # a word in two rows (crohns-disease) has both effects
            out[w.strip()] = (out.get(w.strip(), "") + " " + cells[1]).strip()
    return out


CONTEXT = context_table()


@pytest.fixture(scope="module")
def graph() -> rdflib.Graph:
    return merged_graph()


def _by_keyword(graph: rdflib.Graph, word: str, cls: rdflib.URIRef) -> rdflib.URIRef:
    found = [s for s in graph.subjects(B12.keyword, rdflib.Literal(word)) if (s, RDF.type, cls) in graph]
    assert len(found) == 1, f"expected one {cls} with keyword {word!r}, found {found}"
    return found[0]


def test_context_table_was_read() -> None:
    assert len(CONTEXT) == 25 and "crohns-disease" in CONTEXT and "recent-transfusion" in CONTEXT


@pytest.mark.parametrize("word", sorted(CONTEXT))
def test_context_word_and_category(graph: rdflib.Graph, word: str) -> None:
    ctx = _by_keyword(graph, word, B12.ContextFactor)
    effect = CONTEXT[word]
    expected = {cat for phrase, cat in EFFECT_CATEGORY.items() if phrase in effect}
    if re.search(rf"\b{re.escape(word)} asks for CRP", effect):
        expected.add(B12.KnownInfectionCategory)
    assert set(graph.objects(ctx, B12.causeCategory)) == expected
    specific = {c for c in graph.objects(ctx, RDF.type)} - {B12.ContextFactor, rdflib.OWL.NamedIndividual}
    assert specific, f"{word}: typed only as a context factor, not with its specific class"


def _neurological_words() -> set[str]:
    """The neurological group of the symptom table of findings.md v2 (aliases left out)."""
    for line in FINDINGS_MD.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("neurological"):
            return {w.strip() for w in re.sub(r"\(.*?\)", "", cells[1]).split(",")}
    raise AssertionError("no neurological row in the symptom table of findings.md")


def _symptom_words() -> set[str]:
    m = re.search(r"\(a neurological symptom, (\w+), (\w+), or Anemia\)", " ".join(FINDINGS_MD.read_text(encoding="utf-8").split()))
    assert m
    return {m[1], m[2]}


@pytest.mark.parametrize("word", sorted(_neurological_words() | _symptom_words()))
def test_symptom_keywords(graph: rdflib.Graph, word: str) -> None:
    s = _by_keyword(graph, word, B12.Symptom)
    assert ((s, RDF.type, B12.NeurologicalSymptom) in graph) == (word in _neurological_words())
    assert {B12.SerumB12Test, B12.FerritinTest} <= set(graph.objects(s, B12.warrantsTest))
