"""dirac_jobs{site,status} and dirac_probe_jobs{site,status}: jobs now in each non-final status.

Both queries read only index entries: ``StatusSite`` (Status, Site) for all active jobs and
``JobGroup`` for the probe jobs, which are subtracted from the site statistics.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from ..labels import ACTIVE_STATES, PLACEHOLDER_SITES, site_label
from .base import Context, Scraper

_STATES = ", ".join(f"'{s}'" for s in ACTIVE_STATES)

ACTIVE_SQL = f"""
SELECT Status, Site, COUNT(*) FROM `{{jobdb}}`.Jobs FORCE INDEX (StatusSite)
WHERE Status IN ({_STATES}) GROUP BY Status, Site
"""

PROBE_SQL = f"""
SELECT Status, Site, COUNT(*) FROM `{{jobdb}}`.Jobs FORCE INDEX (JobGroup)
WHERE JobGroup = %s AND Status IN ({_STATES}) GROUP BY Status, Site
"""


class Jobs(Scraper):
    name = "jobs"
    help = "Jobs in each non-final status per site (dirac_jobs, dirac_probe_jobs)."

    def scrape(self, ctx: Context):
        jobdb = ctx.config.database["jobdb"]
        counts: dict[tuple[str, str], int] = {}
        for status, site, n in ctx.db.query(ACTIVE_SQL.format(jobdb=jobdb)):
            key = (site_label(site), status)
            counts[key] = counts.get(key, 0) + int(n)
        probes: dict[tuple[str, str], int] = {}
        for status, site, n in ctx.db.query(PROBE_SQL.format(jobdb=jobdb), (ctx.config.probes["job_group"],)):
            key = (site_label(site), status)
            probes[key] = probes.get(key, 0) + int(n)
            counts[key] = counts.get(key, 0) - int(n)
        jobs = GaugeMetricFamily("dirac_jobs", "Jobs currently in each non-final DIRAC status (probe jobs excluded).",
                                 labels=["site", "status"])
        sites = {site for site, _ in counts} | {site for site, _ in probes}
        ctx.shared.sites.update(s for s in sites if s not in PLACEHOLDER_SITES and s != "invalid")
        for site in sorted(sites | ctx.shared.sites):
            for status in ACTIVE_STATES:
                jobs.add_metric([site, status], max(counts.get((site, status), 0), 0))
        yield jobs
        probe = GaugeMetricFamily("dirac_probe_jobs", "Probe jobs (JobGroup probes.job_group) in each active status.",
                                  labels=["site", "status"])
        for (site, status), n in sorted(probes.items()):
            probe.add_metric([site, status], n)
        yield probe
