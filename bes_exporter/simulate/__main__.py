"""``python -m bes_exporter.simulate`` = ``bes-simulate``."""

import sys

from .cli import main

sys.exit(main())
