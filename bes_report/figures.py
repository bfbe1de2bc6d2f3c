"""Every figure of the report, read from Prometheus for one period (see docs/report.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import argo, queries
from .period import Period, fmt_time
from .prom import Prometheus, ReportError, TooManySamples

TOP_REASONS = 3
CHUNK = 86400  # queries that read every sample of the period go a day at a time when they must


@dataclass(frozen=True)
class Targets:
    availability: float = 0.90
    reliability: float = 0.95


@dataclass
class SiteFigures:
    """One site over the period: state seconds per base bin, jobs, pilots, black-hole nodes."""

    site: str
    state_bins: list[dict[str, float]]
    job_bins: list[tuple[float, float]]  # (done, failed) per plot bin
    jobs: dict[str, float] = field(default_factory=dict)  # status -> jobs that reached it
    reasons: list[tuple[str, float]] = field(default_factory=list)  # top fail reasons, most first
    pilots: dict[str, float] = field(default_factory=dict)  # status -> pilots that reached it
    black_holes: list[tuple[str, float]] | None = None  # (host, seconds); None: not measurable

    @property
    def states(self) -> dict[str, float]:
        return argo.total(self.state_bins)

    @property
    def probed(self) -> bool:
        return argo.seen(self.states) > 0

    @property
    def availability(self) -> float | None:
        return argo.availability(self.states)

    @property
    def reliability(self) -> float | None:
        return argo.reliability(self.states)

    @property
    def unknown_fraction(self) -> float | None:
        return argo.unknown_fraction(self.states)

    @property
    def jobs_done(self) -> float:
        return self.jobs.get("Done", 0.0) + self.jobs.get("Completed", 0.0)

    @property
    def jobs_failed(self) -> float:
        return self.jobs.get("Failed", 0.0)

    @property
    def failure_ratio(self) -> float | None:
        return argo.ratio(self.jobs_failed, self.jobs_done + self.jobs_failed)

    @property
    def pilots_failed(self) -> float:
        return self.pilots.get("Failed", 0.0) + self.pilots.get("Aborted", 0.0)

    @property
    def pilot_failure_ratio(self) -> float | None:
        return argo.ratio(self.pilots_failed, self.pilots.get("Done", 0.0) + self.pilots_failed)

    def missed(self, targets: Targets) -> list[str]:
        """The targets this site missed: 'availability', 'reliability'."""
        out = []
        if self.availability is not None and self.availability < targets.availability:
            out.append("availability")
        if self.reliability is not None and self.reliability < targets.reliability:
            out.append("reliability")
        return out


@dataclass
class Report:
    period: Period
    prometheus: str
    instance: str | None
    targets: Targets
    interval: float  # seconds one state sample stands for (the rules' evaluation interval)
    sites: list[SiteFigures]
    black_hole_source: str  # how black-hole nodes were found ("" when they could not be)
    notes: list[str] = field(default_factory=list)
    generated: float = field(default_factory=time.time)


@dataclass
class RuleFacts:
    """What /api/v1/rules says about the rules the report reads (None: not loaded)."""

    state_interval: float | None = None
    alert_expr: str | None = None
    alert_for: float = 0.0
    alert_interval: float | None = None
    record_interval: float | None = None


def _rule_facts(prom: Prometheus) -> RuleFacts:
    facts = RuleFacts()
    for group in prom.rules():
        interval = float(group.get("interval") or 0) or None
        for rule in group.get("rules", []):
            name, kind = rule.get("name"), rule.get("type")
            if name == queries.STATE_RECORD and kind == "recording":
                facts.state_interval = interval
            elif name == queries.BLACK_HOLE_RECORD and kind == "recording":
                facts.record_interval = interval
            elif name == queries.BLACK_HOLE_ALERT and kind == "alerting":
                facts.alert_expr, facts.alert_interval = rule.get("query"), interval
                facts.alert_for = float(rule.get("duration") or 0)
    return facts


def _state_bins(prom: Prometheus, p: Period) -> dict[str, list[dict[str, float]]]:
    """Samples per (site, state) in every base bin."""
    n = len(p.base_edges()) - 1
    out: dict[str, list[dict[str, float]]] = {}
    data = prom.query_range(queries.states(p.base), p.start + p.base - 0.001, p.end - 0.001, p.base)
    for labels, values in data.items():
        lab = dict(labels)
        if lab.get("state") not in queries.STATES or "site" not in lab:
            continue
        bins = out.setdefault(lab["site"], [{} for _ in range(n)])
        for t, v in values.items():
            i = round((t + 0.001 - p.start) / p.base) - 1
            if 0 <= i < n and v > 0:
                bins[i][lab["state"]] = bins[i].get(lab["state"], 0.0) + v
    return out


def _job_bins(prom: Prometheus, p: Period, instance: str | None) -> dict[str, list[tuple[float, float]]]:
    """(done, failed) jobs per plot bin and site: increase() over each bin (a bin that ends the period early
    is read on its own)."""
    edges = p.plot_edges()
    n, size = len(edges) - 1, p.plot_bin
    full = [b for b in range(n) if edges[b + 1] - edges[b] == size]
    data: list[tuple[dict, int, float]] = []
    expr = queries.increase(queries.JOBS, "site, status", instance, size)
    if full:
        for labels, values in prom.query_range(expr, edges[full[0] + 1], edges[full[-1] + 1], size).items():
            data.extend((dict(labels), round((t - p.start) / size) - 1, v) for t, v in values.items())
    if len(full) < n:
        short = queries.increase(queries.JOBS, "site, status", instance, edges[-1] - edges[-2])
        data.extend((row["metric"], n - 1, float(row["value"][1])) for row in prom.query(short, p.end))
    out: dict[str, list[list[float]]] = {}
    for lab, i, v in data:
        col = 0 if lab.get("status") in ("Done", "Completed") else 1 if lab.get("status") == "Failed" else None
        if col is not None and 0 <= i < n and "site" in lab:
            out.setdefault(lab["site"], [[0.0, 0.0] for _ in range(n)])[i][col] += v
    return {site: [(d, f) for d, f in bins] for site, bins in out.items()}


def _by_site(rows: list[dict], key: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        m = row["metric"]
        if "site" in m:
            out.setdefault(m["site"], {})[m.get(key, "")] = float(row["value"][1])
    return out


def _series_sites(prom: Prometheus, metric: str, instance: str | None, p: Period) -> set[str]:
    """Sites with a series of ``metric`` in the period, from the index alone (no sample is read)."""
    match = f"{metric}{{{queries.selector(instance)}}}"
    series = prom.get("series", {"match[]": match, "start": p.start, "end": p.end - 0.001})
    return {m["site"] for m in series if "site" in m}


def _chunks(p: Period) -> list[tuple[int, int]]:
    edges = [*range(p.start, p.end, CHUNK), p.end]
    return list(zip(edges, edges[1:]))


def _increase(prom: Prometheus, metric: str, by: str, instance: str | None, p: Period,
              notes: list[str]) -> list[dict]:
    """increase() over the whole period; summed a day at a time if Prometheus refuses to load that many
    samples at once (then each day's increase is extrapolated to its edges, and said so)."""
    try:
        return prom.query(queries.increase(metric, by, instance, p.seconds), p.end)
    except TooManySamples:
        pass
    sums: dict[tuple, float] = {}
    for a, b in _chunks(p):
        for row in prom.query(queries.increase(metric, by, instance, b - a), b):
            key = tuple(sorted(row["metric"].items()))
            sums[key] = sums.get(key, 0.0) + float(row["value"][1])
    note = (f"{metric}: too many samples for one query (Prometheus's --query.max-samples); summed a day at a time, "
            "so counts can be off by a few at day edges, more if Prometheus was down across one.")
    if note not in notes:
        notes.append(note)
    return [{"metric": dict(k), "value": [p.end, str(v)]} for k, v in sums.items()]


def _black_holes(prom: Prometheus, p: Period, instance: str | None, interval: float,
                 facts: RuleFacts) -> tuple[dict[str, list[tuple[str, float]]] | None, str]:
    """Nodes that were black holes at some time of the period: {site: [(host, seconds)]}, and the source."""
    if facts.alert_expr:
        step, cond, hold = facts.alert_interval or interval, facts.alert_expr, facts.alert_for
        source = (f"when alert {queries.BLACK_HOLE_ALERT} fired (its condition held for its for: of "
                  f"{facts.alert_for:g} s, evaluated every {step:g} s)")
    elif facts.record_interval:
        step, cond, hold = facts.record_interval, queries.BLACK_HOLE_RECORD, 0.0
        source = f"when {queries.BLACK_HOLE_RECORD} was 1"
    else:
        return None, ""
    seconds: dict[tuple[str, str], float] = {}
    for a, b in _chunks(p):  # a day at a time: a month of evaluations of every node is many samples
        for row in prom.query(queries.black_hole(cond, hold, step, b - a), b - 0.001):
            m = row["metric"]
            if instance is None or m.get("dirac_instance") == instance:
                key = (m.get("site", ""), m.get("host", "?"))
                seconds[key] = seconds.get(key, 0.0) + float(row["value"][1]) * step
    out: dict[str, list[tuple[str, float]]] = {}
    for (site, host), held in seconds.items():
        out.setdefault(site, []).append((host, held))
    for hosts in out.values():
        hosts.sort(key=lambda h: (-h[1], h[0]))
    return out, source


def collect(prom: Prometheus, p: Period, instance: str | None = None, sites: list[str] | None = None,
            targets: Targets = Targets()) -> Report:
    """Query everything for period ``p``; a site, instance or period without data is a ReportError."""
    facts = _rule_facts(prom)
    notes: list[str] = []
    states = _state_bins(prom, p)
    interval = facts.state_interval
    if interval is None:
        counts = [sum(b.values()) for bins in states.values() for b in bins]
        interval = p.base / max(counts) if counts and max(counts) > 0 else 60.0
        notes.append(f"The rule {queries.STATE_RECORD} is not loaded in this Prometheus: one state sample is taken "
                     f"as {interval:g} s (the most samples found in one {p.base // 60}-minute bin).")
    for bins in states.values():
        for b in bins:
            for s in b:
                b[s] *= interval
    jobs = _by_site(_increase(prom, queries.JOBS, "site, status", instance, p, notes), "status")
    reasons = _by_site(_increase(prom, queries.FAILED, "site, reason", instance, p, notes), "reason")
    pilots = _by_site(_increase(prom, queries.PILOTS, "site, status", instance, p, notes), "status")
    masked = _series_sites(prom, queries.SITE_STATUS, instance, p)

    dirac_sites = set(jobs) | set(pilots) | set(masked) | set(reasons)
    if instance is not None:
        if not dirac_sites:
            known = ", ".join(prom.get("label/dirac_instance/values")) or "none"
            raise ReportError(f"--instance {instance}: no bes-exporter series with dirac_instance=\"{instance}\" "
                              f"in {p.label}; instances known to Prometheus: {known}")
        known_sites = dirac_sites
    else:
        known_sites = dirac_sites | set(states)
    if sites:
        unknown = [s for s in sites if s not in known_sites]
        if unknown:
            have = ", ".join(sorted(known_sites)) or "none"
            raise ReportError(f"--sites {unknown[0]}: no data for this site in {p.label}; sites with data: {have}")
        known_sites = set(sites)
    if not known_sites:
        raise ReportError(f"--prometheus {prom.url}: no bes-monitoring series in {p.label} "
                          f"({fmt_time(p.start)} to {fmt_time(p.end)} UTC); pick a period with data, and check that "
                          "Prometheus loads alerts/rules and scrapes bes-exporter and the Pushgateway")
    holes, source = _black_holes(prom, p, instance, interval, facts)
    per_host = _series_sites(prom, queries.HOST_JOBS, instance, p)  # DIRAC 9.1 exporters have none
    job_bins = _job_bins(prom, p, instance)
    n = len(p.base_edges()) - 1
    out = []
    for site in sorted(known_sites, key=lambda name: (name not in states, name)):  # probed sites first
        top = sorted(((r, c) for r, c in reasons.get(site, {}).items() if c >= 0.5), key=lambda rc: (-rc[1], rc[0]))
        out.append(SiteFigures(site=site, state_bins=states.get(site, [{} for _ in range(n)]),
                               job_bins=job_bins.get(site, [(0.0, 0.0)] * (len(p.plot_edges()) - 1)),
                               jobs=jobs.get(site, {}),
                               reasons=top[:TOP_REASONS], pilots=pilots.get(site, {}),
                               black_holes=holes.get(site, []) if holes is not None and site in per_host else None))
    first = min((i for f in out for i, b in enumerate(f.state_bins) if b), default=None)
    if first:
        notes.append(f"No probe state before {fmt_time(p.base_edges()[first])} UTC: Prometheus holds nothing "
                     "earlier (started later, or its retention ends there).")
    if holes is None:
        notes.append(f"Black-hole nodes: neither {queries.BLACK_HOLE_RECORD} nor the alert {queries.BLACK_HOLE_ALERT} "
                     "is loaded in this Prometheus.")
    return Report(period=p, prometheus=prom.url, instance=instance, targets=targets, interval=interval, sites=out,
                  black_hole_source=source, notes=notes)
