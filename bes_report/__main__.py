"""``python -m bes_report``: the same as the ``bes-report`` console script."""

import sys

from .cli import main

sys.exit(main())
