"""The Prometheus collector: runs every enabled scraper per scrape, one lock, self metrics.

A scrape fits in Prometheus's scrape timeout (the ``X-Prometheus-Scrape-Timeout-Seconds`` header, less
``--web.timeout-offset``; without the header 2 x ``database.query_timeout``): every statement gets at most
half the time left (and never more than ``database.query_timeout``), and the scrapers that no longer fit
are skipped. Both show as
``dirac_exporter_collector_success 0`` and ``dirac_exporter_collector_cut 1``, so a slow database is never
mistaken for a dead exporter (``up`` stays 1 and the counters keep their values).
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from dirac_db.connection import STATEMENT_TIMEOUT, Database, DatabaseError

from . import __version__
from .config import Config
from .scrapers.base import Context, Scraper, Shared
from .tracker import JobTracker

log = logging.getLogger("bes_exporter")

# Monotonic deadline of the scrape being served in this thread (None: no scrape timeout was given).
_DEADLINE: ContextVar[float | None] = ContextVar("scrape_deadline", default=None)


@contextmanager
def scrape_deadline(deadline: float | None) -> Iterator[None]:
    """Collections in this block finish by ``deadline`` (time.monotonic()); set by the HTTP handler."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class DiracCollector:
    """Custom collector. Scrapes are serialised, so concurrent scrapes (an HA pair of Prometheus
    servers) never double-count: each runs its own incremental step on the shared state."""

    def __init__(self, config: Config, scrapers: Iterable[type[Scraper]]):
        self.config = config
        self.db = Database(config.database, config.password)
        self.scrapers = [cls(config) for cls in scrapers]
        self.shared = Shared(tracker=JobTracker(config))
        self.lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self.last_up = 0

    def describe(self) -> list[Metric]:
        return []  # registering must not touch the database

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            families = list(self._collect())
        instance = self.config.instance
        if instance:
            for fam in families:
                fam.samples = [Sample(s.name, {**s.labels, "dirac_instance": instance}, s.value, s.timestamp,
                                      s.exemplar) for s in fam.samples]
        return families

    def _collect(self) -> Iterable[Metric]:
        success = GaugeMetricFamily("dirac_exporter_collector_success",
                                    "1 if the collector succeeded in this scrape.", labels=["collector"])
        duration = GaugeMetricFamily("dirac_exporter_collector_duration_seconds",
                                     "Time the collector took in this scrape.", labels=["collector"])
        cut = GaugeMetricFamily("dirac_exporter_collector_cut",
                                "1 if the collector was skipped or cut short to fit the scrape timeout.",
                                labels=["collector"])
        limit = 2 * float(self.config.database["query_timeout"])
        deadline = min(time.monotonic() + limit, _DEADLINE.get() or float("inf"))
        try:
            now = self.db.now()
            up = 1
            self._note("database", None)
        except DatabaseError as exc:
            self._note("database", str(exc))
            now, up = None, 0
        self.last_up = up
        # With the database down, scrapers still run against _Unreachable so that counters keep
        # exporting what they counted; every query fails at once.
        db = _Bounded(self.db, deadline) if up else _Unreachable()
        ctx = Context(db=db, now=now, config=self.config, shared=self.shared)
        for scraper in self.scrapers:
            t0 = time.monotonic()
            ok = 0
            if isinstance(db, _Bounded):
                db.cut = False
            try:
                yield from scraper.scrape(ctx)
                ok = 1
                self._note(scraper.name, None)
            except Exception as exc:  # noqa: BLE001 - one scraper never hides the others
                if up:
                    error = str(exc) or type(exc).__name__
                    if self.config.vo is not None and "Unknown column 'VO'" in error:  # DIRAC < 9.1
                        error = (f"{self.config.source}: 'vo' needs DIRAC >= 9.1 (its JobDB and PilotAgentsDB have"
                                 " a VO column); remove 'vo' from the config for an older DIRAC")
                    self._note(scraper.name, error)
            success.add_metric([scraper.name], ok)
            duration.add_metric([scraper.name], time.monotonic() - t0)
            cut.add_metric([scraper.name], int(isinstance(db, _Bounded) and db.cut))
        yield success
        yield duration
        yield cut
        yield GaugeMetricFamily("dirac_up", "1 if DIRAC's JobDB answered in this scrape.", value=up)
        info = GaugeMetricFamily("dirac_exporter_build_info", "Exporter version.", labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _note(self, what: str, error: str | None) -> None:
        """Log a failure once when it starts and once when it clears (no log flood at 30 s scrapes)."""
        before = self._failing.get(what)
        if error and error != before:
            log.error("%s failed: %s", what, error)
            self._failing[what] = error
        elif not error and before:
            log.info("%s recovered", what)
            del self._failing[what]


class _Bounded:
    """The database, each statement limited to half the time left before ``deadline``: a statement held by
    a lock cannot take the whole scrape, the scrapers after it still get their turn."""

    def __init__(self, db: Database, deadline: float):
        self.db, self.deadline = db, deadline
        self.cut = False  # a statement of the current scraper was stopped or skipped by this limit

    def query(self, sql: str, args=None) -> list[tuple]:
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            self.cut = True
            raise DatabaseError("skipped: no time left before the scrape timeout")
        limit = left / 2
        try:
            return self.db.query(sql, args, timeout=limit)
        except DatabaseError as exc:
            if exc.code in STATEMENT_TIMEOUT and limit < float(self.db.cfg["query_timeout"]):
                self.cut = True
            raise

    def now(self):
        return self.db.now()

    def tables(self, schema: str) -> set[str]:
        return self.db.tables(schema)


class _Unreachable:
    """Stands in for the database while it is down: every call fails at once."""

    def __init__(self, why: str = "database unreachable"):
        self.why = why

    def query(self, *_a, **_k):
        raise DatabaseError(self.why)

    now = tables = query
