"""The typed results of an assessment: frozen dataclasses with JSON forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    iri: str = ""

    def text(self) -> str:
        given = f"{self.value_as_given} {self.unit_as_given or ''}".strip()
        s = f"{self.analyte} {given}"
        if self.value_compared is not None and self.unit_compared != self.unit_as_given:
            prefix = self.comparator if self.comparator not in (None, "=") else ""
            s += f" (compared as {prefix}{self.value_compared} {self.unit_compared})"
        if self.reference_high is not None:
            s += f", laboratory upper limit {self.reference_high} {self.unit_as_given or ''}".rstrip()
        if self.derivation:
            s += f", derived: {self.derivation}"
        return s


@dataclass(frozen=True)
class Threshold:
    """A cut-off a finding was derived from, with its source."""

    iri: str
    label: str
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
    outcome: str | None = None       # "met" or "not met" by the result compared with it

    def text(self) -> str:
        limit = self.compared_limit or " or ".join(self.limits)
        if self.outcome == "not met":
            limit = "not " + limit
        return f"{limit} ({self.role}; {self.population}; {self.source}, {self.verification})"


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

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def to_json(self) -> dict:
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
        }

    def to_graph(self):
        """The patient graph and the inferred graph together, as an rdflib Dataset with two named graphs."""
        import rdflib

        from .rules import DATA_GRAPH, INFERRED_GRAPH

        ds = rdflib.Dataset()
        ds.graph(rdflib.URIRef(DATA_GRAPH)).parse(data=self.input_ntriples, format="nt")
        ds.graph(rdflib.URIRef(INFERRED_GRAPH)).parse(data=self.inferred_ntriples, format="nt")
        return ds

    def to_turtle(self) -> str:
        """Input and inferred triples as one Turtle document (deterministic order)."""
        import rdflib

        g = rdflib.Graph()
        _bind(g)
        g.parse(data=self.input_ntriples + self.inferred_ntriples, format="nt")
        return g.serialize(format="longturtle")

    def to_jsonld(self) -> str:
        """Input and inferred triples as JSON-LD with an inline context (no remote context)."""
        import rdflib

        g = rdflib.Graph()
        g.parse(data=self.input_ntriples + self.inferred_ntriples, format="nt")
        context = {p: str(ns) for p, ns in _PREFIXES.items()}
        return g.serialize(format="json-ld", context=context, sort_keys=True, indent=2)


_PREFIXES = {
    "b12": "https://w3id.org/b12kg/",
    "b12r": "https://w3id.org/b12kg/rule/",
    "b12th": "https://w3id.org/b12kg/threshold/",
    "b12pop": "https://w3id.org/b12kg/population/",
    "prov": "http://www.w3.org/ns/prov#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _bind(g) -> None:
    for p, ns in _PREFIXES.items():
        g.bind(p, ns)
