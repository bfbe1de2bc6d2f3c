"""The report's period (UTC, end exclusive) and how it is cut into bins.

Base bins (1 h, or 1 min when the period is shorter than a day or not on whole hours) are what the
figures are counted in; plot bins group base bins so that a plot has at most 40 bars (a month: days;
a day: hours; the demo's 24 minutes: minutes).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .prom import ReportError

MINUTE, HOUR, DAY = 60, 3600, 86400
PLOT_BINS = (60, 300, 600, 900, 1800, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY)
MAX_PLOT_BARS = 40
_UNITS = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")


@dataclass(frozen=True)
class Period:
    """[start, end) in Unix seconds, both on whole minutes."""

    start: int
    end: int
    label: str

    @property
    def seconds(self) -> int:
        return self.end - self.start

    @property
    def base(self) -> int:
        """Length of a base bin: 1 h if the period is at least a day on whole hours, else 1 min."""
        if self.seconds >= DAY and self.start % HOUR == 0 and self.end % HOUR == 0:
            return HOUR
        return MINUTE

    @property
    def plot_bin(self) -> int:
        """Length of a plot bin: the shortest multiple of the base bin giving at most MAX_PLOT_BARS bars."""
        for size in PLOT_BINS:
            if size % self.base == 0 and -(-self.seconds // size) <= MAX_PLOT_BARS:
                return size
        return DAY

    def base_edges(self) -> list[int]:
        """Start of every base bin, and the period's end."""
        return [*range(self.start, self.end, self.base), self.end]

    def plot_edges(self) -> list[int]:
        """Start of every plot bin, and the period's end."""
        return [*range(self.start, self.end, self.plot_bin), self.end]


def fmt_time(t: float, with_date: bool = True) -> str:
    """``2026-11-03 12:00`` (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M", time.gmtime(t))


def fmt_period(p: Period) -> str:
    """Human form: ``2026-11-01 00:00 – 2026-12-01 00:00 UTC``."""
    return f"{fmt_time(p.start)} – {fmt_time(p.end)} UTC"


def month(text: str, now: float) -> Period:
    """``--month YYYY-MM``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ReportError(f"--month {text}: not a month; use YYYY-MM, e.g. --month 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    end = calendar.timegm((year + mon // 12, mon % 12 + 1, 1, 0, 0, 0))
    return _clip(Period(start, end, text), now, f"--month {text}")


def previous_month(now: float) -> Period:
    """The calendar month before the one of ``now`` (the default)."""
    t = time.gmtime(now)
    year, mon = (t.tm_year, t.tm_mon - 1) if t.tm_mon > 1 else (t.tm_year - 1, 12)
    return month(f"{year:04d}-{mon:02d}", now)


def _instant(text: str, option: str) -> int:
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text.rstrip("Z"), fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        if parsed.second:
            break
        return int(parsed.timestamp())
    raise ReportError(f"{option} {text}: not a UTC date or time on a whole minute; use YYYY-MM-DD or "
                      "YYYY-MM-DDTHH:MM, e.g. 2026-11-01")


def between(start_text: str | None, end_text: str | None, now: float) -> Period:
    """``--from X --to Y`` (end exclusive)."""
    if not start_text or not end_text:
        missing = "--to" if start_text else "--from"
        raise ReportError(f"{missing}: --from and --to go together; give both, e.g. --from 2026-11-01 --to 2026-12-01")
    start, end = _instant(start_text, "--from"), _instant(end_text, "--to")
    if end <= start:
        raise ReportError(f"--to {end_text}: must be after --from {start_text}")
    return _clip(Period(start, end, f"{start_text} to {end_text}"), now, f"--from {start_text}")


def duration(text: str) -> int:
    """``24m``, ``1h30m``, ``7d`` -> seconds."""
    if not _DURATION.match(text):
        raise ReportError(f"--last {text}: not a duration; use e.g. --last 24m, --last 6h or --last 7d")
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", text))


def last(text: str, now: float) -> Period:
    """``--last D``: the D up to now, on whole minutes."""
    seconds = duration(text)
    if seconds < 10 * MINUTE or seconds % MINUTE:
        raise ReportError(f"--last {text}: use whole minutes, at least 10, e.g. --last 24m")
    end = int(now) - int(now) % MINUTE
    return Period(end - seconds, end, f"last {text}")


def _clip(p: Period, now: float, option: str) -> Period:
    """A period that has not ended yet stops now (on the minute)."""
    if p.start >= now:
        raise ReportError(f"{option}: the period starts in the future; give one that has begun")
    if p.end <= now:
        return p
    end = int(now) - int(now) % MINUTE
    if end <= p.start:
        raise ReportError(f"{option}: the period began less than a minute ago; wait or give an earlier one")
    return Period(p.start, end, f"{p.label} (so far)")
