"""The knowledge base as the Python code reads it: the ontology modules (parsed once), and the
facts the loaders need from them (lab tests, units, conversion factors, plausible ranges, refused
codes, context and symptom keywords, profiles), all read by SPARQL from the ontology data."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from .. import units as ucum
from ..cache import once, load_or_build
from ..rdf.terms import B12, B12NS
from .ontology import ontology_graph, select as _q


@dataclass(frozen=True)
class UnitInfo:
    unit: str
    factor_to_canonical: Decimal


@dataclass(frozen=True)
class LabTestInfo:
    iri: str
    key: str
    label: str
    loinc: tuple[str, ...]
    preferred_loinc: str | None
    canonical_unit: str | None
    units: Mapping[str, UnitInfo]
    plausible_low: Decimal | None
    plausible_high: Decimal | None
    qualitative: bool
    threshold_units: frozenset[str]
    refused: Mapping[str, str] = field(default_factory=dict)

    @property
    def local_name(self) -> str:
        return self.iri[len(B12NS):]


@dataclass(frozen=True)
class Vocabulary:
    tests_by_key: Mapping[str, LabTestInfo]
    tests_by_loinc: Mapping[str, LabTestInfo]
    refused_codes: Mapping[str, tuple[LabTestInfo, str]]
    contexts: Mapping[str, str]          # keyword -> IRI
    symptoms: Mapping[str, str]          # keyword -> IRI
    profiles: Mapping[str, str]          # profile name -> IRI
    qualitative_values: Mapping[str, str]  # keyword -> IRI
    # alias -> canonical keyword (findings.md v2: the words in brackets), symptoms and contexts
    symptom_aliases: Mapping[str, str] = field(default_factory=dict)
    context_aliases: Mapping[str, str] = field(default_factory=dict)
    # (test IRI, accepted unit) -> (the unit a result in it is compared in, the factor to that unit)
    compared_units: Mapping[tuple[str, str], tuple[str, Decimal]] = field(default_factory=dict)
    # FHIR codes ("system|code") of context factors and symptoms -> (kind, keyword), kind "context" or
    # "symptom": the vocabulary's own skos:exactMatch codes and the FHIR module's mappings (fhir.ttl)
    clinical_codes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # FHIR codes ("system|code") with a role of their own (fhir.ttl): pregnancy-status, pregnant,
    # not-pregnant, pregnancy-unknown, gestational-age, delivery-date, sex-female, sex-male
    fhir_roles: Mapping[str, str] = field(default_factory=dict)
    # test IRI -> every age (years) where the age band of a population of one of its cut-offs begins
    # or ends (b12:ageFrom, b12:ageUnder): two results of the test taken at ages on two sides of one
    # of these are judged by different cut-offs. A test absent here has no age-dependent cut-off.
    age_boundaries: Mapping[str, tuple[Decimal, ...]] = field(default_factory=dict)


# IRI forms of external codes (mappings.ttl) -> the FHIR code system of the same code
CODE_IRI_SYSTEMS = {
    "http://snomed.info/id/": "http://snomed.info/sct",
    "http://hl7.org/fhir/sid/icd-10/": "http://hl7.org/fhir/sid/icd-10",
    "http://purl.bioontology.org/ontology/RXNORM/": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://purl.bioontology.org/ontology/ATC/": "http://www.whocc.no/atc",
}


def fhir_code_of_iri(iri: str) -> str | None:
    """'system|code' of a code IRI (http://snomed.info/id/84027009 -> http://snomed.info/sct|84027009)."""
    for prefix, system in CODE_IRI_SYSTEMS.items():
        if iri.startswith(prefix) and len(iri) > len(prefix):
            return f"{system}|{iri[len(prefix):]}"
    return None


@once
def vocabulary() -> Vocabulary:
    """What the loaders need from the ontology; from the disk cache (b12kg.cache) when the
    ontology and the code are unchanged (building it parses the ontology and the UCUM registry)."""
    return load_or_build("vocabulary", _build_vocabulary, expect=Vocabulary)


def _compared_unit(info: LabTestInfo, unit: str) -> tuple[str, Decimal]:
    """The unit a result given in ``unit`` is compared in, and the factor to it: its own unit when
    a cut-off states it (or the same unit spelled otherwise, as ng/L for pg/mL, by UCUM); else the
    test's canonical unit."""
    if unit in info.threshold_units:
        return unit, Decimal(1)
    for tu in sorted(info.threshold_units):
        if ucum.same_unit(unit, tu):
            return tu, Decimal(1)
    assert info.canonical_unit is not None
    return info.canonical_unit, info.units[unit].factor_to_canonical


def _build_vocabulary() -> Vocabulary:
    g = ontology_graph()
    threshold_units: dict[str, set[str]] = {}
    for test, unit in _q(g, "SELECT ?test ?u WHERE { ?t a b12:Threshold ; b12:test ?test ; b12:limit/b12:ucumUnit ?u }"):
        threshold_units.setdefault(str(test), set()).add(str(unit))
    tests: dict[str, LabTestInfo] = {}
    rows = _q(g, """SELECT ?t ?key ?label ?canon ?lo ?hi ?qual ?pref WHERE {
        ?t a b12:LabTest ; b12:analyteKey ?key ; rdfs:label ?label .
        OPTIONAL { ?t b12:canonicalUnit ?canon } OPTIONAL { ?t b12:plausibleLow ?lo } OPTIONAL { ?t b12:plausibleHigh ?hi }
        OPTIONAL { ?t b12:qualitative ?qual } OPTIONAL { ?t b12:preferredLoinc ?pref } }""")
    for t, key, label, canon, lo, hi, qual, pref in rows:
        iri = str(t)
        loinc = tuple(sorted(str(x) for x in g.objects(t, B12.loinc)) + ([str(pref)] if pref is not None else []))
        units = {}
        for conv in g.objects(t, B12.acceptedUnit):
            u = str(g.value(conv, B12.ucumUnit))
            units[u] = UnitInfo(u, Decimal(str(g.value(conv, B12.factorToCanonical))))
        refused = {}
        for rc in g.objects(t, B12.refusedCode):
            refused[str(g.value(rc, B12.code))] = str(g.value(rc, B12.refusalReason))
        tests[str(key)] = LabTestInfo(
            iri=iri, key=str(key), label=str(label), loinc=tuple(sorted(set(loinc))),
            preferred_loinc=str(pref) if pref is not None else None,
            canonical_unit=str(canon) if canon is not None else None, units=units,
            plausible_low=Decimal(str(lo)) if lo is not None else None,
            plausible_high=Decimal(str(hi)) if hi is not None else None,
            qualitative=bool(qual.toPython()) if qual is not None else False,
            threshold_units=frozenset(threshold_units.get(iri, ())), refused=refused)
    by_loinc: dict[str, LabTestInfo] = {}
    refused_codes: dict[str, tuple[LabTestInfo, str]] = {}
    for info in tests.values():
        for code in info.loinc:
            by_loinc[code] = info
        for code, reason in info.refused.items():
            refused_codes[code] = (info, reason)

    def keywords(cls: str) -> dict[str, str]:
        out = {}
        for s, kw in _q(g, f"SELECT ?s ?kw WHERE {{ ?s a b12:{cls} ; b12:keyword ?kw }}"):
            out[str(kw)] = str(s)
        return out

    def aliases(cls: str) -> dict[str, str]:
        return {str(al): str(kw) for kw, al in _q(g, f"SELECT ?kw ?al WHERE {{ ?s a b12:{cls} ; b12:keyword ?kw ; b12:keywordAlias ?al }}")}

    profiles = {str(n): str(p) for p, n in _q(g, "SELECT ?p ?n WHERE { ?p a b12:Profile ; b12:profileName ?n }")}
    compared = {(info.iri, u): _compared_unit(info, u) for info in tests.values() for u in info.units}
    clinical: dict[str, tuple[str, str]] = {}
    roles: dict[str, str] = {}
    for kind, cls in (("context", "ContextFactor"), ("symptom", "Symptom")):
        # only V1 mappings (the annotated axiom of mappings.ttl says the level) drive a conclusion
        for kw, target in _q(g, f"""SELECT ?kw ?t WHERE {{ ?s a b12:{cls} ; b12:keyword ?kw ; skos:exactMatch ?t .
                ?ax owl:annotatedSource ?s ; owl:annotatedProperty skos:exactMatch ; owl:annotatedTarget ?t ;
                    b12:verification "V1" }}"""):
            code = fhir_code_of_iri(str(target))
            if code is not None:
                clinical[code] = (kind, str(kw))
    for system, code, role, kw in _q(g, """SELECT ?sys ?code ?role ?kw WHERE {
            ?m a b12:FhirCodeMapping ; b12:codeSystem ?sys ; b12:code ?code ; b12:codeRole ?role ; b12:verificationLevel "V1" .
            OPTIONAL { ?m b12:mapsToKeyword ?kw } }"""):
        key = f"{system}|{code}"
        if str(role) in ("context", "symptom"):
            if kw is not None:
                clinical.setdefault(key, (str(role), str(kw)))
        else:
            roles[key] = str(role)
    return Vocabulary(tests_by_key=tests, tests_by_loinc=by_loinc, refused_codes=refused_codes,
                      contexts=keywords("ContextFactor"), symptoms=keywords("Symptom"), profiles=profiles,
                      qualitative_values=keywords("QualitativeResultValue"), compared_units=compared,
                      clinical_codes=clinical, fhir_roles=roles,
                      symptom_aliases=aliases("Symptom"), context_aliases=aliases("ContextFactor"),
                      age_boundaries=_age_boundaries(g))


def _age_boundaries(g) -> dict[str, tuple[Decimal, ...]]:
    found: dict[str, set[Decimal]] = {}
    for test, age in _q(g, """SELECT ?test ?a WHERE { ?t a b12:Threshold ; b12:test ?test ; b12:population ?p .
                               { ?p b12:ageFrom ?a } UNION { ?p b12:ageUnder ?a } }"""):
        found.setdefault(str(test), set()).add(Decimal(str(age)))
    return {test: tuple(sorted(ages)) for test, ages in sorted(found.items())}
