"""``python -m b12kg``: the command line."""

import sys

from .cli import main

sys.exit(main())
