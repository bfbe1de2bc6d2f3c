"""A paced, paged pass over the rows of one table in some statuses, along its ``Status`` index.

What it reads: keyset pages ``WHERE Status = s AND <id> > last ORDER BY <id> LIMIT n``. The ``Status``
index holds (Status, primary key), so a page is an ordered index range that costs the rows it returns,
never a sort nor the history. A *pass* reads each status in turn, then the next pass begins. Each
collection reads ``rows`` rows of the pass, or more when the pass would otherwise take
longer than ``period`` seconds (``ceil(n x dt / period)`` for ``n`` followed rows and ``dt`` seconds since
the previous collection), never more than ``max_rows``. A pass that ends within a collection is followed by
the next one in the same collection, unless it began there (the whole table fits in ``rows``): a small table
is read whole every collection, a big one over many, at the same cost per collection whatever its size
until the period forces more.

What a pass proves: a row that stays in one status from time t on is read by every pass that starts after
t. The caller, which keeps its own model of the rows, learns from each page which of the IDs it holds in
that status and ID range are no longer there (``Page.missing``): they moved or were removed, and the caller
reads them by primary key. So a change that no other read saw shows by the end of the first pass that
starts after it: within two passes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dirac_db.connection import Database


@dataclass
class Page:
    """One page of a pass: the rows of ``status`` after the previous page, and the IDs the caller holds in
    that status and range that are not among them."""

    status: str
    rows: list[tuple]
    missing: list[int]


class Sweep:
    """One table's pass; ``sql`` takes (status, after_id, limit) and returns rows whose first column
    is the ID, in ID order."""

    def __init__(self, sql: str, states: tuple[str, ...], rows: int, period: float, max_rows: int,
                 page_rows: int):
        self.sql, self.states = sql, states
        self.rows, self.period = max(rows, 1), period
        self.max_rows, self.page_rows = max(max_rows, 1), max(page_rows, 1)
        self.k = 0  # the status being read
        self.after = 0  # the last ID read in it
        self.started: dt.datetime | None = None  # when the current pass started (database clock)
        self.last_pass: dt.datetime | None = None  # when the last complete pass started
        self.previous: dt.datetime | None = None  # the previous collection

    def budget(self, now: dt.datetime, followed: int) -> int:
        """Rows this collection reads: ``rows``, or the pace that ends a pass within ``period``."""
        rows = self.rows
        if self.period > 0 and self.previous is not None:
            dt_s = min(max((now - self.previous).total_seconds(), 0.0), self.period)
            rows = max(rows, math.ceil(followed * dt_s / self.period))
        return min(rows, self.max_rows)

    def pages(self, db: Database, now: dt.datetime, held: Callable[[str, int, int | None], list[int]],
              budget: float) -> Iterator[Page]:
        """This collection's pages, at most ``budget`` rows (``math.inf``: to the end of the pass).
        ``held(status, lo, hi)`` gives the caller's IDs in that status with lo < ID <= hi (hi None: no
        bound). The position advances past a page only once the caller asks for the next one (or the
        iteration ends): a page whose processing failed is read again."""
        self.previous = now
        fresh = self.started is None  # the pass starts in this collection
        if fresh:
            self.started, self.k, self.after = now, 0, 0
        left = budget
        while left > 0:
            if self.k == len(self.states):  # a pass ended: the next one goes on, unless the table fits in one
                self.last_pass, self.started = self.started, None
                if fresh or budget == math.inf:
                    return
                self.started, self.k, self.after, fresh = now, 0, 0, True
            status = self.states[self.k]
            limit = int(min(self.page_rows, left))
            rows = db.query(self.sql, (status, self.after, limit))
            full = len(rows) == limit
            got = {row[0] for row in rows}
            yield Page(status, rows, [i for i in held(status, self.after, rows[-1][0] if full else None)
                                      if i not in got])
            left -= len(rows)
            if full:
                self.after = rows[-1][0]
            else:
                self.k, self.after = self.k + 1, 0
        if self.k == len(self.states):
            self.last_pass, self.started = self.started, None
