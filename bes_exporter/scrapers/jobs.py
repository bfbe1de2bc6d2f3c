"""dirac_jobs{site,status} and dirac_probe_jobs{site,status}: jobs now in each non-final status.

Reads nothing itself: the job tracker keeps every active job in a (status, site, probe) cell from the rows
it reads (what changed, and its sweep of the active jobs along the ``Status`` index, a bounded share per
scrape: ``bes_exporter.tracker``). A change DIRAC makes without moving ``LastUpdateTime`` shows within two
passes of the sweep; ``dirac_jobs_last_resync_timestamp_seconds`` is when the last complete pass started:
every change made before it is in the gauges. Probe jobs (JobGroup ``probes.job_group``) are counted apart.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from ..busiest import epoch
from ..labels import ACTIVE_STATES, is_real_site
from .base import Context, Scraper, not_ready


class Jobs(Scraper):
    name = "jobs"
    help = "Jobs in each non-final status per site (dirac_jobs, dirac_probe_jobs)."

    def scrape(self, ctx: Context):
        ctx.changes()
        tracker = ctx.shared.tracker
        if not tracker.ready:
            raise not_ready(tracker)
        counts: dict[tuple[str, str], int] = {}
        probes: dict[tuple[str, str], int] = {}
        for (status, site, probe), n in tracker.active.cells.nonzero():
            target = probes if probe else counts
            target[(site, status)] = target.get((site, status), 0) + n
        jobs = GaugeMetricFamily("dirac_jobs", "Jobs currently in each non-final DIRAC status (probe jobs excluded).",
                                 labels=["site", "status"])
        sites = {site for site, _ in counts} | {site for site, _ in probes}
        ctx.shared.sites.update(s for s in sites if is_real_site(s))
        for site in sorted(sites | ctx.shared.sites):
            for status in ACTIVE_STATES:
                jobs.add_metric([site, status], counts.get((site, status), 0))
        yield jobs
        probe = GaugeMetricFamily("dirac_probe_jobs", "Probe jobs (JobGroup probes.job_group) in each active status.",
                                  labels=["site", "status"])
        for (site, status), n in sorted(probes.items()):
            probe.add_metric([site, status], n)
        yield probe
        yield GaugeMetricFamily("dirac_jobs_last_resync_timestamp_seconds",
                                "Start of the last complete re-read of the active jobs: every change made before"
                                " it is in dirac_jobs and dirac_probe_jobs.",
                                value=epoch(min(sweep.last_pass for sweep in tracker.sweeps)))
