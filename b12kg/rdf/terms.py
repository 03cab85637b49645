"""Every IRI b12kg mints or reads, once: namespaces, graph names, prefix maps, and the patient,
result and finding IRIs (minted and parsed here only).

>>> patient_iri("p 1")
'https://w3id.org/b12kg/data/patient/p%201'
>>> finding_iri(patient_iri("p1"), "LowFerritin")
'https://w3id.org/b12kg/data/patient/p1/finding/LowFerritin'
>>> local_name(B12NS + "LowFerritin")
'LowFerritin'
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import rdflib

B12NS = "https://w3id.org/b12kg/"
B12 = rdflib.Namespace(B12NS)
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
SKOS = rdflib.Namespace("http://www.w3.org/2004/02/skos/core#")
DCTERMS = rdflib.Namespace("http://purl.org/dc/terms/")
PROV_NS = "http://www.w3.org/ns/prov#"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"

ONTOLOGY_IRI = B12NS + "ontology"
DEFAULT_BASE = B12NS + "data/patient/"          # patient IRIs: <base><percent-encoded id>
# PatientRecord.trimester -> the individual of b12:trimester (the one place; rdf/patient.py still
# holds its own copy, _TRIMESTER, until the lead moves it here: see notes/robust.md)
TRIMESTER_IRIS = {None: B12NS + "NoTrimester", "first": B12NS + "FirstTrimester", "second": B12NS + "SecondTrimester",
                  "third": B12NS + "ThirdTrimester", "unknown": B12NS + "TrimesterUnknown"}
ANALYTE_SYSTEM = B12NS + "analyte"              # FHIR code system of tests without a verified LOINC code
PATIENT_CLASS = B12NS + "Patient"

# Named graphs: the knowledge base, the patient data and every inferred triple.
KB_GRAPH = "urn:b12kg:graph:kb"
DATA_GRAPH = "urn:b12kg:graph:data"
INFERRED_GRAPH = "urn:b12kg:graph:inferred"
# Per-batch graphs in a remote store (a suffix names the batch), the marker of the loaded
# knowledge base, and stable names for the knowledge base's blank nodes.
DATA_GRAPH_PREFIX = DATA_GRAPH + ":"
INFERRED_GRAPH_PREFIX = INFERRED_GRAPH + ":"
KB_DIGEST = "urn:b12kg:kb-digest"
SKOLEM_PREFIX = "urn:b12kg:kb:genid:"
ANY_TYPE = "urn:b12kg:any-type"                 # a rule matches rdf:type with a variable object
INPUT_BASE = "urn:b12kg:input"                  # base IRI for parsing a user's RDF file

#: Prefixes of the published ontology (Turtle and the inline JSON-LD @context of dist/).
ONTOLOGY_PREFIXES: dict[str, str] = {
    "b12": B12NS,
    "b12src": B12NS + "source/",
    "b12claim": B12NS + "claim/",
    "b12th": B12NS + "threshold/",
    "b12pop": B12NS + "population/",
    "obo": "http://purl.obolibrary.org/obo/",
    "sct": "http://snomed.info/id/",
    "icd10": "http://hl7.org/fhir/sid/icd-10/",
    "owl": "http://www.w3.org/2002/07/owl#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": XSD_NS,
    "skos": str(SKOS),
    "dcterms": str(DCTERMS),
    "prov": PROV_NS,
}

SWRL_NS = "http://www.w3.org/2003/11/swrl#"
SWRLB_NS = "http://www.w3.org/2003/11/swrlb#"
B12SWRL_NS = B12NS + "swrl/"                     # classes and variables of b12kg's SWRL translation

#: Prefixes of the SWRL rules as text (b12kg.rules.swrl).
SWRL_PREFIXES: dict[str, str] = {"swrlb": SWRLB_NS, "b12swrl": B12SWRL_NS, "b12": B12NS, "xsd": XSD_NS}

#: Prefixes of an assessment's RDF output (patient and inferred graphs).
OUTPUT_PREFIXES: dict[str, str] = {
    "b12": B12NS,
    "b12r": B12NS + "rule/",
    "b12th": B12NS + "threshold/",
    "b12pop": B12NS + "population/",
    "prov": PROV_NS,
    "xsd": XSD_NS,
}


def sparql_prefixes(names: tuple[str, ...] = ("b12", "skos", "dcterms", "rdfs")) -> str:
    """PREFIX lines for b12kg's own SPARQL over the ontology."""
    return "".join(f"PREFIX {n}: <{ONTOLOGY_PREFIXES[n]}>\n" for n in names)


def patient_iri(patient_id: str, base: str = DEFAULT_BASE) -> str:
    """The patient's IRI: the id percent-encoded whole, so no id can break an IRI or a query."""
    return base + quote(patient_id, safe="")


def result_iri(patient: str, key: str, superseded: int | None = None) -> str:
    return f"{patient}/result/{quote(key, safe='')}" + ("" if superseded is None else f"/superseded/{superseded}")


def finding_iri(patient: str, code: str) -> str:
    return f"{patient}/finding/{code}"


def rule_iri(rule_id: str) -> str:
    return f"{B12NS}rule/{rule_id}"


def local_name(iri: str) -> str:
    """The local name of an IRI of b12kg's namespace (else the IRI unchanged)."""
    return iri[len(B12NS):] if iri.startswith(B12NS) else iri


def last_segment(iri: str) -> str:
    """The last path segment of an IRI (a rule id, a threshold id, a claim id)."""
    return iri.rsplit("/", 1)[-1]


def result_key(iri: str) -> str:
    """The analyte key of a result IRI minted by ``result_iri``."""
    return unquote(iri.rsplit("/result/", 1)[-1])


def postpartum_status_iri(contexts) -> str:
    """The patient's b12:postpartumStatus, derived from its contexts (findings.md v2: not
    postpartum unless the context postpartum is recorded)."""
    return B12NS + ("InPostpartumPeriod" if "postpartum" in contexts else "NotPostpartum")


#: how a finding built on an unassessed finding names it (``based_on``, every output)
UNASSESSED_MARK = " (unassessed)"


def based_on_code(iri: str) -> str:
    """The code of a finding a rule application used, marked when it was unassessed (its IRI is
    an unassessed-finding node)."""
    return finding_code(iri) + (UNASSESSED_MARK if "/unassessed/" in iri else "")


def finding_code(iri: str) -> str:
    """The finding code of a finding IRI minted by ``finding_iri``, or of an unassessed-finding node
    (``<patient>/unassessed/<code>``, findings.md v2 S1)."""
    for seg in ("/finding/", "/unassessed/"):
        if seg in iri:
            return iri.rsplit(seg, 1)[-1]
    return iri
