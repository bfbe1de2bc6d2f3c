"""dirac_jobs_rescheduled_total{site, reason}: job lives DIRAC rescheduled before they ended, each once, at the
site where the life was last seen, by the reason of its "Rescheduled" LoggingInfo record (bounded:
labels.RESCHEDULE_REASONS). The JobWrapper reschedules a job whose input sandbox or input data cannot be
fetched (JobWrapperUtilities.rescheduleFailedJob) and DIRAC fails it only after MaxRescheduling (3) of them:
a storm of reschedules at a site comes before any failure. Costs nothing of its own: the job tracker reads
the LoggingInfo records of the jobs whose RescheduleCounter moved, by primary key. Probe jobs are left out;
a reschedule of a life that had ended (by hand) is not DIRAC's retry and is not counted."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from ..labels import RESCHEDULE_REASONS, site_label
from .base import Context, Scraper


class Reschedules(Scraper):
    name = "reschedules"
    help = "Job lives DIRAC rescheduled before they ended, per site and reason."

    def __init__(self, config):
        super().__init__(config)
        self.counts: dict[tuple[str, str], int] = {}

    def scrape(self, ctx: Context):
        error = None
        try:
            for event in ctx.changes().rescheduled:
                if not event.probe:
                    key = (site_label(event.site), event.reason)
                    self.counts[key] = self.counts.get(key, 0) + 1
        except Exception as exc:
            error = exc
        fam = CounterMetricFamily("dirac_jobs_rescheduled", "Job lives DIRAC rescheduled before they ended.",
                                  labels=["site", "reason"])
        for site in ctx.shared.sites:  # every known site at zero from the first collection: increase() sees all
            for reason in RESCHEDULE_REASONS:
                self.counts.setdefault((site, reason), 0)
        for (site, reason), n in sorted(self.counts.items()):
            fam.add_metric([site, reason], n)
        yield fam
        if error is not None:
            raise error
