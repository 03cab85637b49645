"""The Python API, a thin facade over the layers: a record is read (``inputs``), written as a
patient graph (``rdf.patient``), reasoned over by an engine (``engines``), and its findings read
back from the inferred graph with the queries of ``queries/explain`` (``explain``)."""

from __future__ import annotations

from typing import Any

from .engines import ENGINES, get as get_engine
from .explain.assemble import assessment_of, explanation_store, graph_store
from .explain.model import Assessment
from .inputs import load_record
from .inputs.files import MAX_INPUT_BYTES, read_file
from .inputs.normalise import check_assessable
from .rdf.patient import record_to_ntriples
from .rdf.store import run_query
from .rdf.terms import DEFAULT_BASE

__all__ = ["ENGINES", "MAX_INPUT_BYTES", "assess", "explanation_store", "graph_store", "infer", "load_record", "read_file", "run_query"]


def assess(record: Any, *, profile: str | None = None, engine: str = "oxigraph",
           base: str = DEFAULT_BASE) -> Assessment:
    """Assess one patient: a file path, a case dict, a FHIR Bundle dict or a ``PatientRecord``.

    >>> a = assess({"id": "demo", "patient": {"sex": "female", "age_years": 34},
    ...             "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}})
    >>> "IronDeficiency" in a.codes
    True
    >>> assess({"id": "d", "observations": {"ferritin": {"value": "29.99999999999999999", "unit": "ug/L"}}},
    ...        engine="compiled").codes == assess({"id": "d", "observations": {"ferritin": {
    ...        "value": "29.99999999999999999", "unit": "ug/L"}}}).codes
    True
    """
    eng = get_engine(engine)
    rec = check_assessable(load_record(record, profile=profile))
    input_nt = record_to_ntriples(rec, base)
    inferred_nt = eng.infer([rec], base=base)
    return assessment_of(rec, input_nt, inferred_nt, engine=engine, base=base)


def infer(input_ntriples: str, *, engine: str = "oxigraph") -> str:
    """The inferred triples for a patient graph (N-Triples in, sorted N-Triples out)."""
    return get_engine(engine).infer_graph(input_ntriples)
