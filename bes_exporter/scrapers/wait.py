"""dirac_job_wait_seconds{site}: histogram of submission -> start for jobs that started since the last
collection (from the job tracker; a rescheduled job's later starts are not observed, as DIRAC keeps the
first StartExecTime). Every known site is exported, at zero until a job starts there."""

from __future__ import annotations

from prometheus_client.core import HistogramMetricFamily

from ..labels import site_label
from .base import Context, Scraper

BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, float("inf"))


class Wait(Scraper):
    name = "wait"
    help = "Queue wait (submission to start) of jobs that started (histogram)."

    def __init__(self, config):
        super().__init__(config)
        self.hist: dict[str, list] = {}  # site -> [bucket counts..., sum]

    def scrape(self, ctx: Context):
        error = None
        try:
            for event in ctx.changes().started:
                if event.probe:
                    continue
                h = self.hist.setdefault(site_label(event.site), [0] * len(BUCKETS) + [0.0])
                for i, bound in enumerate(BUCKETS):
                    if event.wait_seconds <= bound:
                        h[i] += 1
                h[-1] += event.wait_seconds
        except Exception as exc:
            error = exc
        fam = HistogramMetricFamily("dirac_job_wait_seconds", "Time from submission to start of execution.",
                                    labels=["site"])
        # Every known site from the first collection on, at zero until a job starts there: "no job
        # started" is then a flat series, not a missing one (DiracSiteNotMatching needs it).
        for site in sorted(ctx.shared.sites - set(self.hist)):
            self.hist[site] = [0] * len(BUCKETS) + [0.0]
        for site in sorted(self.hist):
            h = self.hist[site]
            buckets = [("+Inf" if b == float("inf") else repr(b), h[i]) for i, b in enumerate(BUCKETS)]
            fam.add_metric([site], buckets, h[-1])
        yield fam
        if error is not None:
            raise error
