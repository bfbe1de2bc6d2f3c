"""``python -m bes_demo up|down|status`` (what ``make demo`` and ``make demo-down`` run)."""

import sys

from .cli import main

sys.exit(main())
