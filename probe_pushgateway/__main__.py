"""``python -m probe_pushgateway`` runs the probe (same as ``bes-probe``)."""

import sys

from .cli import main

sys.exit(main())
