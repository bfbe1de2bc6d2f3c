"""Pilots per site and CE (PilotAgentsDB.PilotAgents): how many wait or run, how many ended and how,
and how long the oldest one has been waiting.

PilotAgents has no index on LastUpdateTime: a pilot's change is seen only by reading its row. Each
collection reads:

(a) a share of the active pilots along the ``Status`` index (``bes_exporter.sweep``): at least
    ``pilots.resync_rows`` rows, every active pilot at least every ``pilots.resync_seconds``;
(b) the pilots created since the last collection, by primary-key range (PilotID is AUTO_INCREMENT);
    the previous collection's newcomers are read once more, in case an insert committed out of ID order;
(c) by primary key, the pilots that (a) no longer finds in the status they were followed in;
(d) by primary key, the SubmissionTime of each (site, CE)'s oldest waiting pilot when that pilot changed.

Every active pilot is followed in a (site, CE, status) cell, which gives the gauge; the oldest waiting pilot
of a (site, CE) is its lowest PilotID (DIRAC sets SubmissionTime at insert). A pilot's final status (Done,
Failed, Aborted, Deleted) is counted once: when it is first seen final while followed (c) or new (b), never
again (counted IDs are remembered). The first collection takes the baseline (every active pilot, the
highest PilotID): pilots that ended before it are not counted. A change shows within two passes of (a);
``dirac_pilots_last_resync_timestamp_seconds`` is when the last complete pass started: every change made
before it is counted. The deprecated status Scheduled is read as Submitted. Ages use the database's clock.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..active import Cells, IdMap
from ..busiest import epoch
from ..labels import PILOT_ACTIVE_STATES, PILOT_FINAL_STATES, ce_label, site_label
from ..sweep import Sweep
from ..tracker import vo_filter
from .base import Context, Scraper

SWEPT = (*PILOT_ACTIVE_STATES, "Scheduled")
WAITING = ("Submitted", "Waiting", "Scheduled")

# (a) one page of the active pilots of one status, along the Status index (Status, PilotID)
SWEEP_SQL = """
SELECT PilotID, GridSite, DestinationSite FROM `{pilotdb}`.PilotAgents FORCE INDEX (Status)
WHERE Status = %s AND PilotID > %s{vo} ORDER BY PilotID LIMIT %s
"""
NEW_SQL = """
SELECT PilotID, GridSite, DestinationSite, Status FROM `{pilotdb}`.PilotAgents
WHERE PilotID > %s{vo} ORDER BY PilotID LIMIT %s
"""
LOOKUP_SQL = "SELECT PilotID, GridSite, DestinationSite, Status FROM `{pilotdb}`.PilotAgents WHERE PilotID IN ({ids})"
SUBMITTED_SQL = "SELECT PilotID, SubmissionTime FROM `{pilotdb}`.PilotAgents WHERE PilotID IN ({ids})"
MAX_ID_SQL = "SELECT COALESCE(MAX(PilotID), 0) FROM `{pilotdb}`.PilotAgents"

# Metric families: (name without _total, help).
PILOTS = ("dirac_pilots", "Pilots now in each non-final status.")
FINISHED = ("dirac_pilots_finished", "Pilots that reached a final status, each pilot once.")
OLDEST_WAITING = ("dirac_pilot_oldest_waiting_seconds", "Age of the oldest Submitted or Waiting pilot (0: none).")
RESYNC = ("dirac_pilots_last_resync_timestamp_seconds",
          "Start of the last complete re-read of the active pilots: every change made before it is counted.")

CHUNK = 1000  # pilot IDs per lookup statement
RETENTION = dt.timedelta(hours=1)  # counted pilot IDs are remembered at least this long

Pair = tuple[str, str]


def _status(status: str) -> str:
    return "Submitted" if status == "Scheduled" else status


def _in(ids: list[int]) -> str:
    return ", ".join(["%s"] * len(ids))


class Pilots(Scraper):
    name = "pilots"
    help = "Pilots per site and CE: non-final gauge, finished counter, oldest waiting (PilotAgentsDB)."

    def __init__(self, config):
        super().__init__(config)
        jobs, pilots = config.jobs, config.pilots
        self.page_rows = jobs["page_rows"]
        self.max_rows = max(jobs["max_rows_per_scrape"], self.page_rows)
        self.vo = vo_filter(config.vo)
        self.sweep = Sweep(SWEEP_SQL.format(pilotdb=config.database["pilotdb"], vo=self.vo), SWEPT,
                           pilots["resync_rows"], pilots["resync_seconds"], self.max_rows, self.page_rows)
        self.baseline = False
        self.cells = Cells()  # (site, CE, status as DIRAC wrote it)
        self.active = {status: IdMap() for status in SWEPT}  # followed pilot ID -> its cell, by status
        self.waiting: dict[Pair, list[int]] = {}  # heaps of the IDs of waiting pilots (stale ones popped lazily)
        self.submitted: dict[int, dt.datetime] = {}  # SubmissionTime of each (site, CE)'s oldest waiting pilot
        self.counted: dict[int, dt.datetime] = {}  # pilot ID -> when its final status was counted
        self.first_high: int | None = None  # the highest PilotID when the baseline started
        self.low = 0  # (b) reads PilotID > low
        self.high = 0  # highest PilotID read so far
        self.finished: dict[tuple[str, str, str], int] = {}
        self.shown: set[Pair] = set()  # (site, CE) whose counters were exported once (at zero the first time)

    def scrape(self, ctx: Context):
        error = None
        oldest = None
        try:
            oldest = self._update(ctx)
        except Exception as exc:  # still export the counter
            error = exc
        pairs = {key[:2] for key in self.finished}
        if oldest is not None:
            gauge: dict[tuple[str, str, str], int] = {}
            for (site, ce, status), n in self.cells.nonzero():
                pairs.add((site, ce))
                key = (site, ce, _status(status))
                gauge[key] = gauge.get(key, 0) + n
            pilots = GaugeMetricFamily(*PILOTS, labels=["site", "ce", "status"])
            waiting = GaugeMetricFamily(*OLDEST_WAITING, labels=["site", "ce"])
            for pair in sorted(pairs):
                for status in PILOT_ACTIVE_STATES:
                    pilots.add_metric([*pair, status], gauge.get((*pair, status), 0))
                waiting.add_metric(list(pair), float(oldest.get(pair, 0)))
            yield pilots
            yield waiting
            yield GaugeMetricFamily(*RESYNC, value=epoch(self.sweep.last_pass))
        fin = CounterMetricFamily(*FINISHED, labels=["site", "ce", "status"])
        for pair in sorted(pairs):
            # a CE first seen with pilots that already ended starts at 0, so increase() counts them
            zero = pair not in self.shown
            self.shown.add(pair)
            for status in PILOT_FINAL_STATES:
                fin.add_metric([*pair, status], 0 if zero else self.finished.get((*pair, status), 0))
        yield fin
        if error is not None:
            raise error

    def _update(self, ctx: Context) -> dict[Pair, int]:
        """Read (a) to (d), applying each read in turn (re-applying one is harmless); the oldest waiting
        ages per (site, CE)."""
        db, pilotdb, now = ctx.db, ctx.config.database["pilotdb"], ctx.now
        if not self.baseline:  # every active pilot, once; a baseline cut short goes on where it stopped
            if self.first_high is None:  # before (a): nothing slips by
                self.first_high = int(db.query(MAX_ID_SQL.format(pilotdb=pilotdb))[0][0])
            if self.sweep.last_pass is None:
                self._sweep(db, pilotdb, now, math.inf)
            self.low = self.high = self.first_high
            self.baseline = True
            return self._oldest(db, pilotdb, now)
        new, reached, complete = self._read_new(db, pilotdb)
        for pid, site, ce, status in new:
            self._observe(pid, site, ce, status, True, now)
        self._sweep(db, pilotdb, now, self.sweep.budget(now, sum(map(len, self.active.values()))))
        if complete:  # next time, re-read this collection's newcomers once more
            self.low, self.high = self.high, max(self.high, reached)
        else:  # a backlog: resume where this collection stopped
            self.low, self.high = reached, max(self.high, reached)
        for pid in [p for p, t in self.counted.items() if p <= self.low and t < now - RETENTION]:
            del self.counted[pid]
        return self._oldest(db, pilotdb, now)

    def _sweep(self, db, pilotdb: str, now: dt.datetime, budget: float) -> None:
        """(a), and (c) for the pilots a page no longer finds where they were followed."""
        sql = LOOKUP_SQL.format(pilotdb=pilotdb, ids="{ids}")
        for followed in self.active.values():
            followed.merge()
        for page in self.sweep.pages(db, now, self._held, budget):
            for pid, site, ce in page.rows:
                self._place(pid, site, ce, page.status)
            gone = [pid for pid in page.missing if self._find(pid, page.status)]
            for i in range(0, len(gone), CHUNK):
                chunk = gone[i:i + CHUNK]
                looked = db.query(sql.format(ids=_in(chunk)), chunk)
                for pid, site, ce, status in looked:
                    self._observe(pid, site, ce, status, False, now)
                for pid in set(chunk) - {row[0] for row in looked}:  # row removed: nothing to count
                    self._place(pid, None, None, None)

    def _held(self, status: str, lo: int, hi: int | None) -> list[int]:
        return [pid for pid, _ in self.active[status].between(lo, hi)]

    def _find(self, pid: int, *states: str) -> tuple[str, int] | tuple[()]:
        """(status, cell) of a followed pilot, looked for in ``states`` (default: all), or ()."""
        for status in states or SWEPT:
            cell = self.active[status].get(pid)
            if cell is not None:
                return status, cell
        return ()

    def _read_new(self, db, pilotdb: str) -> tuple[list[tuple], int, bool]:
        """Pilots with PilotID > low, keyset-paged, at most jobs.max_rows_per_scrape rows."""
        rows: list[tuple] = []
        key = self.low
        sql = NEW_SQL.format(pilotdb=pilotdb, vo=self.vo)
        while True:
            page = db.query(sql, (key, self.page_rows))
            rows.extend(page)
            if page:
                key = int(page[-1][0])
            if len(page) < self.page_rows:
                return rows, key, True
            if len(rows) >= self.max_rows:
                return rows, key, False

    def _place(self, pid: int, site: str | None, ce: str | None, status: str | None) -> None:
        """Follow the pilot in the cell of its row (``status`` None or final: no longer followed)."""
        found = self._find(pid, status, *SWEPT) if status in SWEPT else self._find(pid)
        old = found[1] if found else None
        new = None if status not in SWEPT else self.cells.id((site_label(site), ce_label(ce), status))
        if old == new:
            return
        self.cells.move(old, new)
        if found and found[0] != status:
            self.active[found[0]].pop(pid)
        if new is None:
            return
        self.active[status][pid] = new
        site_ce_status = self.cells.keys[new]
        if site_ce_status[2] in WAITING:
            heapq.heappush(self.waiting.setdefault(site_ce_status[:2], []), pid)

    def _observe(self, pid: int, site: str, ce: str, status: str, new: bool, now: dt.datetime) -> None:
        """A pilot's row, read by (b) or (c): follow it, or count its final status once."""
        if status not in PILOT_FINAL_STATES:
            self._place(pid, site, ce, status)
            return
        followed = bool(self._find(pid))
        self._place(pid, None, None, None)
        if pid not in self.counted and (new or followed):
            self.counted[pid] = now
            key = (site_label(site), ce_label(ce), status)
            self.finished[key] = self.finished.get(key, 0) + 1

    def _oldest(self, db, pilotdb: str, now: dt.datetime) -> dict[Pair, int]:
        """(d): age of each (site, CE)'s oldest waiting pilot, from the heads of the heaps."""
        heads: dict[Pair, int] = {}
        for pair in list(self.waiting):
            heap = self.waiting[pair]
            while heap and not self._waits_at(heap[0], pair):
                heapq.heappop(heap)
            if not heap:
                del self.waiting[pair]
                continue
            if len(heap) > 64 and len(heap) > 2 * sum(self._count(pair, s) for s in WAITING):
                heap[:] = [pid for pid in heap if self._waits_at(pid, pair)]  # drop the stale entries
                heapq.heapify(heap)
            heads[pair] = heap[0]
        wanted = [pid for pid in heads.values() if pid not in self.submitted]
        known = {pid: self.submitted[pid] for pid in heads.values() if pid in self.submitted}
        for i in range(0, len(wanted), CHUNK):
            chunk = wanted[i:i + CHUNK]
            known.update(db.query(SUBMITTED_SQL.format(pilotdb=pilotdb, ids=_in(chunk)), chunk))
        self.submitted = known
        return {pair: max(int((now - known[pid]).total_seconds()), 0) for pair, pid in heads.items()
                if known.get(pid) is not None}

    def _waits_at(self, pid: int, pair: Pair) -> bool:
        found = self._find(pid, *WAITING)
        return bool(found) and self.cells.keys[found[1]][:2] == pair

    def _count(self, pair: Pair, status: str) -> int:
        return self.cells.counts[self.cells.id((*pair, status))]
