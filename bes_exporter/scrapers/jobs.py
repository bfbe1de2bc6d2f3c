"""dirac_jobs{site,status} and dirac_probe_jobs{site,status}: jobs now in each non-final status.

One query over the ``StatusSite`` (Status, Site) index range of the active states, with each active
row's JobGroup to tell probe jobs apart (they are left out of the site statistics). Its cost follows the
number of active jobs, never the history: the ``JobGroup`` index would hold every probe job ever run.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from ..labels import ACTIVE_STATES, is_real_site, site_label
from .base import Context, Scraper

_STATES = ", ".join(f"'{s}'" for s in ACTIVE_STATES)

ACTIVE_SQL = f"""
SELECT Status, Site, JobGroup = %s, COUNT(*) FROM `{{jobdb}}`.Jobs FORCE INDEX (StatusSite)
WHERE Status IN ({_STATES}) GROUP BY Status, Site, JobGroup = %s
"""


class Jobs(Scraper):
    name = "jobs"
    help = "Jobs in each non-final status per site (dirac_jobs, dirac_probe_jobs)."

    def scrape(self, ctx: Context):
        jobdb = ctx.config.database["jobdb"]
        group = ctx.config.probes["job_group"]
        counts: dict[tuple[str, str], int] = {}
        probes: dict[tuple[str, str], int] = {}
        for status, site, probe, n in ctx.db.query(ACTIVE_SQL.format(jobdb=jobdb), (group, group)):
            target = probes if probe else counts
            key = (site_label(site), status)
            target[key] = target.get(key, 0) + int(n)
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
