"""The simulated grid: sites, CEs, worker nodes and the workload/DIRAC timing parameters, from YAML.

Every problem in a topology file is a :class:`ConfigError` with one line naming the file, the key and
the fix. Durations are seconds of *simulated* time (a number, or a string such as ``90s``, ``30m``,
``2h``, ``1h30m``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TOPOLOGY = Path(__file__).with_name("topology.yml")
SCENARIO_NAMES = ("black-hole-host", "pilot-abort", "heartbeat-loss", "no-matching", "central-failure",
                  "cvmfs-broken", "user-broken", "site-software", "input-fetch")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")
_HOST_OK = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,250}[a-z0-9])?$")


class ConfigError(ValueError):
    """A bad option, topology or timeline: the message is one line naming the source and the fix."""


def parse_duration(value: Any, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as 90, 30m or 2h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{where}: duration must not be negative, got {value}")
        return float(value)
    m = _DURATION.match(str(value).strip().lower()) if value is not None else None
    if not m or not any(m.groups()):
        raise ConfigError(f"{where}: expected a duration such as 90, 30m or 2h, got {value!r}")
    d, h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


@dataclass(eq=False)
class Host:
    """A worker node with a number of job slots."""

    name: str
    ce: CE
    slots: int
    used: int = 0


@dataclass(eq=False)
class CE:
    """A computing element (DIRAC ``DestinationSite``) with its batch queue and worker nodes."""

    name: str
    site: Site
    queue: str
    grid_type: str
    slots: int
    queue_wait: float
    hosts: list[Host] = field(default_factory=list)
    active: int = 0  # pilots Submitted/Waiting/Running (as the simulator knows them)


@dataclass(eq=False)
class Site:
    """A DIRAC site."""

    name: str
    failure_rate: float
    ces: list[CE] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return sum(ce.slots for ce in self.ces)


@dataclass
class Topology:
    """Sites plus the parameters of DIRAC, the workload and the pilots."""

    sites: list[Site]
    dirac: dict[str, Any]
    workload: dict[str, Any]
    pilots: dict[str, float]
    cvmfs_repositories: list[str]
    scenario_targets: dict[str, str]
    source: str

    @property
    def slots(self) -> int:
        return sum(s.slots for s in self.sites)

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def ce(self, name: str) -> CE | None:
        return next((c for s in self.sites for c in s.ces if c.name == name), None)

    def host(self, name: str) -> Host | None:
        return next((h for s in self.sites for c in s.ces for h in c.hosts if h.name == name), None)


DIRAC_DEFAULTS: dict[str, Any] = {
    "heartbeat_period": 1800.0,       # Watchdog CheckingTime
    "stalled_time": 4500.0,           # StalledJobAgent: (StalledTimeHours 2 + 0.5) x CheckingTime
    "failed_time": 11700.0,           # StalledJobAgent: (FailedTimeHours 6 + 0.5) x CheckingTime
    "stalled_agent_period": 3600.0,   # StalledJobAgent PollingTime
    "matched_time": 7200.0,           # StalledJobAgent MatchedTime: Matched longer -> rescheduled
    "rss_period": 300.0,              # how often the RSS policies are evaluated
    "job_efficiency_window": 1800.0,  # JobEfficiency policy timespan (Policy/Configurations.py: 1800)
    # RSS JobEfficiency, opt-in: stock DIRAC 9.1 runs it onlyCache, and CacheFeederAgent never feeds the job cache
    # (Agent/CacheFeederAgent.py: Downtime, GOCDBSync, FreeDiskSpace, Pilot), so it answers Unknown. True models
    # an instance that feeds the job cache.
    "job_efficiency": False,
    "pilot_efficiency_window": 86400.0,  # PilotAgentsDB summary: final pilots of the last day
}
WORKLOAD_DEFAULTS: dict[str, Any] = {
    "submit_period": 60.0,
    "job_duration": {"median": 5400.0, "sigma": 0.6, "min": 600.0, "max": 36000.0},
    "targeted_fraction": 0.3,
    "demand": 1.1,
    "backlog": 0.15,
    "failure_rate": 0.01,
    "pending_requests_rate": 0.01,
    "kill_rate": 0.002,
}
PILOT_DEFAULTS = {
    "director_period": 120.0,
    "max_submit": 20.0,
    "queue_wait": 300.0,
    "queued": 0.1,
    "max_cycles": 10.0,
    "lifetime": 43200.0,
    "abort_rate": 0.003,
    "fail_rate": 0.002,
}
_DURATION_KEYS = {"heartbeat_period", "stalled_time", "failed_time", "stalled_agent_period", "rss_period",
                  "matched_time",
                  "job_efficiency_window", "pilot_efficiency_window", "submit_period", "director_period",
                  "queue_wait", "lifetime", "median", "min", "max"}
_TOP_KEYS = {"dirac", "workload", "pilots", "cvmfs_repositories", "scenario_targets", "sites"}
_SITE_KEYS = {"name", "failure_rate", "ces"}
_CE_KEYS = {"name", "type", "queue", "slots", "queue_wait", "hosts"}
_HOSTS_KEYS = {"pattern", "count", "start"}


def _number(value: Any, where: str, key: str, *, lo: float = 0.0, hi: float | None = None) -> float:
    if key in _DURATION_KEYS:
        out = parse_duration(value, where)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    else:
        out = float(value)
    if out < lo or (hi is not None and out > hi):
        bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
        raise ConfigError(f"{where}: must be {bound}, got {value!r}")
    return out


def _section(data: dict, name: str, defaults: dict, src: str) -> dict:
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: '{name}' must be a mapping of settings")
    out = dict(defaults)
    for key, value in raw.items():
        where = f"{src}: {name}.{key}"
        if key not in defaults:
            raise ConfigError(f"{where}: unknown key; valid keys are {', '.join(sorted(defaults))}")
        if isinstance(defaults[key], bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            out[key] = value
        elif isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: must be a mapping with keys {', '.join(sorted(defaults[key]))}")
            sub = dict(defaults[key])
            for k, v in value.items():
                if k not in sub:
                    raise ConfigError(f"{where}.{k}: unknown key; valid keys are {', '.join(sorted(sub))}")
                sub[k] = _number(v, f"{where}.{k}", k)
            out[key] = sub
        else:
            hi = 1.0 if key.endswith(("_rate", "_fraction", "backlog")) else None
            out[key] = _number(value, where, key, hi=hi)
    return out


def _unknown(d: dict, allowed: set, where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key '{extra[0]}'; valid keys are {', '.join(sorted(allowed))}")


def load_topology(path: str | Path | None = None, *, scale: float = 1.0) -> Topology:
    """Read and validate a topology file (the packaged default when ``path`` is None).

    ``scale`` multiplies every CE's slot count (at least one slot each; hosts are capped at the slots).
    """
    src_path = Path(path) if path else DEFAULT_TOPOLOGY
    src = str(src_path)
    try:
        data = yaml.safe_load(src_path.read_text())
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read the topology file ({exc.strerror}); fix the --topology path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{src}: not valid YAML{line}; fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: expected a mapping with a 'sites' list at the top level")
    _unknown(data, _TOP_KEYS, src)
    dirac = _section(data, "dirac", DIRAC_DEFAULTS, src)
    workload = _section(data, "workload", WORKLOAD_DEFAULTS, src)
    pilots = _section(data, "pilots", PILOT_DEFAULTS, src)
    d = workload["job_duration"]
    if not d["min"] <= d["median"] <= d["max"] or d["min"] <= 0:
        raise ConfigError(f"{src}: workload.job_duration: need 0 < min <= median <= max")
    if pilots["lifetime"] <= d["max"] + 600:
        raise ConfigError(f"{src}: pilots.lifetime must exceed workload.job_duration.max by more than 10m "
                          "(a pilot only takes a job whose wall-clock limit still fits)")
    repos = data.get("cvmfs_repositories", ["boss.cern.ch", "bes3.ihep.ac.cn"])
    if not isinstance(repos, list) or not all(isinstance(r, str) and _HOST_OK.match(r) for r in repos):
        raise ConfigError(f"{src}: cvmfs_repositories: expected a list of repository names like boss.cern.ch")
    sites_raw = data.get("sites")
    if not isinstance(sites_raw, list) or not sites_raw:
        raise ConfigError(f"{src}: 'sites' must be a non-empty list of sites")
    sites: list[Site] = []
    seen: set[str] = set()
    for i, sraw in enumerate(sites_raw):
        where = f"{src}: sites[{i}]"
        if not isinstance(sraw, dict):
            raise ConfigError(f"{where}: each site must be a mapping with name and ces")
        _unknown(sraw, _SITE_KEYS, where)
        name = sraw.get("name")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+\.[a-z]{2,}$", name):
            raise ConfigError(f"{where}.name: expected a DIRAC site name such as BES.USTC.cn, got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name: site {name} is listed twice")
        seen.add(name)
        site = Site(name=name, failure_rate=_number(sraw.get("failure_rate", workload["failure_rate"]),
                                                   f"{where}.failure_rate", "failure_rate", hi=1.0))
        ces_raw = sraw.get("ces")
        if not isinstance(ces_raw, list) or not ces_raw:
            raise ConfigError(f"{where}.ces: each site needs a non-empty list of CEs")
        for j, craw in enumerate(ces_raw):
            site.ces.append(_ce(craw, site, f"{where}.ces[{j}]", pilots, scale, seen))
        sites.append(site)
    topo = Topology(sites=sites, dirac=dirac, workload=workload, pilots=pilots, cvmfs_repositories=repos,
                    scenario_targets={}, source=src)
    targets = data.get("scenario_targets") or {}
    if not isinstance(targets, dict):
        raise ConfigError(f"{src}: scenario_targets must map scenario names to a site, CE, host or owner")
    for key, value in targets.items():
        if key not in SCENARIO_NAMES:
            raise ConfigError(f"{src}: scenario_targets.{key}: unknown scenario; "
                              f"use one of {', '.join(SCENARIO_NAMES)}")
        topo.scenario_targets[key] = str(value)
    return topo


def _ce(craw: Any, site: Site, where: str, pilots: dict, scale: float, seen: set[str]) -> CE:
    if not isinstance(craw, dict):
        raise ConfigError(f"{where}: each CE must be a mapping with name, slots and hosts")
    _unknown(craw, _CE_KEYS, where)
    name = craw.get("name")
    if not isinstance(name, str) or not _HOST_OK.match(name):
        raise ConfigError(f"{where}.name: expected a CE host name such as ce01.ihep.ac.cn, got {name!r}")
    if name in seen:
        raise ConfigError(f"{where}.name: {name} is listed twice")
    seen.add(name)
    slots = int(_number(craw.get("slots"), f"{where}.slots", "slots", lo=1))
    slots = max(1, round(slots * scale))
    wait = _number(craw.get("queue_wait", pilots["queue_wait"]), f"{where}.queue_wait", "queue_wait")
    ce = CE(name=name, site=site, queue=str(craw.get("queue", "default")),
            grid_type=str(craw.get("type", "HTCondorCE")), slots=slots, queue_wait=wait)
    hraw = craw.get("hosts")
    if not isinstance(hraw, dict):
        raise ConfigError(f"{where}.hosts: expected {{pattern: 'wn{{n:03d}}.example.org', count: N}}")
    _unknown(hraw, _HOSTS_KEYS, f"{where}.hosts")
    pattern, count = hraw.get("pattern"), int(_number(hraw.get("count"), f"{where}.hosts.count", "count", lo=1))
    start = int(_number(hraw.get("start", 1), f"{where}.hosts.start", "start"))
    if not isinstance(pattern, str) or "{n" not in pattern:
        raise ConfigError(f"{where}.hosts.pattern: must contain {{n}} (e.g. 'wn{{n:03d}}.ustc.edu.cn')")
    count = min(count, slots)
    per, extra = divmod(slots, count)
    for k in range(count):
        try:
            hname = pattern.format(n=start + k)
        except (ValueError, KeyError, IndexError):
            raise ConfigError(f"{where}.hosts.pattern: not a valid pattern; use {{n}} or {{n:03d}}") from None
        if not _HOST_OK.match(hname) or hname in seen:
            raise ConfigError(f"{where}.hosts.pattern: gives a bad or duplicate host name {hname!r}")
        seen.add(hname)
        ce.hosts.append(Host(name=hname, ce=ce, slots=per + (1 if k < extra else 0)))
    return ce
