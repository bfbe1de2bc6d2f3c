"""dirac_jobs_finished_total{site,status} and dirac_jobs_failed_total{site,reason}.

Counted from the job tracker's changes (window over LastUpdateTime, see ``tracker``): each job life
that ran at the site once, when it is first seen final. Lives that never ran (failed by the optimizers,
killed while waiting) are not the site's and are not counted here (the ``owners`` scraper counts the
failed ones apart). Zero-initialised for every known site so ``increase()`` works from the first failure
on. Probe jobs are not counted here.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from ..labels import FAIL_REASONS, FINAL_STATES, fail_reason, is_real_site, site_label
from .base import Context, Scraper


class Finished(Scraper):
    name = "finished"
    help = "Jobs reaching a final status, and failures by reason (counters)."

    def __init__(self, config):
        super().__init__(config)
        self.finished: dict[tuple[str, str], int] = {}
        self.failed: dict[tuple[str, str], int] = {}
        self.shown: set[str] = set()  # sites whose counters were exported once (at zero the first time)

    def scrape(self, ctx: Context):
        error = None
        try:
            for event in ctx.changes().finished:
                if event.probe or not event.ran:
                    continue
                site = site_label(event.site)
                if is_real_site(site):
                    ctx.shared.sites.add(site)
                key = (site, event.status)
                self.finished[key] = self.finished.get(key, 0) + 1
                if event.status == "Failed":
                    key = (site, fail_reason(event.minor))
                    self.failed[key] = self.failed.get(key, 0) + 1
        except Exception as exc:  # still export what was counted so far
            error = exc
        sites = ctx.shared.sites | {s for s, _ in self.finished}
        fin = CounterMetricFamily("dirac_jobs_finished", "Jobs that ran at the site and reached a final status,"
                                  " each job life once.",
                                  labels=["site", "status"])
        fail = CounterMetricFamily("dirac_jobs_failed", "Failed jobs that ran at the site, by normalised MinorStatus.",
                                   labels=["site", "reason"])
        for site in sorted(sites):
            # a site first seen through jobs that already ended starts at 0, so increase() counts them
            zero = site not in self.shown
            self.shown.add(site)
            for status in FINAL_STATES:
                fin.add_metric([site, status], 0 if zero else self.finished.get((site, status), 0))
            for reason in FAIL_REASONS:
                fail.add_metric([site, reason], 0 if zero else self.failed.get((site, reason), 0))
        yield fin
        yield fail
        if error is not None:
            raise error
