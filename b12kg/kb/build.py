"""Build the merged ontology: ``python -m b12kg.build dist``.

Every ``ontology/modules/*.ttl`` is parsed with rdflib and merged into ONE ontology,
``<https://w3id.org/b12kg/ontology>``: the module ``owl:Ontology`` headers and every ``owl:imports``
are dropped, the header of ``ontology/b12kg.ttl`` is kept, and ``owl:versionIRI``
``<https://w3id.org/b12kg/ontology/{version}>`` and ``owl:versionInfo`` are stamped from
``b12kg.__version__``. The result is written as ``dist/b12kg.ttl`` and ``dist/b12kg.jsonld``
(JSON-LD with an inline ``@context``, never a remote one).

Output is deterministic: blank nodes are relabelled canonically (RDF graph canonicalisation, so
the labels depend only on the graph's content) and both serialisations are ordered.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import rdflib
from rdflib import BNode, Literal, URIRef
from rdflib.compare import to_canonical_graph
from rdflib.namespace import OWL, RDF

from .. import paths
from .._version import __version__
from ..rdf.terms import ONTOLOGY_IRI as _ONTOLOGY_IRI, ONTOLOGY_PREFIXES, XSD_NS
from .ontology import parse_turtle
from ..cache import once

ONTOLOGY_IRI = URIRef(_ONTOLOGY_IRI)
HEADER_FILE = paths.ONTOLOGY_DIR / "b12kg.ttl"

#: Prefixes bound in the Turtle output and written as the inline JSON-LD @context.
PREFIXES = ONTOLOGY_PREFIXES


def version_iri(version: str = __version__) -> URIRef:
    return URIRef(f"{ONTOLOGY_IRI}/{version}")


def _bind(g: rdflib.Graph) -> rdflib.Graph:
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns, override=True, replace=True)
    return g


def _module_headers(g: rdflib.Graph) -> set:
    return set(g.subjects(RDF.type, OWL.Ontology))


def _build() -> rdflib.Graph:
    merged = rdflib.Graph()
    for f in paths.module_files():
        module = parse_turtle([f])
        headers = _module_headers(module)
        if len(headers) != 1:
            raise ValueError(f"{f.name}: expected exactly one owl:Ontology header, found {len(headers)}")
        for s, p, o in module:
            if s in headers or p == OWL.imports:
                continue
            merged.add((s, p, o))

    header = parse_turtle([HEADER_FILE])
    if _module_headers(header) != {ONTOLOGY_IRI}:
        raise ValueError(f"{HEADER_FILE.name} must declare exactly <{ONTOLOGY_IRI}> as owl:Ontology")
    for s, p, o in header:
        if p in (OWL.imports, OWL.versionInfo, OWL.versionIRI):
            continue
        merged.add((s, p, o))
    merged.add((ONTOLOGY_IRI, OWL.versionIRI, version_iri()))
    merged.add((ONTOLOGY_IRI, OWL.versionInfo, Literal(__version__)))

    # Canonical blank-node labels: the same content always gives the same labels and bytes.
    canonical = rdflib.Graph()
    for triple in to_canonical_graph(merged):
        canonical.add(triple)
    return _bind(canonical)


@once
def _merged() -> rdflib.Graph:
    return _build()


def merged_graph() -> rdflib.Graph:
    """The merged ontology as a new rdflib graph (built once per process and copied per call, so
    that callers may add to it freely). Blank nodes keep their canonical labels."""
    g = rdflib.Graph()
    for triple in _merged():
        g.add(triple)
    return _bind(g)


def merged_ntriples() -> str:
    """The merged ontology as sorted N-Triples, one triple per line."""
    lines = _merged().serialize(format="nt").splitlines()
    return "".join(sorted(line + "\n" for line in lines if line.strip()))


# ---------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------
def _term_to_jsonld(term) -> dict:
    if isinstance(term, URIRef):
        return {"@id": str(term)}
    if isinstance(term, BNode):
        return {"@id": f"_:{term}"}
    assert isinstance(term, Literal)
    node: dict = {"@value": str(term)}
    if term.language:
        node["@language"] = term.language
    elif term.datatype is not None and str(term.datatype) != XSD_NS + "string":
        node["@type"] = str(term.datatype)
    return node


def _compact(iri: str) -> str:
    best = None
    for prefix, ns in PREFIXES.items():
        if iri.startswith(ns) and len(iri) > len(ns):
            if best is None or len(ns) > len(PREFIXES[best]):
                best = prefix
    return f"{best}:{iri[len(PREFIXES[best]):]}" if best else iri


def to_jsonld(g: rdflib.Graph) -> dict:
    """Expanded-form JSON-LD nodes (full IRIs as property names would be unreadable, so property
    names and @id values are compacted with the inline @context's prefixes), in sorted order."""
    nodes: dict[str, dict[str, list]] = {}
    for s, p, o in g:
        sid = f"_:{s}" if isinstance(s, BNode) else str(s)
        node = nodes.setdefault(sid, {})
        if p == RDF.type and not isinstance(o, Literal):
            node.setdefault("@type", []).append(_compact(str(o)) if isinstance(o, URIRef) else f"_:{o}")
            continue
        value = _term_to_jsonld(o)
        if "@id" in value and not value["@id"].startswith("_:"):
            value["@id"] = _compact(value["@id"])
        node.setdefault(_compact(str(p)), []).append(value)

    def sort_key(v):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)

    graph = []
    for sid in sorted(nodes):
        node = nodes[sid]
        out: dict = {"@id": sid if sid.startswith("_:") else _compact(sid)}
        for key in sorted(node):
            out[key] = sorted(node[key], key=sort_key if key != "@type" else None)
        graph.append(out)
    return {"@context": dict(PREFIXES), "@graph": graph}


#: What dist/ holds: the ontology (Turtle, JSON-LD, RDF/XML for Protege and the OWL API) and the
#: rule descriptions (ids, labels, If/Then definitions, sources, claims and the SHACL-AF rules
#: themselves: what the explain queries read beside the ontology), in Turtle and JSON-LD.
RELEASE_FILES = ("b12kg.ttl", "b12kg.jsonld", "b12kg.owl", "b12kg-rules.ttl", "b12kg-rules.jsonld")


def rules_release_graph() -> rdflib.Graph:
    """The rule base as published: every rule file's triples, bound to the ontology's prefixes."""
    return _bind(parse_turtle(paths.rule_files()))


def write(outdir: Path) -> tuple[Path, ...]:
    """Write the release into ``outdir`` (RELEASE_FILES); returns their paths. Loading
    b12kg.ttl (or .owl) and b12kg-rules.ttl into a store beside a cohort's inferred.nq answers
    every query of queries/explain and queries/report."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    g = merged_graph()
    rules = rules_release_graph()
    stamp = f"# b12kg {__version__}: {{what}}, generated by `python -m b12kg.build` from {{src}}. Do not edit.\n"
    files = {
        "b12kg.ttl": stamp.format(what="merged ontology", src="ontology/") + g.serialize(format="turtle"),
        "b12kg.jsonld": json.dumps(to_jsonld(g), indent=1, ensure_ascii=False, sort_keys=False) + "\n",
        "b12kg.owl": g.serialize(format="xml"),
        "b12kg-rules.ttl": stamp.format(what="rule descriptions and SHACL-AF rules", src="rules/")
        + rules.serialize(format="turtle"),
        "b12kg-rules.jsonld": json.dumps(to_jsonld(rules), indent=1, ensure_ascii=False, sort_keys=False) + "\n",
    }
    out = []
    for name in RELEASE_FILES:
        path = outdir / name
        path.write_text(files[name], encoding="utf-8")
        out.append(path)
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m b12kg.build", description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", default="dist", help="output folder (default: dist)")
    args = ap.parse_args(argv)
    written = write(Path(args.outdir))
    n = len(merged_graph())
    print(f"wrote {', '.join(str(p) for p in written)} (ontology: {n} triples, version {__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
