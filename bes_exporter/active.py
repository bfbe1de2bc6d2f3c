"""What is active now, counted per label cell, kept up to date from every row read (nothing here reads
the database): the jobs per (status, site, probe) and the heartbeat ages of the Running/Completing ones
for the job tracker; the pilots per (site, CE, status) for the pilots scraper.

Each followed row holds the small integer of its cell; moving a row between cells is two additions, so
the gauges cost nothing per scrape whatever the number of active rows. Rows are kept in an ``IdMap``:
12 bytes a row, where a dict of ints takes ~100 (500 k active jobs and their pilots: 10 MB, not 80).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterator

from .labels import ACTIVE_STATES, site_label

HEARTBEAT_STATES = ("Running", "Completing")  # the jobs whose heartbeat age is exported
MERGE_ROWS = 20000  # IDs inserted out of order wait in a dict until this many, then are merged in


class IdMap:
    """Unsigned 32-bit IDs (DIRAC's JobID, PilotID) to unsigned 64-bit values, in two sorted arrays.

    IDs mostly arrive in increasing order (AUTO_INCREMENT) and are appended; one below the highest waits in
    a small dict until ``MERGE_ROWS`` of them are merged in one go (slices copied in C); a removed entry is
    marked and swept out once they are a quarter. A lookup is a bisection (~0.4 us at 500 k IDs)."""

    GONE = (1 << 64) - 1

    def __init__(self) -> None:
        self.ids = array("I")
        self.vals = array("Q")
        self.pending: dict[int, int] = {}
        self.size = 0
        self.gone = 0

    def __len__(self) -> int:
        return self.size

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def _index(self, key: int) -> int:
        i = bisect_left(self.ids, key)
        return i if i < len(self.ids) and self.ids[i] == key else -1

    def get(self, key: int) -> int | None:
        value = self.pending.get(key)
        if value is None:
            i = self._index(key)
            if i >= 0 and self.vals[i] != self.GONE:
                value = self.vals[i]
        return value

    def __setitem__(self, key: int, value: int) -> None:
        i = self._index(key)
        if i >= 0:
            if self.vals[i] == self.GONE:
                self.gone -= 1
                self.size += 1
            self.vals[i] = value
        elif not self.ids or key > self.ids[-1]:
            self.ids.append(key)
            self.vals.append(value)
            self.size += 1
            self.pending.pop(key, None)
        else:
            self.size += key not in self.pending
            self.pending[key] = value
            if len(self.pending) >= MERGE_ROWS:
                self.merge()

    def pop(self, key: int) -> int | None:
        value = self.pending.pop(key, None)
        if value is None:
            i = self._index(key)
            if i < 0 or self.vals[i] == self.GONE:
                return None
            value, self.vals[i] = self.vals[i], self.GONE
            self.gone += 1
            if self.gone > len(self.ids) // 4 + MERGE_ROWS:
                self.merge()
        self.size -= 1
        return value

    def merge(self) -> None:
        """Merge the pending IDs into the arrays; drop the removed ones once they are a quarter."""
        compact = self.gone > len(self.ids) // 4 + MERGE_ROWS
        if not self.pending and not compact:
            return
        ids, vals = array("I"), array("Q")
        start = 0
        for key in sorted(self.pending):
            i = bisect_left(self.ids, key, start)
            ids.extend(self.ids[start:i])
            vals.extend(self.vals[start:i])
            ids.append(key)
            vals.append(self.pending[key])
            start = i
        ids.extend(self.ids[start:])
        vals.extend(self.vals[start:])
        if compact:
            keep = [i for i, v in enumerate(vals) if v != self.GONE]
            ids, vals = array("I", (ids[i] for i in keep)), array("Q", (vals[i] for i in keep))
            self.gone = 0
        self.ids, self.vals, self.pending = ids, vals, {}

    def between(self, lo: int, hi: int | None) -> Iterator[tuple[int, int]]:
        """(ID, value) with lo < ID <= hi (hi None: no bound), in ID order; call ``merge`` first for the
        IDs inserted out of order."""
        i = bisect_right(self.ids, lo)
        j = len(self.ids) if hi is None else bisect_right(self.ids, hi, i)
        return ((key, value) for key, value in zip(self.ids[i:j], self.vals[i:j]) if value != self.GONE)

    def values(self) -> Iterator[int]:
        yield from self.pending.values()
        yield from (v for v in self.vals if v != self.GONE)


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
    """Every job now in a non-final status, as one 64-bit entry in its status's ``IdMap`` (the order of the
    ``Status`` index the sweeps read): its cell (status, site label, probe), the RescheduleCounter and flags of
    its life as the tracker follows it, and, for a non-probe Running/Completing job, its heartbeat age as last
    read. Finding a job whose status is not known costs one bisection per active status (~5 us)."""

    def __init__(self, probe_group: str, buckets: tuple[int, ...]):
        self.probe_group = probe_group
        self.cells = Cells()
        self.ages = HeartbeatAges(buckets)
        self.by_status = {status: IdMap() for status in (*HEARTBEAT_STATES, "Waiting", *ACTIVE_STATES)}

    def __len__(self) -> int:
        return sum(len(m) for m in self.by_status.values())

    def __contains__(self, job_id: int) -> bool:
        return self._find(job_id) is not None

    def _find(self, job_id: int, status: str | None = None) -> tuple[IdMap, int] | None:
        """(map, packed entry) of an active job; its map of ``status`` is looked in first."""
        if status is not None:
            packed = self.by_status[status].get(job_id)
            if packed is not None:
                return self.by_status[status], packed
        for jobs in self.by_status.values():
            packed = jobs.get(job_id)
            if packed is not None:
                return jobs, packed
        return None

    def put(self, job_id: int, status: str, site: str | None, group: str | None, age: int | None,
            rc: int | None, started: bool, closed: bool) -> None:
        """The job was read in the active ``status``; ``rc``, ``started``, ``closed``: its tracker life."""
        self._put(job_id, self._find(job_id, status), status, site, group, age, rc, started, closed)

    def move(self, job_id: int, status: str, site: str | None, group: str | None, age: int | None) -> bool:
        """The job was read in ``status``: if it is active, place it there, its life's state unchanged, and
        return True."""
        found = self._find(job_id, status)
        if found is None:
            return False
        cell, rc, started, closed, old_age = _unpack(found[1])
        if old_age is None and status not in HEARTBEAT_STATES \
                and self.cells.keys[cell] == (status, site_label(site), group == self.probe_group):
            return True  # unchanged: the usual case of a job not Running/Completing
        self._put(job_id, found, status, site, group, age, rc, started, closed)
        return True

    def _put(self, job_id: int, found: tuple[IdMap, int] | None, status: str, site: str | None,
             group: str | None, age: int | None, rc: int | None, started: bool, closed: bool) -> None:
        cell = self.cells.id((status, site_label(site), group == self.probe_group))
        key = self.cells.keys[cell]
        age = None if age is None or key[0] not in HEARTBEAT_STATES or key[2] else min(int(age), _MAX_AGE)
        jobs = self.by_status[status]
        if found is not None:
            self._drop(found[1])
            if found[0] is not jobs:
                found[0].pop(job_id)
        self.cells.move(None, cell)
        if age is not None:
            self.ages.add(key[1], age, 1)
        jobs[job_id] = _pack(cell, rc, started, closed, age)

    def pop(self, job_id: int) -> tuple | None:
        """The job left the active statuses: (status, site label, rc, started, closed) as it was, or None."""
        found = self._find(job_id)
        if found is None:
            return None
        found[0].pop(job_id)
        self._drop(found[1])
        return self._life(found[1])

    def get(self, job_id: int) -> tuple | None:
        """(status, site label, rc, started, closed) of an active job, or None."""
        found = self._find(job_id)
        return None if found is None else self._life(found[1])

    def status(self, job_id: int) -> str | None:
        found = self._find(job_id)
        return None if found is None else self.cells.keys[found[1] & _CELL][0]

    def held(self, status: str, lo: int, hi: int | None) -> list[int]:
        """The active jobs in ``status`` with lo < JobID <= hi (hi None: no bound)."""
        return [job_id for job_id, _ in self.by_status[status].between(lo, hi)]

    def merge(self) -> None:
        for jobs in self.by_status.values():
            jobs.merge()

    def followed(self, states: tuple[str, ...]) -> int:
        """Active jobs in these statuses."""
        return sum(len(self.by_status[status]) for status in states)

    def _life(self, packed: int) -> tuple:
        cell, rc, started, closed, _ = _unpack(packed)
        status, site, _ = self.cells.keys[cell]
        return status, site, rc, started, closed

    def _drop(self, packed: int) -> None:
        cell, _, _, _, age = _unpack(packed)
        self.cells.move(cell, None)
        if age is not None:
            self.ages.add(self.cells.keys[cell][1], age, -1)


# A packed entry: cell (bits 0-19), RescheduleCounter + 1 (20-29; 0: unknown), started (30), closed (31),
# heartbeat age + 1 (32-63; 0: none).
_CELL, _MAX_AGE = (1 << 20) - 1, (1 << 32) - 2


def _pack(cell: int, rc: int | None, started: bool, closed: bool, age: int | None) -> int:
    if cell > _CELL:
        raise OverflowError("more than a million (status, site) cells")
    rc_bits = 0 if rc is None else min(rc + 1, 1023)
    return cell | rc_bits << 20 | started << 30 | closed << 31 | (0 if age is None else age + 1) << 32


def _unpack(packed: int) -> tuple[int, int | None, bool, bool, int | None]:
    rc_bits, age_bits = packed >> 20 & 1023, packed >> 32
    return (packed & _CELL, rc_bits - 1 if rc_bits else None, bool(packed >> 30 & 1), bool(packed >> 31 & 1),
            age_bits - 1 if age_bits else None)
