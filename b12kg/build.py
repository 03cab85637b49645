"""``python -m b12kg.build dist``: the release build under the name the docs and the Makefile use
(a thin re-export of ``b12kg.kb.build``)."""

import sys

from .kb.build import PREFIXES, merged_graph, merged_ntriples, main, to_jsonld, version_iri, write  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
