"""The one finding model: an assessment, its findings, and what each rests on (evidence, cut-offs,
rules), as frozen dataclasses with one JSON shape (``schema/finding.schema.json``; the cohort's
``findings.ndjson`` writes the same keys, some left out, none renamed). Text is rendered by
``b12kg.explain.text``, the one renderer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import rdflib

from ..rdf.terms import DATA_GRAPH, INFERRED_GRAPH, OUTPUT_PREFIXES
from .text import evidence_text, threshold_text


@dataclass(frozen=True)
class Evidence:
    """A laboratory result a finding was derived from, as given and as compared."""

    analyte: str
    label: str
    value_as_given: str
    unit_as_given: str | None
    comparator: str | None
    value_compared: str | None
    unit_compared: str | None
    derivation: str | None = None
    reference_high: str | None = None
    reference_low: str | None = None
    iri: str = ""
    unusable: str | None = None      # why a reported result could not be used (findings.md v2, S1)

    def text(self) -> str:
        return evidence_text(self)


@dataclass(frozen=True)
class Threshold:
    """A cut-off a finding was derived from, with its source."""

    id: str                          # the cut-off's id (the last segment of its IRI)
    iri: str
    label: str
    analyte: str | None              # the test whose results are compared with it
    role: str
    criterion: str
    limits: tuple[str, ...]          # e.g. ("< 180 ng/L", "< 133 pmol/L")
    compared_limit: str | None       # the limit in the unit the result was compared in
    population: str
    source: str                      # short citation
    source_title: str
    source_year: int | None
    source_link: str | None
    verification: str
    note: str | None = None
    outcome: str | None = None       # "met", "not met" or "undecided" by the result compared with it

    def text(self) -> str:
        return threshold_text(self)


@dataclass(frozen=True)
class RuleRef:
    id: str
    label: str
    definition: str
    source: str | None


@dataclass(frozen=True)
class Finding:
    """One conclusion about one patient, with everything it was derived from."""

    code: str
    label: str
    kind: str                       # interpretation | diagnosis | recommendation
    section: str                    # result | diagnosis | caution | next-step
    definition: str
    iri: str
    rules: tuple[RuleRef, ...]
    evidence: tuple[Evidence, ...]
    thresholds: tuple[Threshold, ...]
    based_on: tuple[str, ...]       # codes of earlier findings it built on
    context: tuple[str, ...]        # symptoms and context factors it read
    actions: tuple[str, ...]
    causal_chain: tuple[str, ...]
    claims: tuple[str, ...]
    explanation: str
    status: str = "derived"         # derived | unassessed (findings.md v2, S1: a criterion could not be decided)
    priority: str | None = None     # urgent | caution | treat | test | investigate (recommendations and alerts)
    priority_rank: int | None = None
    # an unassessed finding: the recommendation codes that forcing it true and forcing it false
    # decide differently (findings.md v2, S1: it is listed when there is one; empty, it is not)
    changes_recommendations: tuple[str, ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def to_json(self) -> dict:
        """The finding in the JSON shape of schema/finding.schema.json."""
        d = asdict(self)
        d["rule_ids"] = list(self.rule_ids)
        return d


@dataclass(frozen=True)
class Assessment:
    """The findings for one patient, the notes on what the record left open, and the graphs."""

    patient_id: str
    profile: str
    engine: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    patient_iri: str
    unassessed: tuple[Finding, ...] = ()    # findings that could not be assessed, with why (S1)
    input_ntriples: str = field(repr=False, default="")
    inferred_ntriples: str = field(repr=False, default="")
    record_summary: dict = field(repr=False, default_factory=dict)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    def finding(self, code: str) -> Finding | None:
        for f in self.findings:
            if f.code == code:
                return f
        return None

    def __repr__(self) -> str:
        return f"<Assessment patient={self.patient_id!r} profile={self.profile} findings={len(self.findings)}>"

    def to_json(self) -> dict:
        return {
            "patient": self.patient_id,
            "patient_iri": self.patient_iri,
            "profile": self.profile,
            "engine": self.engine,
            "record": self.record_summary,
            "notes": list(self.notes),
            "findings": [f.to_json() for f in self.findings],
            "unassessed": [f.to_json() for f in self.unassessed],
        }

    def to_graph(self):
        """The patient graph and the inferred graph together, as an rdflib Dataset with two named graphs."""
        ds = rdflib.Dataset()
        ds.graph(rdflib.URIRef(DATA_GRAPH)).parse(data=self.input_ntriples, format="nt")
        ds.graph(rdflib.URIRef(INFERRED_GRAPH)).parse(data=self.inferred_ntriples, format="nt")
        return ds

    def to_turtle(self) -> str:
        """Input and inferred triples as one Turtle document (deterministic order)."""
        g = rdflib.Graph()
        _bind(g)
        g.parse(data=self.input_ntriples + self.inferred_ntriples, format="nt")
        return g.serialize(format="longturtle")

    def to_jsonld(self) -> str:
        """Input and inferred triples as JSON-LD with an inline context (no remote context)."""
        g = rdflib.Graph()
        g.parse(data=self.input_ntriples + self.inferred_ntriples, format="nt")
        context = dict(OUTPUT_PREFIXES)
        return g.serialize(format="json-ld", context=context, sort_keys=True, indent=2)


def _bind(g) -> None:
    for p, ns in OUTPUT_PREFIXES.items():
        g.bind(p, ns)
