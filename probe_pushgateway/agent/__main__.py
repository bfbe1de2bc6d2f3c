"""``python -m probe_pushgateway.agent``: same as ``bes-probe-agent``."""

import sys

from .cli import main

sys.exit(main())
