"""Job outcomes per owner: whose jobs end how, where, and which never ran.

Reads nothing itself: consumes the job tracker's finished job lives (``ctx.changes().finished``), which
carry the job's ``Owner``, ``OwnerGroup`` and ``ApplicationStatus`` from the rows the tracker reads anyway
(the ``LastUpdateTime`` window, and ``LoggingInfo`` by primary key to tell whether a life ran). No query,
no cost beyond the tracker's. Probe jobs are left out.

* ``dirac_owner_jobs_finished_total{site,owner,owner_group,status}``: the lives of
  ``dirac_jobs_finished_total`` (those that ran at the site), split by owner.
* ``dirac_owner_jobs_failed_total{owner,owner_group,reason}``: the Failed ones among them, by reason.
* ``dirac_jobs_failed_before_running_total{owner,owner_group,stage,reason}``: Failed lives that never ran:
  the optimizer that failed them (``labels.before_running``) or ``other``.

Cardinality: owners are ranked by their finished lives (ran or not) in the last ``owners.window_seconds``
(``bes_exporter.busiest``); the ``owners.max_owners`` busiest are exported under their name, every other
owner's lives count under ``owner="other"`` (its group kept). An owner that leaves the exported set loses
its series (they restart from 0 if it comes back) and adds one to ``dirac_exporter_owners_dropped_total``.
A new series is exported at 0 once, then with its value, so ``increase()`` sees its first jobs.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from ..busiest import Busiest
from ..labels import before_running, fail_reason, owner_label, site_label
from ..tracker import Finished
from .base import Context, Scraper

OTHER = "other"  # the owners beyond owners.max_owners

# Metric families: (name without _total, help, labels).
FAMILIES = (
    ("dirac_owner_jobs_finished", "Jobs that ran at the site and reached a final status, per owner.",
     ("site", "owner", "owner_group", "status")),
    ("dirac_owner_jobs_failed", "Failed jobs that ran, per owner, by normalised MinorStatus.",
     ("owner", "owner_group", "reason")),
    ("dirac_jobs_failed_before_running", "Failed jobs that never ran: the optimizer (stage) and its reason.",
     ("owner", "owner_group", "stage", "reason")),
)
DROPPED = ("dirac_exporter_owners_dropped", "Owners newly left out of the per-owner metrics by owners.max_owners.")


class Owners(Scraper):
    name = "owners"
    help = "Finished and failed jobs per owner and owner group, failures before running (owners.max_owners)."

    def __init__(self, config):
        super().__init__(config)
        owners = config.owners
        self.busiest = Busiest(owners["window_seconds"], owners["max_owners"])
        self.exported: set[tuple[str, str]] = set()  # (owner, owner_group) exported under their name
        self.counts: tuple[dict[tuple, int], ...] = tuple({} for _ in FAMILIES)  # one per family, by labels
        self.shown: set[tuple] = set()  # (family index, labels) exported once (at zero the first time)
        self.dropped = 0

    def scrape(self, ctx: Context):
        error = None
        events: list[Finished] = []
        try:
            events = [e for e in ctx.changes().finished if not e.probe]
        except Exception as exc:  # still export what was counted so far
            error = exc
        for e in events:
            self.busiest.add((owner_label(e.owner), owner_label(e.owner_group)), max(e.lut, e.end or e.lut))
        self._select(ctx.now)
        for e in events:
            self._count(e)
        yield from self._families()
        if error is not None:
            raise error

    def _select(self, now) -> None:
        """Apply the cap; an owner that left the exported set loses its series."""
        exported, newly_left_out = self.busiest.select(now)
        self.dropped += newly_left_out
        gone = self.exported - set(exported)
        self.exported = set(exported)
        if gone:
            for i, counts in enumerate(self.counts):
                owner_at = 1 if i == 0 else 0  # labels: (site, owner, group, ...) or (owner, group, ...)
                for labels in [k for k in counts if (k[owner_at], k[owner_at + 1]) in gone]:
                    del counts[labels]
                    self.shown.discard((i, labels))

    def _count(self, e: Finished) -> None:
        key = (owner_label(e.owner), owner_label(e.owner_group))
        owner, group = key if key in self.exported else (OTHER, key[1])
        if e.ran:
            self._add(0, (site_label(e.site), owner, group, e.status))
            if e.status == "Failed":
                self._add(1, (owner, group, fail_reason(e.minor)))
        elif e.status == "Failed":
            self._add(2, (owner, group, *before_running(e.minor, e.app_status)))

    def _add(self, family: int, labels: tuple) -> None:
        counts = self.counts[family]
        counts[labels] = counts.get(labels, 0) + 1

    def _families(self):
        for i, (name, help_text, label_names) in enumerate(FAMILIES):
            fam = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in sorted(self.counts[i].items()):
                # a new series is shown at 0 first: one scrape later increase() sees its first jobs
                fam.add_metric(labels, value if (i, labels) in self.shown else 0)
                self.shown.add((i, labels))
            yield fam
        yield CounterMetricFamily(*DROPPED, value=self.dropped)
