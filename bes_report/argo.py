"""ARGO's availability and reliability from the time a site spent in each state (no I/O).

``t`` is a mapping state -> seconds with the states of :data:`bes_report.queries.STATES`. The time a site
was not seen at all (Prometheus down, or before the site's first probe target) is in no state.

- availability = UP / (T - UNKNOWN - MISSING) = UP / (UP + CRITICAL + DOWNTIME)
- reliability  = UP / (T - UNKNOWN - MISSING - DOWNTIME) = UP / (UP + CRITICAL)
- unknown fraction = (UNKNOWN + MISSING) / T

with T the time seen. A figure whose denominator is 0 is ``None`` (not measurable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .queries import STATES

BAD = ("critical", "unknown", "missing")


def seen(t: Mapping[str, float]) -> float:
    return sum(t.get(s, 0.0) for s in STATES)


def availability(t: Mapping[str, float]) -> float | None:
    den = t.get("up", 0.0) + t.get("critical", 0.0) + t.get("downtime", 0.0)
    return t.get("up", 0.0) / den if den > 0 else None


def reliability(t: Mapping[str, float]) -> float | None:
    den = t.get("up", 0.0) + t.get("critical", 0.0)
    return t.get("up", 0.0) / den if den > 0 else None


def unknown_fraction(t: Mapping[str, float]) -> float | None:
    total = seen(t)
    return (t.get("unknown", 0.0) + t.get("missing", 0.0)) / total if total > 0 else None


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def total(bins: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """State times summed over bins."""
    return {s: sum(b.get(s, 0.0) for b in bins) for s in STATES}


def regroup(bins: Sequence[Mapping[str, float]], per: int) -> list[dict[str, float]]:
    """Base bins summed ``per`` at a time (the last group may be shorter)."""
    return [total(bins[i:i + per]) for i in range(0, len(bins), per)]


@dataclass(frozen=True)
class Stretch:
    """Consecutive bins in which the site was CRITICAL, UNKNOWN or MISSING for some time."""

    start: int
    end: int
    seconds: dict[str, float]

    @property
    def bad(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in BAD)


def worst(bins: Sequence[Mapping[str, float]], edges: Sequence[int], limit: int = 5) -> list[Stretch]:
    """The ``limit`` worst stretches: most CRITICAL time first, then most time not measured as up."""
    stretches: list[Stretch] = []
    run: list[int] = []
    for i, b in enumerate([*bins, {}]):
        if sum(b.get(s, 0.0) for s in BAD) > 0:
            run.append(i)
            continue
        if run:
            stretches.append(Stretch(edges[run[0]], edges[run[-1] + 1], total([bins[j] for j in run])))
            run = []
    stretches.sort(key=lambda s: (-s.seconds["critical"], -s.bad, s.start))
    return stretches[:limit]
