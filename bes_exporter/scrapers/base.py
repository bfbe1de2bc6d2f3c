"""What every scraper sees: the database, its clock, the config and state shared across scrapers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from dirac_db.connection import Database

from ..config import Config
from ..tracker import Changes, JobTracker


@dataclass
class Shared:
    """State kept across collections and shared by scrapers."""

    tracker: JobTracker
    sites: set[str] = field(default_factory=set)  # every real site seen, for zero-initialised counters


@dataclass
class Context:
    """One collection: ``now`` is the database's UTC clock at its start."""

    db: Database
    now: dt.datetime
    config: Config
    shared: Shared
    _changes: Changes | Exception | None = None

    def changes(self) -> Changes:
        """Jobs that changed since the last collection (read once per collection, shared)."""
        if self._changes is None:
            try:
                self._changes = self.shared.tracker.update(self.db, self.now)
            except Exception as exc:  # every dependent scraper fails with the same cause
                self._changes = exc
        if isinstance(self._changes, Exception):
            raise self._changes
        return self._changes


def not_ready(tracker: JobTracker) -> RuntimeError:
    """The error of a scraper whose data needs the tracker's first read of every active job."""
    return RuntimeError(f"still reading the active jobs for the first time ({len(tracker.active)} so far)")


class Scraper:
    """One scraper: ``name`` gives --collect.<name>; ``scrape`` yields fresh metric families."""

    name = ""
    help = ""
    enabled_by_default = True

    def __init__(self, config: Config):
        self.config = config

    def scrape(self, ctx: Context) -> Iterable[Metric]:
        raise NotImplementedError
