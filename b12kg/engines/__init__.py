"""The engines: one interface (``Engine``: ``reason`` a batch of records, ``infer_graph`` a patient
graph) and one dispatch (``get``), used by the API and the cohort alike.

| name | what runs |
|---|---|
| ``oxigraph`` (default) | each rule as a SPARQL 1.1 Update in an in-process pyoxigraph store |
| ``pyshacl`` | the SHACL-AF rules as written, one patient at a time (the reference) |
| ``swrl`` | the monotone rules as SWRL, run by Pellet (owlready2, Java): findings only |
| ``compiled`` | the rules compiled to NumPy masks; a record beyond exact float comparison goes to ``oxigraph`` |
| remote (``endpoint=``) | each rule as a SPARQL 1.1 Update inside a remote store |

>>> get("compiled").name, get("oxigraph").name
('compiled', 'oxigraph')
"""

from __future__ import annotations

from typing import Any

from ..cache import import_once
from ..errors import B12kgError
from .base import Engine, Findings, Provenance, Reasoned

# Implementations are imported when first asked for: pyshacl, owlready2 and the compiled
# program are costly to import and not every run needs them.
_IMPLEMENTATIONS = {"oxigraph": ("oxigraph", "OxigraphEngine"), "pyshacl": ("pyshacl", "PyshaclEngine"),
                    "swrl": ("swrl", "SwrlEngine"), "compiled": ("compiled", "CompiledEngine")}
ENGINES = tuple(_IMPLEMENTATIONS)


def get(name: str = "oxigraph", *, endpoint: Any = None) -> Engine:
    """The engine called ``name``; with ``endpoint`` (a ``b12kg.engines.remote.Endpoint``), the
    remote store, whatever the name."""
    if endpoint is not None:
        return import_once(f"{__name__}.remote").RemoteEngine(endpoint)
    if name not in _IMPLEMENTATIONS:
        raise B12kgError(f"engine {name!r} is not one of {', '.join(ENGINES)}")
    module, cls = _IMPLEMENTATIONS[name]
    return getattr(import_once(f"{__name__}.{module}"), cls)()


__all__ = ["ENGINES", "Engine", "Findings", "Provenance", "Reasoned", "get"]
