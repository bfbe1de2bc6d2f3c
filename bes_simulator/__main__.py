"""``python -m bes_simulator`` = ``bes-simulate``."""

import sys

from .cli import main

sys.exit(main())
