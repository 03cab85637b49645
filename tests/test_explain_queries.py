"""The explanation and report queries (queries/explain/*.rq, queries/report/*.rq) run unchanged on
rdflib and on pyoxigraph over the same dataset (knowledge base, patients and inferred graph of a
few shared cases) and give the same rows; and what they say is right: the causal chain behind
IronDeficiencyMaskingRisk in order, the cut-off and source behind LowFerritin with inflammation,
and for every finding its rule and what it was derived from."""

from __future__ import annotations

import functools
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib

from b12kg import paths
from b12kg.api import assess, explanation_store, load_record, run_query
from b12kg.engines.oxigraph import load_patients
from b12kg.rdf.terms import INFERRED_GRAPH

SHARED = Path(__file__).resolve().parent.parent / "vendor" / "shared" / "cases" / "valid"
CASES = ("p03-pernicious-anemia-high-ferritin", "p05-inflammation-hides-iron-deficiency", "p11-symptoms-without-b12-or-ferritin",
         "p19-mixed-units", "p21-fhir-bundle-dual-deficiency", "p33-censored-b12-result", "p44-mma-lab-range-in-nmol",
         "p49-tsat-derived-from-iron-and-tibc")
BOUND_CASES = ("p03-pernicious-anemia-high-ferritin", "p05-inflammation-hides-iron-deficiency", "p21-fhir-bundle-dual-deficiency")
QUERIES = sorted(paths.QUERIES_DIR.glob("explain/*.rq")) + sorted(paths.QUERIES_DIR.glob("report/*.rq"))
B12 = "https://w3id.org/b12kg/"
XSD = "http://www.w3.org/2001/XMLSchema#"
NUMERIC = {XSD + t for t in ("integer", "decimal", "double", "float", "int", "long", "short", "byte", "nonNegativeInteger",
                             "positiveInteger", "negativeInteger", "nonPositiveInteger", "unsignedInt", "unsignedLong")}


@functools.lru_cache(maxsize=None)
def assessed(case: str):
    return assess(SHARED / f"{case}.yaml")


@functools.lru_cache(maxsize=1)
def datasets() -> tuple[ox.Store, rdflib.Graph]:
    """One pyoxigraph store (knowledge base, patients and inferred triples in their named graphs)
    and one rdflib Graph holding exactly the same triples."""
    store = None
    for case in CASES:
        a = assessed(case)
        if store is None:
            store = explanation_store(a.input_ntriples, a.inferred_ntriples)
        else:
            load_patients(store, a.input_ntriples)
            store.load(a.inferred_ntriples.encode("utf-8"), format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(INFERRED_GRAPH))
    assert store is not None
    nt = "".join(f"{q.subject} {q.predicate} {q.object} .\n" for q in store)
    g = rdflib.Graph()
    g.parse(data=nt, format="nt")
    return store, g


# ---------------------------------------------------------------------------------------------
# Canonical rows
# ---------------------------------------------------------------------------------------------
def _concat_vars(text: str) -> dict[str, str]:
    """Variables that are GROUP_CONCATs, with their separators: their order is not defined."""
    out = {}
    for m in re.finditer(r'GROUP_CONCAT\s*\(\s*(?:DISTINCT\s+)?\?\w+\s*(?:;\s*separator\s*=\s*"([^"]*)")?\s*\)\s*AS\s+\?(\w+)',
                         text, re.I):
        out[m.group(2)] = m.group(1) if m.group(1) is not None else " "
    return out


def _canon_literal(value: str, datatype: str | None, lang: str | None):
    if datatype in NUMERIC:
        return ("num", Decimal(value).normalize() if "e" not in value.lower() else Decimal(repr(float(value))).normalize())
    if datatype == XSD + "boolean":
        return ("bool", value in ("true", "1"))
    if lang:
        return ("lang", value, lang.lower())
    if datatype in (None, XSD + "string"):
        return ("str", value)
    return ("typed", value, datatype)


def _canon_rdflib(term):
    if term is None:
        return None
    if isinstance(term, rdflib.URIRef):
        return ("iri", str(term))
    if isinstance(term, rdflib.BNode):
        return ("bnode",)
    assert isinstance(term, rdflib.Literal)
    return _canon_literal(str(term), str(term.datatype) if term.datatype else None, term.language)


def _canon_ox(term):
    if term is None:
        return None
    if isinstance(term, ox.NamedNode):
        return ("iri", term.value)
    if isinstance(term, ox.BlankNode):
        return ("bnode",)
    assert isinstance(term, ox.Literal)
    return _canon_literal(term.value, term.datatype.value if term.datatype else None, term.language)


def _split_concat(v, sep: str):
    if v is None or v[0] != "str":
        return v
    return ("concat", tuple(sorted(v[1].split(sep))) if v[1] else ())


def rows_rdflib(g: rdflib.Graph, text: str, bindings: dict[str, str]) -> tuple[list[str], Counter]:
    res = g.query(text, initBindings={k: rdflib.URIRef(v) for k, v in bindings.items()})
    names = [str(v) for v in res.vars]
    concat = _concat_vars(text)
    rows = Counter()
    for row in res:
        vals = [_canon_rdflib(row[i]) for i in range(len(names))]
        rows[tuple(_split_concat(v, concat[n]) if n in concat else v for n, v in zip(names, vals))] += 1
    return names, rows


def rows_ox(store: ox.Store, text: str, bindings: dict[str, str]) -> tuple[list[str], Counter]:
    res = store.query(text, use_default_graph_as_union=True,
                      substitutions={ox.Variable(k): ox.NamedNode(v) for k, v in bindings.items()})
    names = [v.value for v in res.variables]
    concat = _concat_vars(text)
    rows = Counter()
    for sol in res:
        vals = [_canon_ox(sol[n]) for n in names]
        rows[tuple(_split_concat(v, concat[n]) if n in concat else v for n, v in zip(names, vals))] += 1
    return names, rows


def _bindable(text: str) -> list[str]:
    """The variables a query's header comment says to bind ('Bind ?finding')."""
    header = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    return sorted(set(re.findall(r"\bBind\s+\?(\w+)", header)))


def _values_for(var: str) -> list[str]:
    out = []
    for case in BOUND_CASES:
        a = assessed(case)
        if var == "patient":
            out.append(a.patient_iri)
        elif var == "finding":
            out.extend(f.iri for f in a.findings)
        else:
            raise AssertionError(f"no test values for ?{var}: extend _values_for")
    return out


# ---------------------------------------------------------------------------------------------
# Same rows on rdflib and on pyoxigraph
# ---------------------------------------------------------------------------------------------
def test_there_are_queries() -> None:
    names = {p.name for p in QUERIES}
    assert {"explain-finding.rq", "causal-chain.rq", "patient-findings.rq"} <= names


# The two queries that take rdflib longest (over 15 s each) are cross-checked in make test-all.
@pytest.mark.parametrize("query", [pytest.param(p, marks=pytest.mark.slow) if p.name in ("causal-chain.rq", "explain-finding.rq")
                                   else p for p in QUERIES], ids=[f"{p.parent.name}/{p.name}" for p in QUERIES])
def test_query_gives_same_rows_on_rdflib_and_pyoxigraph(query: Path) -> None:
    text = query.read_text(encoding="utf-8")
    store, g = datasets()
    runs: list[dict[str, str]] = [{}]
    for var in _bindable(text):
        runs.extend({var: v} for v in _values_for(var))
    nonempty = 0
    for bindings in runs:
        names_r, rows_r = rows_rdflib(g, text, bindings)
        names_o, rows_o = rows_ox(store, text, bindings)
        assert names_r == names_o
        if rows_r != rows_o:
            only_r = list((rows_r - rows_o).items())[:3]
            only_o = list((rows_o - rows_r).items())[:3]
            pytest.fail(f"{query.name} {bindings}: rdflib {sum(rows_r.values())} rows, pyoxigraph {sum(rows_o.values())}\n"
                        f"rdflib only: {only_r}\npyoxigraph only: {only_o}")
        nonempty += bool(rows_o)
    assert nonempty, f"{query.name} returned no rows at all on the test dataset"


# ---------------------------------------------------------------------------------------------
# What the explanations say
# ---------------------------------------------------------------------------------------------
CHAIN_FIRST, CHAIN_VIA, CHAIN_LAST = "vitamin B12 deficiency", "ineffective erythropoiesis", "raised serum ferritin"


def _chain(rows: Counter, names: list[str]) -> list[str]:
    i_label, i_pos = names.index("stateLabel"), names.index("position")
    ordered = sorted(rows, key=lambda r: r[i_pos][1])
    positions = [int(r[i_pos][1]) for r in ordered]
    assert positions == list(range(1, len(ordered) + 1)), f"positions are not 1..n: {positions}"
    return [r[i_label][1] for r in ordered]


def test_masking_risk_walks_the_causal_chain_in_order() -> None:
    a = assessed("p03-pernicious-anemia-high-ferritin")
    f = a.finding("IronDeficiencyMaskingRisk")
    assert f is not None
    text = (paths.QUERIES_DIR / "explain" / "causal-chain.rq").read_text(encoding="utf-8")
    store, g = datasets()
    chains = []
    for runner, db in ((rows_rdflib, g), (rows_ox, store)):
        names, rows = runner(db, text, {"finding": f.iri})
        chains.append(_chain(rows, names))
    assert chains[0] == chains[1]
    chain = chains[0]
    assert chain[0] == CHAIN_FIRST and chain[-1] == CHAIN_LAST, chain
    assert CHAIN_VIA in chain and 0 < chain.index(CHAIN_VIA) < len(chain) - 1, chain
    # the order of findings.md: B12 deficiency, impaired DNA synthesis, megaloblastic erythropoiesis,
    # ineffective erythropoiesis, iron release, raised ferritin
    spec_order = ["vitamin B12 deficiency", "impaired DNA synthesis", "megaloblastic erythropoiesis",
                  "ineffective erythropoiesis", "iron release", "raised serum ferritin"]
    idx = [next(i for i, s in enumerate(chain) if s.startswith(step)) for step in spec_order]
    assert idx == sorted(idx), (spec_order, chain)
    # the assessment shows that chain, in that order, in the explanation
    assert list(f.causal_chain) == chain
    assert " -> ".join(chain) in f.explanation


def test_low_ferritin_with_inflammation_cites_70_and_who_2020() -> None:
    a = assessed("p05-inflammation-hides-iron-deficiency")
    f = a.finding("LowFerritin")
    assert f is not None
    assert "70 ug/L" in f.explanation and "WHO 2020" in f.explanation, f.explanation
    store, _ = datasets()
    rows = run_query(store, "explain/explain-finding.rq", finding=f.iri)
    thresholds = [r for r in rows if r["item_kind"] == "threshold"]
    assert any(r["limitValue"] == Decimal(70) and r["limitUnit"] == "ug/L" and r["sourceShort"] == "WHO 2020"
               and r["criterion"] == "<" for r in thresholds), thresholds
    assert {r["ruleId"] for r in rows} == {"cls-low-ferritin-inflammation"}
    assert any(r["item_kind"] == "finding" and r["code"] == "Inflammation" for r in rows)
    assert any(r["item_kind"] == "result" and r["testKey"] == "ferritin" and r["valueAsGiven"] == "45" for r in rows)


def _rules_in_graph(a, finding_iri: str) -> set[str]:
    g = rdflib.Graph()
    g.parse(data=a.inferred_ntriples, format="nt")
    prov = rdflib.Namespace("http://www.w3.org/ns/prov#")
    return {str(r).rsplit("/", 1)[-1] for act in g.objects(rdflib.URIRef(finding_iri), prov.wasGeneratedBy)
            for r in g.objects(act, rdflib.URIRef(B12 + "rule"))}


@pytest.mark.parametrize("case", sorted(p.stem for p in SHARED.glob("*.yaml")))
def test_each_finding_is_explained_by_its_rule_and_its_inputs(case: str) -> None:
    """For every finding of every valid shared case, explain-finding.rq names each rule that
    derived it (as the inferred graph records) and at least one result or earlier finding it was
    derived from; a finding derived from symptoms alone (TestB12AndFerritinTogether) names them."""
    a = assess(SHARED / f"{case}.yaml")
    store = explanation_store(a.input_ntriples, a.inferred_ntriples)
    for f in a.findings:
        rows = run_query(store, "explain/explain-finding.rq", finding=f.iri)
        assert rows, f"{f.code}: no explanation rows"
        rules = _rules_in_graph(a, f.iri)
        assert rules and {r["ruleId"] for r in rows} == rules, (f.code, rules)
        assert set(f.rule_ids) == rules
        kinds = {r["item_kind"] for r in rows}
        if not kinds & {"result", "finding"}:
            assert "context" in kinds and f.code == "TestB12AndFerritinTogether", (f.code, kinds)
        for r in rows:
            if r["item_kind"] == "result":
                assert r["valueAsGiven"] and r["testKey"], r
            if r["item_kind"] == "threshold":
                assert r["sourceShort"] and r["criterion"] and (r["limitValue"] is not None or r["limitLower"] is not None), r
