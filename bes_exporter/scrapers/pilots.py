"""Pilots per site and CE (PilotAgentsDB.PilotAgents): how many wait or run, how many ended and how,
and how long the oldest one has been waiting.

PilotAgents has no index on LastUpdateTime, so nothing filters on it. Each collection reads only:

(a) the active pilots, through the ``Status`` index;
(b) the pilots created since the last collection, by primary-key range (PilotID is AUTO_INCREMENT);
    the previous collection's newcomers are read once more, in case an insert committed out of ID order;
(c) the pilots that were active (or new) last time and are not active now, by primary key.

A pilot's final status (Done, Failed, Aborted, Deleted) is counted once: when it is first seen final
while being followed (b or c), never again (counted IDs are remembered). The first collection only
takes the baseline (active set, highest PilotID): pilots that ended before it are not counted.
The deprecated status Scheduled is read as Submitted. Ages use the database's clock.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..labels import PILOT_ACTIVE_STATES, PILOT_FINAL_STATES, ce_label, site_label
from .base import Context, Scraper

_ACTIVE = ", ".join(f"'{s}'" for s in (*PILOT_ACTIVE_STATES, "Scheduled"))

# (a) twice over the Status index: grouped in the server for the gauges and ages, and the IDs alone
# (index-only) to follow them; only a few rows, or integers, come back to Python.
ACTIVE_SQL = f"""
SELECT GridSite, DestinationSite, Status, COUNT(*),
       MAX(IF(Status IN ('Submitted', 'Waiting', 'Scheduled'),
              TIMESTAMPDIFF(SECOND, SubmissionTime, UTC_TIMESTAMP()), NULL))
FROM `{{pilotdb}}`.PilotAgents FORCE INDEX (Status) WHERE Status IN ({_ACTIVE})
GROUP BY GridSite, DestinationSite, Status
"""
ACTIVE_IDS_SQL = f"""
SELECT PilotID FROM `{{pilotdb}}`.PilotAgents FORCE INDEX (Status) WHERE Status IN ({_ACTIVE})
"""
NEW_SQL = """
SELECT PilotID, GridSite, DestinationSite, Status FROM `{pilotdb}`.PilotAgents
WHERE PilotID > %s ORDER BY PilotID LIMIT %s
"""
LOOKUP_SQL = "SELECT PilotID, GridSite, DestinationSite, Status FROM `{pilotdb}`.PilotAgents WHERE PilotID IN ({ids})"
MAX_ID_SQL = "SELECT COALESCE(MAX(PilotID), 0) FROM `{pilotdb}`.PilotAgents"

# Metric families: (name without _total, help).
PILOTS = ("dirac_pilots", "Pilots now in each non-final status.")
FINISHED = ("dirac_pilots_finished", "Pilots that reached a final status, each pilot once.")
OLDEST_WAITING = ("dirac_pilot_oldest_waiting_seconds", "Age of the oldest Submitted or Waiting pilot (0: none).")

CHUNK = 1000  # pilot IDs per lookup statement
RETENTION = dt.timedelta(hours=1)  # counted pilot IDs are remembered at least this long

Pair = tuple[str, str]


def _status(status: str) -> str:
    return "Submitted" if status == "Scheduled" else status


class Pilots(Scraper):
    name = "pilots"
    help = "Pilots per site and CE: non-final gauge, finished counter, oldest waiting (PilotAgentsDB)."

    def __init__(self, config):
        super().__init__(config)
        self.page_rows = config.jobs["page_rows"]
        self.max_rows = max(config.jobs["max_rows_per_scrape"], self.page_rows)
        self.baseline = False
        self.watched: set[int] = set()  # pilots seen non-final, final status not counted yet
        self.counted: dict[int, dt.datetime] = {}  # pilot ID -> when its final status was counted
        self.low = 0  # (b) reads PilotID > low
        self.high = 0  # highest PilotID read so far
        self.finished: dict[tuple[str, str, str], int] = {}
        self.shown: set[Pair] = set()  # (site, CE) whose counters were exported once (at zero the first time)

    def scrape(self, ctx: Context):
        error = None
        active = None
        try:
            active = self._update(ctx)
        except Exception as exc:  # still export the counter
            error = exc
        pairs = {key[:2] for key in self.finished}
        if active is not None:
            gauge: dict[tuple[str, str, str], int] = {}
            oldest: dict[Pair, int] = {}
            for site, ce, status, n, age in active:
                pair = (site_label(site), ce_label(ce))
                pairs.add(pair)
                status = _status(status)
                gauge[(*pair, status)] = gauge.get((*pair, status), 0) + int(n)
                if age is not None and age > oldest.get(pair, -1):
                    oldest[pair] = age
            pilots = GaugeMetricFamily(*PILOTS, labels=["site", "ce", "status"])
            waiting = GaugeMetricFamily(*OLDEST_WAITING, labels=["site", "ce"])
            for pair in sorted(pairs):
                for status in PILOT_ACTIVE_STATES:
                    pilots.add_metric([*pair, status], gauge.get((*pair, status), 0))
                waiting.add_metric(list(pair), float(max(oldest.get(pair, 0), 0)))
            yield pilots
            yield waiting
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

    def _update(self, ctx: Context) -> list[tuple]:
        """Read (a), (b), (c); change the state only once every statement succeeded."""
        db, pilotdb = ctx.db, ctx.config.database["pilotdb"]
        if not self.baseline:
            high = int(db.query(MAX_ID_SQL.format(pilotdb=pilotdb))[0][0])  # before (a): nothing slips by
            self.watched = {pid for (pid,) in db.query(ACTIVE_IDS_SQL.format(pilotdb=pilotdb))}
            active = db.query(ACTIVE_SQL.format(pilotdb=pilotdb))
            self.low = self.high = high
            self.baseline = True
            return active
        ids = [pid for (pid,) in db.query(ACTIVE_IDS_SQL.format(pilotdb=pilotdb))]
        active = db.query(ACTIVE_SQL.format(pilotdb=pilotdb))
        new, reached, complete = self._read_new(db, pilotdb)
        seen = set(ids) | {row[0] for row in new}
        gone = sorted(pid for pid in self.watched if pid not in seen)
        looked: list[tuple] = []
        sql = LOOKUP_SQL.format(pilotdb=pilotdb, ids="{ids}")
        for i in range(0, len(gone), CHUNK):
            chunk = gone[i:i + CHUNK]
            looked.extend(db.query(sql.format(ids=", ".join(["%s"] * len(chunk))), chunk))
        # apply, oldest snapshot first
        now = ctx.now
        self.watched.update(pid for pid in ids if pid not in self.counted)
        for pid, site, ce, status in new:
            self._observe(pid, site, ce, status, True, now)
        for pid, site, ce, status in looked:
            self._observe(pid, site, ce, status, False, now)
        self.watched -= set(gone) - {row[0] for row in looked}  # rows removed: nothing to count
        if complete:  # next time, re-read this collection's newcomers once more
            self.low, self.high = self.high, max(self.high, reached)
        else:  # a backlog: resume where this collection stopped
            self.low, self.high = reached, max(self.high, reached)
        for pid in [p for p, t in self.counted.items() if p <= self.low and t < now - RETENTION]:
            del self.counted[pid]
        return active

    def _read_new(self, db, pilotdb: str) -> tuple[list[tuple], int, bool]:
        """Pilots with PilotID > low, keyset-paged, at most jobs.max_rows_per_scrape rows."""
        rows: list[tuple] = []
        key = self.low
        sql = NEW_SQL.format(pilotdb=pilotdb)
        while True:
            page = db.query(sql, (key, self.page_rows))
            rows.extend(page)
            if page:
                key = int(page[-1][0])
            if len(page) < self.page_rows:
                return rows, key, True
            if len(rows) >= self.max_rows:
                return rows, key, False

    def _observe(self, pid: int, site: str, ce: str, status: str, new: bool, now: dt.datetime) -> None:
        if pid in self.counted:
            return
        if status not in PILOT_FINAL_STATES:
            self.watched.add(pid)
        elif new or pid in self.watched:
            self.watched.discard(pid)
            self.counted[pid] = now
            key = (site_label(site), ce_label(ce), status)
            self.finished[key] = self.finished.get(key, 0) + 1
