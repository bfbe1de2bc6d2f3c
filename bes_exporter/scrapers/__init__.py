"""The one table of scrapers; ``--collect.<name>`` / ``--no-collect.<name>`` flags come from it."""

from __future__ import annotations

from .finished import Finished
from .heartbeat import Heartbeat
from .hosts import Hosts
from .jobs import Jobs
from .owners import Owners
from .pilots import Pilots
from .reschedules import Reschedules
from .site_status import SiteStatus
from .wait import Wait

# Order matters a little: `jobs` and `site_status` first learn the known sites that counters zero-fill.
SCRAPERS = (Jobs, SiteStatus, Finished, Wait, Reschedules, Heartbeat, Hosts, Owners, Pilots)
