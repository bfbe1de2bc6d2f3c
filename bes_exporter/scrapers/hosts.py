"""Per worker node: finished jobs, fast failures and the last job end, from JobParameters' HostName.

Consumes the job tracker's finished job lives (probe jobs and lives that did not run are skipped) and
looks up their worker node by primary key (``JobParameters`` PK is (JobID, Name)), in chunks; the table
is never scanned. A job whose HostName row is not there yet stays pending for up to
``LOOKUP_ATTEMPTS`` collections, then counts under host ``unknown``.

Cardinality: a host is exported while it had a job within ``hosts.window_seconds`` (it is forgotten
afterwards, and starts again from zero if it comes back); per site at most ``hosts.max_per_site``
hosts, the busiest in the window (``bes_exporter.busiest``); each host newly left out by the cap adds one to
``dirac_exporter_hosts_dropped_total{site}``.

DIRAC >= 9.1 has no JobParameters table in MySQL: the scraper then fails with one clear message and
exports nothing; the other scrapers are unaffected.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..busiest import Busiest, epoch
from ..labels import FINAL_STATES, host_label, site_label
from ..tracker import Finished
from .base import Context, Scraper

HOSTNAME_SQL = "SELECT JobID, Value FROM `{jobdb}`.JobParameters WHERE Name = 'HostName' AND JobID IN ({ids})"

# Metric families: (name without _total, help).
JOBS_FINISHED = ("dirac_host_jobs_finished", "Jobs that reached a final status on this worker node.")
FAST_FAILURES = ("dirac_host_job_failures_fast",
                 "Failed jobs on this worker node whose wall time was below hosts.fast_failure_seconds.")
LAST_END = ("dirac_host_last_job_end_timestamp_seconds", "End of the latest finished job on this worker node.")
DROPPED = ("dirac_exporter_hosts_dropped", "Hosts left out of the per-host metrics by hosts.max_per_site.")

UNAVAILABLE = ("JobDB has no JobParameters table (DIRAC >= 9.1 keeps job parameters in OpenSearch);"
               " per-host metrics are unavailable; disable with --no-collect.hosts")

CHUNK = 1000  # job IDs per lookup statement
LOOKUP_ATTEMPTS = 3  # collections a job waits for its HostName row before it counts as `unknown`
MAX_PENDING = 20000  # pending jobs kept at most; the oldest beyond count as `unknown`


class _Host:
    __slots__ = ("counts", "fast", "last_end", "shown")

    def __init__(self) -> None:
        self.shown = False  # exported once (at zero) yet: a new series must start at 0 for increase()
        self.counts: dict[str, int] = {}
        self.fast = 0
        self.last_end: dt.datetime | None = None


class Hosts(Scraper):
    name = "hosts"
    help = "Per worker node finished jobs, fast failures, last job end (JobParameters, DIRAC <= 9.0)."

    def __init__(self, config):
        super().__init__(config)
        hosts = config.hosts
        self.window = hosts["window_seconds"]
        self.cap = hosts["max_per_site"]
        self.fast_limit = hosts["fast_failure_seconds"]
        self.hosts: dict[str, dict[str, _Host]] = {}  # site -> host -> state
        self.busiest: dict[str, Busiest] = {}  # site -> its hosts' recent jobs
        self.dropped: dict[str, int] = {}
        self.pending: list[tuple[Finished, int]] = []  # (event, failed lookups so far)
        self.table: bool | None = None  # JobParameters exists (None: look again)

    def scrape(self, ctx: Context):
        error = None
        try:
            self._check_table(ctx)
            self._update(ctx)
        except Exception as exc:  # still export what was counted so far
            error = exc
        if self.table is not False:
            yield from self._families(ctx.now)
        if error is not None:
            raise error

    def _check_table(self, ctx: Context) -> None:
        if self.table:
            return
        self.table = "JobParameters" in ctx.db.tables(ctx.config.database["jobdb"])
        if not self.table:
            raise LookupError(UNAVAILABLE)

    def _update(self, ctx: Context) -> None:
        self.pending.extend((e, 0) for e in ctx.changes().finished if not e.probe and e.ran)
        if not self.pending:
            return
        ids = sorted({e.job_id for e, _ in self.pending})
        sql = HOSTNAME_SQL.format(jobdb=ctx.config.database["jobdb"], ids="{ids}")
        found: dict[int, str] = {}
        try:
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i:i + CHUNK]
                found.update(ctx.db.query(sql.format(ids=", ".join(["%s"] * len(chunk))), chunk))
        except Exception:
            self.table = None  # the table may have gone: check again next time
            raise
        keep: list[tuple[Finished, int]] = []
        for event, attempts in self.pending:
            if event.job_id in found:
                self._count(event, host_label(found[event.job_id]))
            elif attempts + 1 >= LOOKUP_ATTEMPTS:
                self._count(event, "unknown")
            else:
                keep.append((event, attempts + 1))
        overflow = max(0, len(keep) - MAX_PENDING)
        for event, _ in keep[:overflow]:
            self._count(event, "unknown")
        self.pending = keep[overflow:]

    def _count(self, event: Finished, host: str) -> None:
        site = site_label(event.site)
        h = self.hosts.setdefault(site, {}).setdefault(host, _Host())
        h.counts[event.status] = h.counts.get(event.status, 0) + 1
        if event.status == "Failed" and event.start is not None and event.end is not None:
            if 0 <= (event.end - event.start).total_seconds() < self.fast_limit:
                h.fast += 1
        end = event.end or event.lut
        h.last_end = end if h.last_end is None else max(h.last_end, end)
        active = max(t for t in (event.end, event.lut) if t is not None)
        if site not in self.busiest:
            self.busiest[site] = Busiest(self.window, self.cap)
        self.busiest[site].add(host, active)

    def _select(self, now: dt.datetime | None) -> dict[str, list[str]]:
        """Forget hosts idle for the window, apply the per-site cap; the exported hosts per site."""
        exported: dict[str, list[str]] = {}
        for site, busiest in list(self.busiest.items()):
            exported[site], newly_left_out = busiest.select(now)
            self.dropped[site] = self.dropped.get(site, 0) + newly_left_out
            hosts = self.hosts[site]
            for name in [n for n in hosts if n not in busiest.keys]:
                del hosts[name]
            if not hosts:
                del self.hosts[site], self.busiest[site]
        return exported

    def _families(self, now: dt.datetime | None):
        exported = self._select(now)
        fin = CounterMetricFamily(*JOBS_FINISHED, labels=["site", "host", "status"])
        fast = CounterMetricFamily(*FAST_FAILURES, labels=["site", "host"])
        last = GaugeMetricFamily(*LAST_END, labels=["site", "host"])
        for site in sorted(exported):
            for name in sorted(exported[site]):
                h = self.hosts[site][name]
                # A host's series appear with its first finished job. Shown at 0 in that first scrape and
                # with the real counts one scrape later, increase() sees the jobs; otherwise a new black
                # hole that failed 8 jobs between two scrapes would start at 8 and show no increase.
                zero = not h.shown
                h.shown = True
                for status in FINAL_STATES:
                    fin.add_metric([site, name, status], 0 if zero else h.counts.get(status, 0))
                fast.add_metric([site, name], 0 if zero else h.fast)
                if h.last_end is not None:
                    last.add_metric([site, name], epoch(h.last_end))
        dropped = CounterMetricFamily(*DROPPED, labels=["site"])
        for site in sorted(self.dropped):
            dropped.add_metric([site], self.dropped[site])
        yield fin
        yield fast
        yield last
        yield dropped
