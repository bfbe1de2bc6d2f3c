"""What is active now, counted per label cell, kept up to date from every row read (nothing here reads
the database): the jobs per (status, site, probe) and the heartbeat ages of the Running/Completing ones
for the job tracker; the pilots per (site, CE, status) for the pilots scraper.

Each followed row holds the small integer of its cell; moving a row between cells is two additions, so
the gauges cost nothing per scrape whatever the number of active rows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterator

from .labels import ACTIVE_STATES, site_label

HEARTBEAT_STATES = ("Running", "Completing")  # the jobs whose heartbeat age is exported


class Cells:
    """Row counts per label tuple; a cell's ID is a small int shared by every row in it."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}
        self.keys: list = []
        self.counts: list[int] = []

    def id(self, key: Hashable) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.keys)
            self.keys.append(key)
            self.counts.append(0)
        return found

    def move(self, old: int | None, new: int | None) -> None:
        if old is not None:
            self.counts[old] -= 1
        if new is not None:
            self.counts[new] += 1

    def nonzero(self) -> Iterator[tuple]:
        """(key, count) of every cell holding rows."""
        return ((key, n) for key, n in zip(self.keys, self.counts) if n)


class HeartbeatAges:
    """Per site: jobs per bucket of heartbeat age (``bounds`` as in ``INTERVAL(age - 1, ...)``: the first
    bound >= age; the last bucket is +Inf) and the sum of their ages, each as it was last read."""

    def __init__(self, bounds: tuple[int, ...]):
        self.bounds = bounds
        self.per_site: dict[str, list] = {}  # site -> [count per bucket..., sum of ages]

    def add(self, site: str, age: int, sign: int) -> None:
        h = self.per_site.get(site)
        if h is None:
            h = self.per_site[site] = [0] * (len(self.bounds) + 1) + [0]
        h[bisect_left(self.bounds, age)] += sign
        h[-1] += sign * age


class ActiveJobs:
    """Active jobs per cell (status, site label, probe) and the heartbeat ages of the non-probe
    Running/Completing ones. A job's cell and age live on its tracker life (``cell``, ``age``)."""

    def __init__(self, probe_group: str, buckets: tuple[int, ...]):
        self.probe_group = probe_group
        self.cells = Cells()
        self.ages = HeartbeatAges(buckets)

    def place(self, life, status: str | None, site: str | None = None, group: str | None = None,
              age: int | None = None) -> None:
        """The job of ``life`` was read in ``status`` (None: its row is gone)."""
        new = None
        if status in ACTIVE_STATES:
            new = self.cells.id((status, site_label(site), group == self.probe_group))
        old = life.cell
        if old is not None and life.age is not None:
            self.ages.add(self.cells.keys[old][1], life.age, -1)
        life.age = None
        if new is not None and status in HEARTBEAT_STATES and not self.cells.keys[new][2] and age is not None:
            life.age = int(age)
            self.ages.add(self.cells.keys[new][1], life.age, 1)
        if old != new:
            self.cells.move(old, new)
            life.cell = new

    def status(self, life) -> str | None:
        return None if life.cell is None else self.cells.keys[life.cell][0]

    def followed(self, states: tuple[str, ...]) -> int:
        """Active jobs in these statuses."""
        return sum(n for (status, _, _), n in self.cells.nonzero() if status in states)
