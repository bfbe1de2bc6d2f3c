"""The events file: the run's clock mapping, each scenario's start and DIRAC's own reactions, in JSON.

Written atomically (temporary file + rename) while the simulator runs, so a report or a test can read it
at any time. Times are given both as simulated seconds since the start (``*_sim``) and as database UTC
(``*_utc``); ``clock`` holds the mapping (``utc = origin + sim / speed``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .clock import SimClock
from .scenarios import FAILS_NO_JOBS, Scenario

MAX_LOG = 5000


class EventLog:
    """Collects scenario records and DIRAC actions; ``flush`` writes the JSON file."""

    def __init__(self, path: Path | None, clock: SimClock, meta: dict[str, Any], scenarios: list[Scenario]):
        self.path = path
        self.clock = clock
        self.scenarios = scenarios
        self.doc: dict[str, Any] = {
            "version": 1,
            **meta,
            "clock": {"origin_epoch": clock.origin, "origin_utc": clock.iso(0), "speed": clock.speed,
                      "rule": "utc = origin + sim_seconds / speed"},
            "scenarios": [s.record for s in scenarios],
            "dirac_actions": [],
            "log": [],
        }
        self._dirty = True
        self._last_flush = 0.0

    def stamp(self, t: float) -> dict[str, Any]:
        return {"sim": round(t, 1), "utc": self.clock.iso(t)}

    def note(self, t: float, event: str, **detail: Any) -> None:
        """A line in the run's log (scenario starts/ends, operator actions)."""
        if len(self.doc["log"]) < MAX_LOG:
            self.doc["log"].append({**self.stamp(t), "event": event, **detail})
            self._dirty = True

    def scenario_started(self, sc: Scenario, t: float) -> None:
        sc.record["started"] = self.stamp(t)
        self.note(t, "scenario started", scenario=sc.name, target=sc.target_labels())

    def scenario_ended(self, sc: Scenario, t: float) -> None:
        sc.record["ended"] = self.stamp(t)
        self.note(t, "scenario ended", scenario=sc.name, target=sc.target_labels())

    def expect(self, sc: Scenario, key: str, t: float, **detail: Any) -> None:
        """When DIRAC's rule would act at the earliest (its threshold, ignoring agent polling)."""
        sc.record["dirac_expected"][key] = {**self.stamp(t), **detail}
        self._dirty = True

    def rule(self, sc: Scenario, text: str) -> None:
        """The DIRAC rule that applies to this scenario (when its action time is not known in advance)."""
        sc.record["dirac_rules"].append(text)
        self._dirty = True

    def milestone(self, sc: Scenario, key: str, t: float, **detail: Any) -> None:
        if key not in sc.record["milestones"]:
            sc.record["milestones"][key] = {**self.stamp(t), **detail}
            self._dirty = True

    def action(self, t: float, mechanism: str, action: str, *, site: str | None = None, ce: str | None = None,
               **detail: Any) -> None:
        """DIRAC acted (StalledJobAgent, RSS policy): logged, and attributed to the scenarios it concerns."""
        entry = {**self.stamp(t), "mechanism": mechanism, "action": action}
        if site:
            entry["site"] = site
        if ce:
            entry["ce"] = ce
        entry.update(detail)
        if len(self.doc["dirac_actions"]) < MAX_LOG:
            self.doc["dirac_actions"].append(entry)
        key = f"{mechanism}:{action}"
        for sc in self.scenarios:
            started = sc.record["started"]
            if started is None or t < started["sim"] or not sc.concerns(site, ce) or not _could_cause(sc, key):
                continue
            if sc.record["ended"] is not None and any(  # a later fault on the same place is the cause now
                    o is not sc and o.active and o.record["started"]["sim"] > started["sim"] and o.concerns(site, ce)
                    for o in self.scenarios):
                continue
            if sc.owner and any(o is not sc and o.active and not o.owner and o.concerns(site, ce)
                                and _could_cause(o, key) for o in self.scenarios):
                continue  # a fault of that place (or a central one) is there too: its action, not the user's
            acts = sc.record["dirac_actions"]
            if key not in acts:
                acts[key] = {**entry, "count": 0}
            acts[key]["count"] += detail.get("jobs", 1)
            first = sc.record["first_dirac_action"]
            if first is None:
                sc.record["first_dirac_action"] = {**entry, "key": key}
        self._dirty = True

    def flush(self, *, force: bool = False, every: float = 2.0) -> None:
        """Write the file if something changed (at most every ``every`` real seconds unless forced)."""
        if self.path is None or not self._dirty:
            return
        now = time.monotonic()
        if not force and now - self._last_flush < every:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str) + "\n")
        os.replace(tmp, self.path)
        self._dirty = False
        self._last_flush = now


def _could_cause(sc: Scenario, key: str) -> bool:
    """RSS's JobEfficiency policy reacts to failed jobs: never to a fault that fails none; the JobWrapper
    reschedules only jobs whose input cannot be fetched."""
    if key.startswith("JobWrapper:"):
        return sc.name == "input-fetch"
    return not (key.startswith("RSS:JobEfficiency") and sc.name in FAILS_NO_JOBS)
