"""The remote-store engine under the name the docs and the Makefile use
(``b12kg.cohort.remote.Endpoint``, ``python -m b12kg.cohort.remote demo``): a thin re-export of
``b12kg.engines.remote``."""

import sys

from ..engines.remote import (Endpoint, RemoteEngine, demo, free_port, kb_ntriples, main, oxigraph_binary,  # noqa: F401
                              oxigraph_server, wait_until_up)

if __name__ == "__main__":
    sys.exit(main())
