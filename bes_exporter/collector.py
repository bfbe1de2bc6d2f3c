"""The Prometheus collector: runs every enabled scraper per scrape, one lock, self metrics."""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from dirac_db.connection import Database, DatabaseError

from . import __version__
from .config import Config
from .scrapers.base import Context, Scraper, Shared
from .tracker import JobTracker

log = logging.getLogger("bes_exporter")


class DiracCollector:
    """Custom collector. Scrapes are serialised, so concurrent scrapes (an HA pair of Prometheus
    servers) never double-count: each runs its own incremental step on the shared state."""

    def __init__(self, config: Config, scrapers: Iterable[type[Scraper]]):
        self.config = config
        self.db = Database(config.database, config.password)
        self.scrapers = [cls(config) for cls in scrapers]
        jobs = config.jobs
        self.shared = Shared(tracker=JobTracker(
            config.database["jobdb"], config.probes["job_group"], jobs["overlap_seconds"],
            jobs["resync_seconds"], jobs["finished_retention_seconds"], jobs["page_rows"],
            jobs["max_rows_per_scrape"], config.database["logdb"]))
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
        ctx = Context(db=self.db if up else _Unreachable(), now=now, config=self.config, shared=self.shared)
        deadline = time.monotonic() + 2 * float(self.config.database["query_timeout"])
        for scraper in self.scrapers:
            t0 = time.monotonic()
            ok = 0
            if time.monotonic() > deadline:
                ctx.db = _Unreachable("skipped: the scrape already took 2 x database.query_timeout")
            try:
                yield from scraper.scrape(ctx)
                ok = 1
                self._note(scraper.name, None)
            except Exception as exc:  # noqa: BLE001 - one scraper never hides the others
                if up:
                    self._note(scraper.name, str(exc) or type(exc).__name__)
            success.add_metric([scraper.name], ok)
            duration.add_metric([scraper.name], time.monotonic() - t0)
        yield success
        yield duration
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


class _Unreachable:
    """Stands in for the database while it is down: every call fails at once."""

    def __init__(self, why: str = "database unreachable"):
        self.why = why

    def query(self, *_a, **_k):
        raise DatabaseError(self.why)

    now = tables = query
