"""Simulated time and its mapping onto the database clock.

The exporter measures every age against the database clock (``UTC_TIMESTAMP()``), so the simulator never
invents a time of its own: simulated second ``t`` is written as

    db_time(t) = origin + t / speed          (floored to the second, DATETIME's resolution)

where ``origin`` is a moment of the database clock. Durations shrink by ``speed`` and rates grow by it;
nothing is ever written in the future of ``UTC_TIMESTAMP()`` because an event at ``t`` is only written
once the database clock has passed ``db_time(t)``. Starting with ``origin`` in the past (warm-up,
``--once``) writes that stretch of simulated time at once, already in the past and self-consistent.
"""

from __future__ import annotations

import datetime as dt
import time

EPOCH = dt.datetime(1970, 1, 1)


class DbClock:
    """The database's UTC clock, read once and then followed with the local monotonic clock.

    The database answer is anchored at the end of the round trip, so ``now()`` never runs ahead of
    ``UTC_TIMESTAMP()``; ``resync`` re-measures it (callers keep simulated time monotonic).
    """

    def __init__(self, conn):
        self.conn = conn
        self._base_db = 0.0
        self._base_mono = 0.0
        self.resync()

    def resync(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT UTC_TIMESTAMP(6)")
            (db_now,) = cur.fetchone()
        t1 = time.monotonic()
        # db_now was read before t1: anchoring it at t1 can only make now() run late, never early.
        self._base_db, self._base_mono = (db_now - EPOCH).total_seconds(), t1

    def now(self) -> float:
        """Seconds since the epoch on the database clock (never ahead of it)."""
        return self._base_db + (time.monotonic() - self._base_mono)


class SimClock:
    """Simulated seconds since the start of the run, mapped onto database time by ``speed``."""

    def __init__(self, db_clock: DbClock, speed: float, *, head_start: float = 0.0):
        """``head_start`` simulated seconds are placed in the past (written at once: warm-up, --once)."""
        self.db = db_clock
        self.speed = float(speed)
        self.origin = db_clock.now() - head_start / self.speed

    def sim_now(self) -> float:
        """The simulated second the database clock has reached."""
        return (self.db.now() - self.origin) * self.speed

    def epoch(self, t: float) -> float:
        """Database epoch seconds of simulated second ``t``."""
        return self.origin + t / self.speed

    def when(self, t: float) -> dt.datetime:
        """Naive UTC DATETIME of simulated second ``t``, floored to the second."""
        return EPOCH + dt.timedelta(seconds=int(self.epoch(t)))

    def iso(self, t: float) -> str:
        return (EPOCH + dt.timedelta(seconds=self.epoch(t))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def sim_of_epoch(self, epoch: float) -> float:
        """Simulated second of a database epoch time (e.g. an alert's ``startsAt``)."""
        return (epoch - self.origin) * self.speed
