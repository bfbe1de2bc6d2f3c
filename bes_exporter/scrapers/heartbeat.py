"""dirac_running_jobs_heartbeat_age_seconds{site}: gauge histogram of the heartbeat age of
Running/Completing jobs, in buckets reaching past StalledJobAgent's 4500 s (Stalled) and 11700 s
(Failed). Reads active rows only (index StatusSite); ages use the database clock."""

from __future__ import annotations

from prometheus_client.core import GaugeHistogramMetricFamily

from ..labels import site_label
from .base import Context, Scraper

# INTERVAL(age-1, b1, b2, ...) is the index of the first bucket with age <= bound.
HEARTBEAT_SQL = """
SELECT Site, INTERVAL(age - 1, {buckets}) AS b, COUNT(*), SUM(age) FROM (
  SELECT Site, GREATEST(TIMESTAMPDIFF(SECOND, COALESCE(HeartBeatTime, StartExecTime, LastUpdateTime),
                                      UTC_TIMESTAMP()), 0) AS age
  FROM `{jobdb}`.Jobs FORCE INDEX (StatusSite)
  WHERE Status IN ('Running', 'Completing') AND JobGroup <> %s
) AS running GROUP BY Site, b
"""


class Heartbeat(Scraper):
    name = "heartbeat"
    help = "Heartbeat age of running jobs (gauge histogram), the pre-stall warning."

    def scrape(self, ctx: Context):
        buckets = tuple(ctx.config.heartbeat["buckets"])
        sql = HEARTBEAT_SQL.format(jobdb=ctx.config.database["jobdb"], buckets=", ".join(map(str, buckets)))
        per_site: dict[str, list] = {}
        for site, b, n, total in ctx.db.query(sql, (ctx.config.probes["job_group"],)):
            h = per_site.setdefault(site_label(site), [0] * (len(buckets) + 1) + [0.0])
            h[int(b)] += int(n)
            h[-1] += float(total or 0)
        fam = GaugeHistogramMetricFamily("dirac_running_jobs_heartbeat_age_seconds",
                                         "Seconds since the last heartbeat of Running/Completing jobs.",
                                         labels=["site"])
        for site in sorted(per_site | dict.fromkeys(ctx.shared.sites)):
            h = per_site.get(site, [0] * (len(buckets) + 1) + [0.0])
            cumulative, out = 0, []
            for i, bound in enumerate((*buckets, "+Inf")):
                cumulative += h[i]
                out.append((str(bound), cumulative))
            fam.add_metric([site], out, h[-1])
        yield fam
