"""A known month, November 2026, of the raw series Prometheus would have scraped, as OpenMetrics text.

Everything is sampled every 5 min (``STEP``) on the 5-min grid, from 2 h before the month to 2 h after
it, except during ``GAP`` (Prometheus down: no sample at all). The test's Prometheus runs with a 4-min
lookback, so a sample is never read again at the next 5-min evaluation (in a live Prometheus, staleness
markers see to that).

Probe targets (the Pushgateway's groups: ``job="bes_probe_agent"`` one-hot ``dirac_probe_status``,
``dirac_site_downtime``, ``push_time_seconds``; ``job="bes_probe"`` ``dirac_probe_success{check="all"}``
and its ``push_time_seconds``). The probe pushes every hour, 1 s before the hour; the agents every 5 min.

- BES.ALPHA.cn, CEs ce1 and ce2: ce1's probe fails on the 3rd 10:00-16:00, ce2's on the 3rd 12:00-16:00
  and on the 6th 00:00-05:00 (ce1 fine then); both CEs in scheduled downtime the 10th 00:00 to the 13th
  00:00; the agents say ``busy`` for both on the 20th 08:00-11:00.
- BES.BETA.cn, one CE: the agents say ``bad`` the 5th 00:00 to the 8th 00:00; the probe fails the 14th
  06:00-14:00 and the 18th 00:00-12:00, the latter in a scheduled downtime; the probe pushes nothing from
  the 12th 09:00 to the 13th 09:00 (its last result goes stale 2 h later: the agents say ``unknown``).
- BES.GAMMA.cn, one CE, first seen the 16th 00:00: the probe fails the 20th 00:00-10:00; ``busy`` the
  22nd 13:00-18:00.

Counters (bes-exporter, ``dirac_instance="bes"``; a second instance ``other`` has a BES.ALPHA.cn too)
grow at each full hour by a fixed number; see :data:`COUNTERS`. BES.ALPHA.cn's exporter restarted at
the 15th 12:00: its job counters start again from 0 there (that hour's jobs are not counted, as a
restarted exporter does not count jobs that ended before its first collection). BES.DELTA.cn has jobs
and no probes; ``ANY`` is DIRAC's placeholder before matching.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from pathlib import Path

STEP = 300
HOUR = 3600


def at(day: int, hour: int = 0) -> int:
    """Unix time of 2026-11-<day> <hour>:00 UTC (day 31 is 2026-12-01)."""
    if day == 31:
        return calendar.timegm((2026, 12, 1, hour, 0, 0)) if hour == 0 else at(31) + hour * HOUR
    return calendar.timegm((2026, 11, day, hour, 0, 0))


MONTH = "2026-11"
START, END = at(1), at(31)
DATA_FROM, DATA_TO = START - 2 * HOUR, END + 2 * HOUR
GAP = (at(25), at(25, 6))  # Prometheus down 6 h: no sample in [GAP[0], GAP[1])
EXPORTER = {"job": "bes_exporter", "instance": "127.0.0.1:9875"}

Spans = list[tuple[int, int]]


def _inside(t: int, spans: Spans) -> bool:
    return any(a <= t < b for a, b in spans)


@dataclass
class Target:
    """One probe target's inputs; spans are [from, to) in Unix time."""

    site: str
    ce: str
    since: int = DATA_FROM
    failing: Spans = field(default_factory=list)
    bad: Spans = field(default_factory=list)
    busy: Spans = field(default_factory=list)
    downtime: Spans = field(default_factory=list)
    silent: Spans = field(default_factory=list)

    def probe_push_time(self, t: int) -> int:
        for a, b in self.silent:
            if a <= t < b:
                return a - 1
        return t - t % HOUR - 1

    def status(self, t: int) -> str:
        if _inside(t, self.bad):
            return "bad"
        if _inside(t, self.busy):
            return "busy"
        if t - self.probe_push_time(t) > 2 * HOUR:
            return "unknown"
        return "failed" if _inside(t, self.failing) else "ok"

    def samples(self, t: int) -> list[tuple[str, dict, float]]:
        agent = {"job": "bes_probe_agent", "site": self.site, "ce": self.ce}
        probe = {"job": "bes_probe", "site": self.site, "ce": self.ce}
        status = self.status(t)
        push = self.probe_push_time(t)
        ok = 0 if _inside(push + 1, self.failing) else 1  # the last run's result, for the hour it opened
        out = [("dirac_probe_status", {**agent, "status": s}, float(s == status))
               for s in ("ok", "failed", "bad", "busy", "unknown")]
        out += [("dirac_site_downtime", agent, float(_inside(t, self.downtime))),
                ("push_time_seconds", agent, float(t - 1)),
                ("dirac_probe_success", {**probe, "check": "all"}, float(ok)),
                ("push_time_seconds", probe, float(push))]
        return out


ALPHA, BETA, GAMMA, DELTA = "BES.ALPHA.cn", "BES.BETA.cn", "BES.GAMMA.cn", "BES.DELTA.cn"
TARGETS = [
    Target(ALPHA, "ce1.alpha.cn", failing=[(at(3, 10), at(3, 16))], downtime=[(at(10), at(13))],
           busy=[(at(20, 8), at(20, 11))]),
    Target(ALPHA, "ce2.alpha.cn", failing=[(at(3, 12), at(3, 16)), (at(6), at(6, 5))],
           downtime=[(at(10), at(13))], busy=[(at(20, 8), at(20, 11))]),
    Target(BETA, "ce.beta.cn", bad=[(at(5), at(8))], failing=[(at(14, 6), at(14, 14)), (at(18), at(18, 12))],
           downtime=[(at(18), at(18, 12))], silent=[(at(12, 9), at(13, 9))]),
    Target(GAMMA, "ce.gamma.cn", since=at(16), failing=[(at(20), at(20, 10))], busy=[(at(22, 13), at(22, 18))]),
]


@dataclass
class Counter:
    """A counter that grows by ``per_hour`` at each full hour h with ``begin < h <= end``, from 0 at
    ``since``; a reset at time r starts it again from 0 (the increment at r itself is lost)."""

    name: str
    labels: dict
    per_hour: int
    since: int = DATA_FROM
    begin: int = DATA_FROM
    end: int = DATA_TO
    resets: tuple[int, ...] = ()

    def value(self, t: int) -> float:
        origin = max([self.since, self.begin, *[r for r in self.resets if r <= t]])
        top = min(t, self.end)
        return float(self.per_hour * max(0, top // HOUR - origin // HOUR))


def _jobs(site: str, status: str, per_hour: int, inst: str = "bes", **kw) -> Counter:
    return Counter("dirac_jobs_finished_total", {**EXPORTER, "dirac_instance": inst, "site": site, "status": status},
                   per_hour, **kw)


def _failed(site: str, reason: str, per_hour: int, **kw) -> Counter:
    return Counter("dirac_jobs_failed_total", {**EXPORTER, "dirac_instance": "bes", "site": site, "reason": reason},
                   per_hour, **kw)


def _pilots(site: str, ce: str, status: str, per_hour: int, **kw) -> Counter:
    return Counter("dirac_pilots_finished_total",
                   {**EXPORTER, "dirac_instance": "bes", "site": site, "ce": ce, "status": status}, per_hour, **kw)


def _host(site: str, host: str, status: str | None, per_hour: int, **kw) -> Counter:
    labels = {**EXPORTER, "dirac_instance": "bes", "site": site, "host": host}
    if status is None:
        return Counter("dirac_host_job_failures_fast_total", labels, per_hour, **kw)
    return Counter("dirac_host_jobs_finished_total", {**labels, "status": status}, per_hour, **kw)


RESTART = (at(15, 12),)
BLACK_HOLE = {"begin": at(7, 10), "end": at(7, 13)}  # wn01.alpha.cn fails fast, the rest of the site is fine
SITE_WIDE = {"begin": at(9, 10), "end": at(9, 13)}  # both BETA hosts fail fast: the site, not a node
COUNTERS = [
    _jobs(ALPHA, "Done", 12, resets=RESTART), _jobs(ALPHA, "Completed", 1, resets=RESTART),
    _jobs(ALPHA, "Failed", 3, resets=RESTART), _jobs(ALPHA, "Killed", 1, resets=RESTART),
    _failed(ALPHA, "application_error", 2, resets=RESTART), _failed(ALPHA, "cpu_limit", 1, resets=RESTART),
    _jobs(ALPHA, "Done", 100, inst="other"),
    _jobs(BETA, "Done", 5), _jobs(BETA, "Failed", 2), _jobs(BETA, "Killed", 1),
    _failed(BETA, "stalled_pilot_not_running", 2),
    _jobs(GAMMA, "Done", 20, since=at(16)), _jobs(GAMMA, "Failed", 0, since=at(16)),
    _jobs(DELTA, "Done", 3),
    _jobs("ANY", "Done", 7),
    _pilots(ALPHA, "ce1.alpha.cn", "Done", 10), _pilots(ALPHA, "ce1.alpha.cn", "Failed", 1),
    _pilots(ALPHA, "ce1.alpha.cn", "Aborted", 1), _pilots(ALPHA, "ce2.alpha.cn", "Done", 10),
    _pilots(ALPHA, "ce2.alpha.cn", "Deleted", 5),
    _pilots(BETA, "ce.beta.cn", "Done", 4), _pilots(BETA, "ce.beta.cn", "Aborted", 4),
    _pilots(GAMMA, "ce.gamma.cn", "Done", 6, since=at(16)),
    _host(ALPHA, "wn01.alpha.cn", "Done", 2), _host(ALPHA, "wn01.alpha.cn", "Failed", 10, **BLACK_HOLE),
    _host(ALPHA, "wn01.alpha.cn", None, 10, **BLACK_HOLE), _host(ALPHA, "wn02.alpha.cn", "Done", 10),
    _host(BETA, "wn01.beta.cn", "Done", 2), _host(BETA, "wn01.beta.cn", "Failed", 10, **SITE_WIDE),
    _host(BETA, "wn01.beta.cn", None, 10, **SITE_WIDE), _host(BETA, "wn02.beta.cn", "Done", 2),
    _host(BETA, "wn02.beta.cn", "Failed", 10, **SITE_WIDE), _host(BETA, "wn02.beta.cn", None, 10, **SITE_WIDE),
]


def _series_line(name: str, labels: dict, value: float, t: int) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{text}}} {int(value) if value.is_integer() else value} {t}\n"


def sample_times(since: int = DATA_FROM) -> list[int]:
    return [t for t in range(DATA_FROM, DATA_TO + 1, STEP) if t >= since and not GAP[0] <= t < GAP[1]]


def write_openmetrics(path: Path) -> int:
    """Write the month as OpenMetrics text (series by series); returns the number of samples."""
    series: dict[tuple, list[str]] = {}
    for target in TARGETS:
        for t in sample_times(target.since):
            for name, labels, value in target.samples(t):
                series.setdefault((name, tuple(labels.items())), []).append(_series_line(name, labels, value, t))
    for c in COUNTERS:
        for t in sample_times(c.since):
            series.setdefault((c.name, tuple(c.labels.items())), []).append(_series_line(c.name, c.labels,
                                                                                        c.value(t), t))
    count = 0
    with open(path, "w") as out:
        for lines in series.values():
            out.writelines(lines)
            count += len(lines)
        out.write("# EOF\n")
    return count
