"""``python -m b12kg.cli``: the command line."""

import sys

from . import main

sys.exit(main())
