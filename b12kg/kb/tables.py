"""Tables read once from the ontology for the outputs: finding classes (label, definition, kind,
report section, claims), cut-offs (their limit text in every unit, source and verification level)
and labels. ``limit_text`` is the one place a cut-off's limit is written as text."""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from rdflib.namespace import RDFS

from ..rdf.terms import B12, last_segment
from ..units import format_decimal
from .ontology import ontology_graph, select
from ..cache import once


def limit_text(criterion: str, unit: str, value: Decimal | None = None, lower: Decimal | None = None,
               upper: Decimal | None = None) -> str:
    """A cut-off's limit in one unit: "< 133 pmol/L", or a band "133-258 pmol/L inclusive".

    >>> limit_text("<", "pmol/L", Decimal("133"))
    '< 133 pmol/L'
    >>> limit_text("within", "ng/L", lower=Decimal("180"), upper=Decimal("350.0"))
    '180-350 ng/L inclusive'
    """
    if value is not None:
        return f"{criterion} {format_decimal(Decimal(value))} {unit}"
    return f"{format_decimal(Decimal(lower))}-{format_decimal(Decimal(upper))} {unit} inclusive"


@once
def finding_classes() -> Mapping[str, dict]:
    """Every finding code (a leaf class with a skos:notation under b12:Finding) with its label,
    definition, kind, report section, claims and priority (the label of its b12:priority, None
    where the ontology gives none)."""
    g = ontology_graph()
    out: dict[str, dict] = {}
    rows = select(g, """SELECT ?c ?code ?label ?def ?kind ?grp ?prio WHERE {
        ?c rdfs:subClassOf+ b12:Finding ; skos:notation ?code ; rdfs:label ?label ; skos:definition ?def ;
           b12:findingKind ?kind ; b12:displayGroup ?grp .
        OPTIONAL { ?c b12:priority/rdfs:label ?prio } }""")
    for c, code, label, dfn, kind, grp, prio in rows:
        claims = sorted(last_segment(str(x)) for x in g.objects(c, B12.claim))
        out[str(code)] = {"iri": str(c), "label": str(label), "definition": str(dfn), "kind": str(kind),
                          "group": str(grp), "claims": claims, "priority": None if prio is None else str(prio)}
    return out


@once
def threshold_table() -> dict[str, dict]:
    """Every cut-off by IRI: its id, source, verification level, the analyte key of its test, its
    criterion (``<``, ``>`` or ``a-b``, a band inclusive) and per unit its limit as text
    (``limits``) and as decimals (``values``: value, lower, upper; None where not given)."""
    rows = select(ontology_graph(), """SELECT ?t ?sym ?unit ?v ?lo ?hi ?src ?ver ?key WHERE {
      ?t a b12:Threshold ; b12:criterion/skos:notation ?sym ; b12:limit ?l ; dcterms:source/b12:shortName ?src ;
         b12:verificationLevel ?ver . ?l b12:ucumUnit ?unit .
      OPTIONAL { ?t b12:test/b12:analyteKey ?key }
      OPTIONAL { ?l b12:numericValue ?v } OPTIONAL { ?l b12:lowerValue ?lo ; b12:upperValue ?hi } }""")
    out: dict[str, dict] = {}
    for t, sym, unit, v, lo, hi, src, ver, key in rows:
        d = out.setdefault(str(t), {"id": last_segment(str(t)), "source": str(src), "verification": str(ver),
                                    "test": None if key is None else str(key), "criterion": str(sym),
                                    "limits": {}, "values": {}})
        value, lower, upper = (None if x is None else Decimal(str(x)) for x in (v, lo, hi))
        d["limits"][str(unit)] = limit_text(str(sym), str(unit), value, lower, upper)
        d["values"][str(unit)] = (value, lower, upper)
    return out


@once
def age_band_edges() -> tuple[Decimal, ...]:
    """Every age in years at which a population of the ontology starts or ends, ascending: the
    edges of the age bands a cohort's summary counts by (the bands the cut-offs are stated for)."""
    rows = select(ontology_graph(), """SELECT DISTINCT ?a WHERE { ?p a b12:Population .
      { ?p b12:ageFrom ?a } UNION { ?p b12:ageUnder ?a } }""")
    return tuple(sorted({Decimal(str(a)) for (a,) in rows}))


@once
def label_table() -> dict[str, str]:
    """rdfs:label of every labelled IRI of the ontology."""
    return {str(s): str(o) for s, o in ontology_graph().subject_objects(RDFS.label)}


@once
def reading_notes() -> dict[str, tuple[str, frozenset[str]]]:
    """Context keyword -> (the note a finding's explanation carries, the analyte keys it applies to):
    findings read from those results say so (findings.md v2, context table: recent-transfusion,
    on-iron-therapy). Data in the ontology: ``b12:readingNote`` and ``b12:noteForTest``."""
    rows = select(ontology_graph(), """SELECT ?kw ?note ?key WHERE {
        ?c b12:keyword ?kw ; b12:readingNote ?note ; b12:noteForTest ?t . ?t b12:analyteKey ?key }""")
    out: dict[str, tuple[str, set]] = {}
    for kw, note, key in rows:
        out.setdefault(str(kw), (str(note), set()))[1].add(str(key))
    return {k: (n, frozenset(keys)) for k, (n, keys) in out.items()}


@once
def unassessed_notes() -> dict[str, tuple[tuple[str, str], ...]]:
    """Finding code -> (code of another finding, note): when that other finding is unassessed, the
    explanation of this one carries the note and the comparison that decided nothing (findings.md v2:
    IndeterminateB12 with VitaminB12Deficiency unassessed says "possibly deficient")."""
    rows = select(ontology_graph(), """SELECT ?code ?other ?note WHERE {
        ?c skos:notation ?code ; b12:noteWhenUnassessed ?n . ?n b12:whenUnassessed ?o ; b12:noteText ?note .
        ?o skos:notation ?other }""")
    out: dict[str, list] = {}
    for code, other, note in rows:
        out.setdefault(str(code), []).append((str(other), str(note)))
    return {k: tuple(sorted(v)) for k, v in out.items()}
