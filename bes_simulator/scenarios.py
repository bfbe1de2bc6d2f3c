"""Fault scenarios: how they are written (``NAME[:TARGET][@T][+D]`` or a YAML timeline), what they hit,
and what each one records about DIRAC's own reaction.

===================  ======================  ==========================================================
name                 target (default from    effect
                     the topology)
===================  ======================  ==========================================================
black-hole-host      a worker node           every job landing there fails within seconds
pilot-abort          a CE                    the share of its pilots Aborted ramps from the normal
                                             rate to ``max_ratio`` over ``ramp`` (slow degradation)
heartbeat-loss       a site                  network cut: no heartbeat, status report or pilot update
                                             reaches DIRAC; no new matches or pilot submissions
no-matching          a site                  its pilots match nothing; jobs for the site pile up
central-failure      all sites               every job fails (input sandbox / requests unavailable)
cvmfs-broken         a site                  only its fake CVMFS root breaks: jobs stay healthy
user-broken          an owner (DIRAC user)   the owner's workflow fails wherever it runs: ``share`` of
                                             the new jobs, some failed by the optimizers before running
site-software        a site                  a release is missing there: one owner ``group``'s jobs fail
input-fetch          a worker node or site   its jobs cannot download their input sandbox (``what``:
                                             sandbox) or resolve their input data (data): the
                                             JobWrapper reschedules them, Failed after MaxRescheduling
===================  ======================  ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .owners import GROUPS, USER_NAME, group_of
from .topology import CE, SCENARIO_NAMES, ConfigError, Host, Site, Topology, parse_duration

PARAMS: dict[str, dict[str, Any]] = {
    "black-hole-host": {"fail_after": [5.0, 60.0]},
    "pilot-abort": {"ramp": 7200.0, "max_ratio": 1.0},
    "heartbeat-loss": {},
    "no-matching": {},
    "central-failure": {},
    "cvmfs-broken": {},
    # share: of the grid's new jobs, the owner's (broken) ones; site + concentration: that share of them sent
    # to one site by JDL; fail_after: after a job starts; before_running: failed by the optimizers instead.
    "user-broken": {"share": 0.1, "site": None, "concentration": 0.0, "fail_after": [60.0, 300.0],
                    "before_running": 0.3},
    "site-software": {"group": "bes_prod", "fail_after": [30.0, 180.0]},
    # what: the input that cannot be fetched (sandbox or data); fail_after: after the JobWrapper starts.
    "input-fetch": {"what": "sandbox", "fail_after": [10.0, 60.0]},
}
FETCH_WHAT = ("sandbox", "data")
TARGET_KIND = {"black-hole-host": "host", "pilot-abort": "ce", "heartbeat-loss": "site", "no-matching": "site",
               "central-failure": None, "cvmfs-broken": "site", "user-broken": "owner", "site-software": "site",
               "input-fetch": "host|site"}
# "within minutes": at most 30 min (10 for a failed download)
FAIL_AFTER_MAX = {"user-broken": 1800.0, "site-software": 1800.0, "input-fetch": 600.0}
FAILS_NO_JOBS = ("pilot-abort", "no-matching", "cvmfs-broken")  # no job fails by them: RSS JobEfficiency is not theirs
_SPEC = re.compile(r"^(?P<name>[a-z-]+)(?::(?P<target>[^@+]+))?(?:@(?P<at>[^+]+))?(?:\+(?P<dur>.+))?$")
_TIMELINE_KEYS = {"name", "at", "duration", "target"}


@dataclass
class ScenarioSpec:
    """One fault as asked for: when (simulated seconds since the start), for how long, on what."""

    name: str
    at: float = 0.0
    duration: float | None = None
    target: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    where: str = "--scenario"  # where it was written, for error messages


def parse_spec(text: str, where: str = "--scenario") -> ScenarioSpec:
    """``NAME[:TARGET][@T][+D]``, e.g. ``heartbeat-loss``, ``black-hole-host:wn017.ustc.edu.cn@2h+1h``."""
    m = _SPEC.match(text.strip())
    if not m or m["name"] not in SCENARIO_NAMES:
        raise ConfigError(f"{where} {text!r}: expected NAME[:TARGET][@T][+D] with NAME one of "
                          f"{', '.join(SCENARIO_NAMES)}")
    spec = ScenarioSpec(name=m["name"], target=m["target"], params=dict(PARAMS[m["name"]]))
    if m["at"]:
        spec.at = parse_duration(m["at"], f"{where} {text!r} (start @T)")
    if m["dur"]:
        spec.duration = parse_duration(m["dur"], f"{where} {text!r} (duration +D)")
    return spec


def load_timeline(path: str) -> list[ScenarioSpec]:
    """A YAML timeline: ``scenarios: [{name, at, duration, target, <parameters>}, ...]``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the timeline ({exc.strerror}); fix the --timeline path") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML; fix the syntax of the timeline") from None
    items = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(items, list) or set(data) != {"scenarios"}:
        raise ConfigError(f"{path}: expected a mapping with one key 'scenarios' holding a list of scenarios")
    specs = []
    for i, item in enumerate(items):
        where = f"{path}: scenarios[{i}]"
        if not isinstance(item, dict) or item.get("name") not in SCENARIO_NAMES:
            raise ConfigError(f"{where}.name: expected one of {', '.join(SCENARIO_NAMES)}")
        name = item["name"]
        allowed = _TIMELINE_KEYS | set(PARAMS[name])
        extra = sorted(set(item) - allowed)
        if extra:
            raise ConfigError(f"{where}: unknown key '{extra[0]}' for {name}; "
                              f"valid keys are {', '.join(sorted(allowed))}")
        spec = ScenarioSpec(name=name, params=dict(PARAMS[name]), where=where)
        spec.at = parse_duration(item.get("at", 0), f"{where}.at")
        if item.get("duration") is not None:
            spec.duration = parse_duration(item["duration"], f"{where}.duration")
        if item.get("target") is not None:
            spec.target = str(item["target"])
        for key in PARAMS[name]:
            if key in item:
                spec.params[key] = _param(name, key, item[key], f"{where}.{key}")
        if name == "user-broken" and (spec.params["site"] is None) != (spec.params["concentration"] == 0):
            raise ConfigError(f"{where}: site and concentration go together (send that share of the owner's "
                              "jobs to that site); give both, e.g. site: BES.WHU.cn, concentration: 0.7")
        specs.append(spec)
    return specs


def _param(name: str, key: str, value: Any, where: str) -> Any:
    if key == "fail_after":
        if not isinstance(value, list) or len(value) != 2:
            raise ConfigError(f"{where}: expected [MIN, MAX] seconds, e.g. [5, 60]")
        lo, hi = (parse_duration(v, where) for v in value)
        if lo > hi:
            raise ConfigError(f"{where}: MIN must not exceed MAX")
        if hi > FAIL_AFTER_MAX.get(name, hi):
            raise ConfigError(f"{where}: {name} fails jobs within minutes; MAX must not exceed "
                              f"{FAIL_AFTER_MAX[name]:.0f} s")
        return [lo, hi]
    if key == "site":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a site name of the topology, e.g. BES.WHU.cn")
        return value
    if key == "what":
        if value not in FETCH_WHAT:
            raise ConfigError(f"{where}: expected one of {', '.join(FETCH_WHAT)}")
        return value
    if key == "group":
        if value not in GROUPS:
            raise ConfigError(f"{where}: expected an owner group the simulator submits as: {', '.join(GROUPS)}")
        return value
    if key in ("max_ratio", "share", "concentration", "before_running"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{where}: expected a ratio between 0 and 1")
        return float(value)
    return parse_duration(value, where)


class Scenario:
    """A resolved fault with its target objects and the record of what happened."""

    def __init__(self, spec: ScenarioSpec, site: Site | None = None, ce: CE | None = None, host: Host | None = None,
                 owner: str | None = None, focus: Site | None = None):
        self.spec, self.site, self.ce, self.host = spec, site, ce, host
        self.owner = owner  # user-broken: the DIRAC user whose workflow fails
        self.group = group_of(owner) if owner else spec.params.get("group")  # ... its group; site-software's
        self.focus = focus  # user-broken: the site most of the owner's jobs are sent to (concentration)
        self.active = False
        self.record: dict[str, Any] = {
            "name": spec.name,
            "target": self.target_labels(),
            "start_sim": spec.at,
            "end_sim": None if spec.duration is None else spec.at + spec.duration,
            "params": spec.params,
            "started": None,
            "ended": None,
            "dirac_expected": {},
            "dirac_rules": [],
            "dirac_actions": {},
            "first_dirac_action": None,
            "milestones": {},
        }
        if spec.name == "black-hole-host":
            self.record["host_failures_sim"] = []  # simulated times of the host's failed jobs (first 1000)
        if spec.name == "user-broken":  # the owner's failed jobs while the fault lasts
            self.record["owner_failures"] = {"before_running": {}, "after_running": 0, "sites": {}}
        if spec.name == "site-software":  # the group's jobs failed at the site, per owner
            self.record["group_failures"] = {"jobs": 0, "owners": {}}
        if spec.name == "input-fetch":  # the JobWrapper's reschedules there, and jobs Failed at MaxRescheduling
            self.record["reschedules"] = {"rescheduled": 0, "failed": 0}

    @property
    def name(self) -> str:
        return self.spec.name

    def target_labels(self) -> dict[str, str]:
        if self.owner:
            return {"owner": self.owner, "owner_group": self.group}
        out = {}
        if self.site:
            out["site"] = self.site.name
        if self.ce:
            out["ce"] = self.ce.name
        if self.host:
            out["host"] = self.host.name
        return out

    def concerns(self, site: str | None, ce: str | None) -> bool:
        """Whether a DIRAC action on ``site``/``ce`` belongs to this scenario."""
        if self.name == "central-failure":
            return True
        if self.owner:  # user-broken: the sites where the owner's jobs failed, and the one they are sent to
            return site is not None and (site in self.record["owner_failures"]["sites"]
                                         or (self.focus is not None and site == self.focus.name))
        if self.ce is not None and ce is not None:
            return ce == self.ce.name
        return self.site is not None and site == self.site.name


def resolve(spec: ScenarioSpec, topo: Topology, where: str | None = None) -> Scenario:
    """Find the scenario's target in the topology (its default comes from ``scenario_targets``)."""
    where = where or spec.where
    kind = TARGET_KIND[spec.name]
    if kind is None:
        if spec.target:
            raise ConfigError(f"{where} {spec.name}: takes no target (it hits every site); drop ':{spec.target}'")
        return Scenario(spec)
    name = spec.target or topo.scenario_targets.get(spec.name)
    if not name:
        raise ConfigError(f"{where} {spec.name}: no target; write {spec.name}:<{kind}> or set "
                          f"scenario_targets.{spec.name} in {topo.source}")
    if kind == "owner":
        if not USER_NAME.match(name):
            raise ConfigError(f"{where} {spec.name}: {name!r} is not a DIRAC user name; it targets an owner, "
                              "e.g. liuhm")
        focus = None
        if spec.params.get("site") is not None:
            focus = topo.site(spec.params["site"])
            if focus is None:
                raise ConfigError(f"{where}.site: site {spec.params['site']!r} is not in {topo.source}; "
                                  "use a site it lists")
        return Scenario(spec, owner=name, focus=focus)
    if kind == "host|site":
        host = topo.host(name)
        if host is not None:
            return Scenario(spec, site=host.ce.site, host=host)
        site = topo.site(name)
        if site is None:
            raise ConfigError(f"{where} {spec.name}: {name!r} is neither a worker node nor a site of {topo.source}; "
                              "use one it lists")
        return Scenario(spec, site=site)
    if kind == "host":
        host = topo.host(name)
        if host is None:
            raise ConfigError(f"{where} {spec.name}: host {name!r} is not in {topo.source}; use a worker node it lists")
        return Scenario(spec, site=host.ce.site, ce=None, host=host)
    if kind == "ce":
        ce = topo.ce(name)
        if ce is None:
            raise ConfigError(f"{where} {spec.name}: CE {name!r} is not in {topo.source}; use a CE it lists")
        return Scenario(spec, site=ce.site, ce=ce)
    site = topo.site(name)
    if site is None:
        raise ConfigError(f"{where} {spec.name}: site {name!r} is not in {topo.source}; use a site it lists")
    return Scenario(spec, site=site)
