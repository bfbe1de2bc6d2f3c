"""The busiest keys of a sliding window (worker nodes of a site, job owners): which ones get series.

A key's activity is its events per bucket (the window split in ``BUCKETS``); keys rank by events in the
window, the most recent first on ties. The top ``cap`` are exported; at most ``TRACK_FACTOR`` x ``cap``
are remembered (the least busy are forgotten first), and a key without an event for a whole window is
forgotten too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable

BUCKETS = 24  # the window is split in this many buckets to rank keys by recent events
TRACK_FACTOR = 4  # keys remembered at most: TRACK_FACTOR x cap


def epoch(t: dt.datetime) -> float:
    """A naive UTC datetime (DIRAC's and the database's) as Unix seconds."""
    return t.replace(tzinfo=dt.timezone.utc).timestamp()


class _Activity:
    __slots__ = ("recent", "last")

    def __init__(self) -> None:
        self.recent: dict[int, int] = {}  # bucket number -> events in it
        self.last = float("-inf")  # latest event (Unix seconds)


class Busiest:
    """Ranks keys by their events in the last ``window_seconds``; ``select`` applies the cap."""

    def __init__(self, window_seconds: int, cap: int):
        self.window = window_seconds
        self.bucket = max(1, window_seconds // BUCKETS)
        self.cap = cap
        self.keys: dict[Hashable, _Activity] = {}  # the keys remembered
        self.left_out: set[Hashable] = set()  # remembered but not exported at the last selection

    def add(self, key: Hashable, when: dt.datetime) -> None:
        activity = self.keys.get(key)
        if activity is None:
            activity = self.keys[key] = _Activity()
        t = epoch(when)
        b = int(t) // self.bucket
        activity.recent[b] = activity.recent.get(b, 0) + 1
        activity.last = max(activity.last, t)

    def select(self, now: dt.datetime | None) -> tuple[list[Hashable], int]:
        """Forget idle keys (unless ``now`` is unknown) and those beyond the memory bound; returns the
        exported keys, busiest first, and how many keys the cap newly left out."""
        if now is not None:
            cutoff = epoch(now) - self.window
            first_bucket = int(cutoff) // self.bucket
            for key in [k for k, a in self.keys.items() if a.last < cutoff]:
                del self.keys[key]
            for activity in self.keys.values():
                for b in [b for b in activity.recent if b < first_bucket]:
                    del activity.recent[b]
        ranked = sorted(self.keys, key=lambda k: (-sum(self.keys[k].recent.values()), -self.keys[k].last, k))
        for key in ranked[TRACK_FACTOR * self.cap:]:
            del self.keys[key]
        left_out = set(ranked[self.cap:TRACK_FACTOR * self.cap])
        newly = len(left_out - self.left_out)
        self.left_out = left_out
        return ranked[:self.cap], newly
