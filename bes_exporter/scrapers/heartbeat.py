"""dirac_running_jobs_heartbeat_age_seconds{site}: gauge histogram of the heartbeat age of
Running/Completing jobs, in buckets reaching past StalledJobAgent's 4500 s (Stalled) and 11700 s
(Failed); ages on the database clock.

Reads nothing itself: a heartbeat moves no indexed column, so each job's age is the one read with its row
last time, by the tracker's window (what changed) or its sweep of the Running/Completing jobs, which reads
each of them at least every ``heartbeat.period_seconds``. Every age was read at or after
``dirac_running_jobs_heartbeat_last_update_timestamp_seconds`` (the start of the last complete pass): an age
is never above the true one, a job that stopped beating shows it late by at most that much.
"""

from __future__ import annotations

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily

from ..busiest import epoch
from .base import Context, Scraper, not_ready


class Heartbeat(Scraper):
    name = "heartbeat"
    help = "Heartbeat age of running jobs (gauge histogram), the pre-stall warning."

    def scrape(self, ctx: Context):
        ctx.changes()
        tracker = ctx.shared.tracker
        if not tracker.ready:
            raise not_ready(tracker)
        ages = tracker.active.ages
        fam = GaugeHistogramMetricFamily("dirac_running_jobs_heartbeat_age_seconds",
                                         "Seconds since the last heartbeat of Running/Completing jobs, as last read.",
                                         labels=["site"])
        empty = [0] * (len(ages.bounds) + 2)
        for site in sorted({s for s, h in ages.per_site.items() if any(h[:-1])} | ctx.shared.sites):
            h = ages.per_site.get(site, empty)
            cumulative, out = 0, []
            for i, bound in enumerate((*ages.bounds, "+Inf")):
                cumulative += h[i]
                out.append((str(bound), cumulative))
            fam.add_metric([site], out, float(h[-1]))
        yield fam
        yield GaugeMetricFamily("dirac_running_jobs_heartbeat_last_update_timestamp_seconds",
                                "Every age in dirac_running_jobs_heartbeat_age_seconds was read at or after this time.",
                                value=epoch(tracker.sweeps[0].last_pass))
