"""The two agents' cycles (``submit``, ``reap``), the timeout classification and the bounded loop.

A cycle never raises: every DIRAC ``S_ERROR``, JobDB or Pushgateway failure is logged as one line and
counted in :class:`CycleStats` by kind (``dirac``, ``db``, ``pushgateway``, ``config``, ``state``,
``internal``); the loop sums them and runs the next cycle.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily

from .backends import (
    FINAL,
    HELD,
    QUEUED,
    RUNNING,
    UNKNOWN,
    WAITING,
    Backend,
    BackendError,
    NoOutput,
    make_backend,
)
from .config import Config, ConfigError
from .diracjob import DiracError, build_probe_job, configured_sites, initialize, probe_push, target_probe
from .harvest import MAX_OUTPUT, PROBE_LOG, HarvestRefused, NoResult, parse_result
from .jobdb import JobDB, JobDBError, ProbeJobRow, SiteActivity
from .pushgw import Group, PushError, Pushgateway
from .state import StateError, StateStore
from .targets import Target, in_downtime, target_from_key

log = logging.getLogger("bes_probe_agent")

AGENT_JOB = "bes_probe_agent"
PROBE_JOB = "bes_probe"
STATUSES = ("ok", "failed", "bad", "busy", "unknown")
HARVEST_OUTCOMES = ("pushed", "refused", "missing")
FAILURE_KINDS = ("dirac", "db", "pushgateway", "config", "state", "internal")
# A probe result counts for a job if pushed after the job's submission (minus this clock slack).
CLOCK_SLACK = 120.0


HELPS = {
    "dirac_probe_submitted_timestamp_seconds": "When the agent last submitted a probe job for this target",
    "dirac_probe_status": "Probe state of the target (one-hot): ok, failed, bad, busy, unknown",
    "dirac_site_downtime": "1 while the target is in a declared scheduled downtime",
    "dirac_probe_harvests": "Probe results the reaper looked for in finished probe jobs' output, by outcome",
}


class _Counter:
    """A counter family whose totals come from the state file, pushed without prometheus_client's ``_created``
    sample (it would be a spurious ``<name>_created`` series, reset by every push)."""

    def __init__(self, name: str, documentation: str, label: str, values: dict[str, float]) -> None:
        self.name, self.documentation, self.label, self.values = name, documentation, label, values

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self.values.items():
            family.add_metric([value], count)
        yield family


@dataclass
class CycleStats:
    """What one cycle did and which failures it met (kind -> count)."""

    command: str
    submitted: int = 0
    pending: int = 0
    reaped: int = 0
    pushed: int = 0
    harvested: int = 0
    deleted_groups: int = 0
    failures: collections.Counter = field(default_factory=collections.Counter)

    def fail(self, kind: str, message: object) -> None:
        self.failures[kind] += 1
        log.error("%s %s failure: %s", self.command, kind, message)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        done = (f"submitted={self.submitted} pending={self.pending}" if self.command == "submit"
                else f"reaped={self.reaped} harvested={self.harvested} pushed={self.pushed}"
                     f" deleted_groups={self.deleted_groups}")
        bad = " ".join(f"{k}={v}" for k, v in sorted(self.failures.items())) or "none"
        return f"{self.command} cycle: {done}; failures: {bad}"


@dataclass
class ProbeResult:
    """The probe's own latest push for a target."""

    time: float
    success: bool


@dataclass
class Candidate:
    """A probe job the reaper looks at."""

    job_id: str
    target: Target | None
    status: str
    waited: float
    ran: float
    submitted: float | None = None
    ended: float | None = None
    backend: str | None = None  # the back-end of a job the submitter recorded (only those are harvested)


def classify(status: str, activity: SiteActivity) -> str:
    """BES3's SAM rule (BESDIRAC ``CEBaseTest.getTestResult``) for a probe job past its timeout.

    ``Waiting`` (queued for the site's pilots) while the site has no Running and no Done job in
    ``probe.done_window`` -> ``bad``; the site runs other jobs -> ``busy``; otherwise ``unknown``. A job DIRAC
    still holds (:data:`.backends.HELD`: optimizers, staging, a banned site) never reached the site: ``unknown``
    whatever the site does. Matched or Running: it reached a worker node, never ``bad``.
    """
    if status in HELD:
        return "unknown"
    if status == QUEUED and activity.running == 0 and activity.done == 0:
        return "bad"
    if activity.running > 0:
        return "busy"
    return "unknown"


def decide(now: float, result: ProbeResult | None, event: dict | None, max_age: float) -> str:
    """The target's state: the newest of the probe's own result and the reaper's latest event, if fresh."""
    candidates = []
    if result is not None:
        candidates.append((result.time, "ok" if result.success else "failed"))
    if event:
        candidates.append((float(event.get("time", 0)), str(event.get("status", "unknown"))))
    if not candidates:
        return "unknown"
    when, status = max(candidates)
    if now - when > max_age or status not in STATUSES:
        return "unknown"
    return status


class Agent:
    """Both agents over one configuration; back-end, JobDB and Pushgateway are created lazily."""

    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time,
                 backend_factory: Callable[[Config, list[Target] | None], Backend] = make_backend) -> None:
        self.cfg = cfg
        self.clock = clock
        self.backend_factory = backend_factory
        self.state = StateStore(cfg.state_dir)
        push = cfg.pushgateway
        self.pgw = Pushgateway(push["url"], push["username"], cfg.push_password, push["ca_file"], push["timeout"],
                               push["client_cert"], push["client_key"])
        self.jobdb = JobDB(cfg.database, cfg.db_password) if cfg.database else None
        self._backend: Backend | None = None

    # ---- shared -----------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """Configured targets, or every site of DIRAC's configuration for ``targets: all``."""
        if self.cfg.targets is not None:
            return list(self.cfg.targets)
        b = self.cfg.backend
        initialize(b["config_files"], require_auth=b["require_auth"])
        return [Target(site) for site in sorted(configured_sites())]

    def backend(self, targets: list[Target]) -> Backend:
        if self._backend is None:
            self._backend = self.backend_factory(self.cfg, targets)
        return self._backend

    def _downtimes(self, stats: CycleStats) -> list:
        try:
            return self.cfg.current_downtimes()
        except ConfigError as exc:
            stats.fail("config", exc)
            return []

    def _push_target(self, target: Target, values: dict[str, float | dict[str, float]]) -> None:
        """Push-add metrics into the target's agent group (``job=bes_probe_agent, site, ce``)."""
        reg = CollectorRegistry()
        for name, value in values.items():
            if name == "dirac_probe_harvests" and isinstance(value, dict):
                reg.register(_Counter(name, HELPS[name], "outcome", value))
            elif isinstance(value, dict):
                g = Gauge(name, HELPS[name], ["status"], registry=reg)
                for label, v in value.items():
                    g.labels(label).set(v)
            else:
                Gauge(name, HELPS[name], registry=reg).set(value)
        self.pgw.pushadd(AGENT_JOB, {"site": target.site, "ce": target.ce_label}, reg)

    def identity(self, snapshot: dict) -> tuple[str | None, str | None] | None:
        """(Owner, OwnerGroup) of the agents' probe jobs: configured, else learnt, else None (unknown)."""
        p = self.cfg.probe
        if p["owner"] or p["owner_group"]:
            return p["owner"], p["owner_group"]
        learnt = snapshot.get("identity") or {}
        return (learnt["owner"], learnt.get("owner_group")) if learnt.get("owner") else None

    def own_jobs(self, rows: list[ProbeJobRow], stats: CycleStats) -> list[ProbeJobRow]:
        """The JobDB rows of the probe's JobGroup that are the agents' own probe jobs.

        Any DIRAC user can give a job the probe's JobGroup and JobName. A row is ours if its JobID is one
        the submitter recorded, or its Owner/OwnerGroup are the agents' identity (``probe.owner``,
        ``probe.owner_group``; without them, learnt from the first recorded job seen in JobDB). Others are
        never killed, classified or counted as pending.
        """
        snapshot = self.state.read()
        recorded = {str(r.get("job_id")) for r in snapshot["pending"].values()}
        recorded |= {str(h.get("job_id")) for h in snapshot["finished"]}
        ident = self.identity(snapshot)
        p = self.cfg.probe
        if not (p["owner"] or p["owner_group"]):
            seen = next((r for r in rows if r.job_id in recorded and r.owner), None)
            if seen is not None and ident != (seen.owner, seen.owner_group):
                ident = (seen.owner, seen.owner_group)
                log.info("probe jobs are owned by %s (group %s): learnt from job %s", *ident, seen.job_id)
                try:
                    with self.state.locked() as s:
                        s["identity"] = {"owner": ident[0], "owner_group": ident[1]}
                except StateError as exc:
                    stats.fail("state", exc)
        out = []
        for r in rows:
            if r.job_id in recorded or (ident is not None and (ident[0] is None or r.owner == ident[0])
                                        and (ident[1] is None or r.owner_group == ident[1])):
                out.append(r)
            else:
                log.info("job %s of JobGroup %s (owner %s, group %s) is not one of the agents' probe jobs: left"
                         " alone", r.job_id, p["job_group"], r.owner or "?", r.owner_group or "?")
        return out

    def cycle(self, command: str, dry_run: bool = False) -> CycleStats:
        """One ``submit`` or ``reap`` cycle, then the command's liveness push (not for a dry run)."""
        stats = self.submit_cycle(dry_run=dry_run) if command == "submit" else self.reap_cycle()
        if not dry_run:
            self.push_liveness(stats)
        return stats

    def push_liveness(self, stats: CycleStats) -> None:
        """Replace the command's own group ``job=bes_probe_agent, agent=submit|reap``: when its latest cycle
        ended and the failures that cycle met, so DiracProbeAgentStale can name the command that went silent."""
        reg = CollectorRegistry()
        Gauge("dirac_probe_agent_last_cycle_timestamp_seconds", "When this agent command last finished a cycle",
              registry=reg).set(self.clock())
        failures = Gauge("dirac_probe_agent_cycle_failures", "Failures the latest cycle of this agent command met,"
                         " by kind", ["kind"], registry=reg)
        for kind in FAILURE_KINDS:
            failures.labels(kind).set(stats.failures.get(kind, 0))
        try:
            self.pgw.push(AGENT_JOB, {"agent": stats.command}, reg)
        except PushError as exc:
            stats.fail("pushgateway", exc)

    # ---- submit -----------------------------------------------------------------------------------

    def submit_cycle(self, dry_run: bool = False) -> CycleStats:
        """Submit a probe job to every due target without a pending one (never two per target)."""
        stats = CycleStats("submit")
        now = self.clock()
        probe = self.cfg.probe
        if not probe["pyz"]:
            stats.fail("config", "'probe.pyz' is not set; point it at bes-probe.pyz")
            return stats
        for key in ("pyz", "config"):
            if probe[key] and "{" not in probe[key] and not _readable(probe[key]):
                stats.fail("config", f"'probe.{key}' {probe[key]} is not a readable file")
                return stats
        try:
            targets = self.targets()
            backend = self.backend(targets)
        except (BackendError, DiracError) as exc:
            stats.fail("dirac", exc)
            return stats
        downtimes = self._downtimes(stats)
        snapshot = self.state.read()
        pending = snapshot["pending"]
        ids = [p["job_id"] for p in pending.values() if p.get("backend") == backend.name]
        states = None
        try:
            states = backend.status(ids)
        except BackendError as exc:
            stats.fail("dirac", f"{exc}; targets with a recorded probe job are not submitted this cycle")
        in_db: set[tuple[str, str]] = set()
        if self.jobdb is not None and backend.in_jobdb:
            try:
                in_db = {r.target.key for r in self.own_jobs(self.jobdb.probe_jobs(probe["job_group"]), stats)
                         if r.target}
            except JobDBError as exc:
                stats.fail("db", exc)
        url = self.cfg.pushgateway["probe_url"] or self.cfg.pushgateway["url"]
        for target in targets:
            key = target.state_key
            if in_downtime(target, downtimes, now):
                log.info("%s: in scheduled downtime, no probe submitted", target)
                continue
            rec = pending.get(key)
            if rec and rec.get("backend") == backend.name:
                state = states.get(rec["job_id"]) if states is not None else None
                if state is None or (state.status not in FINAL and state.status != UNKNOWN):
                    log.info("%s: probe job %s still pending (%s)", target, rec["job_id"],
                             state.status if state else "status unavailable")
                    stats.pending += 1
                    continue
            if target.key in in_db:
                log.info("%s: a probe job is still pending in JobDB", target)
                stats.pending += 1
                continue
            if now - float(snapshot["submitted"].get(key, 0)) < probe["period"]:
                log.debug("%s: not due yet", target)
                continue
            own = target_probe(probe, target)["config"]
            if own and own != probe["config"] and not _readable(own):
                stats.fail("config", f"'probe.config' {own} (for {target}) is not a readable file")
                continue
            push = probe_push(self.cfg.pushgateway, target)
            unreadable = [k for k, v in push.items() if k != "probe_user" and not _readable(v)]
            if unreadable:
                stats.fail("config", f"'pushgateway.{unreadable[0]}' {push[unreadable[0]]} (for {target}) is not a"
                                     " readable file; create it or fix the name")
                continue
            if "probe_password_file" in push and os.stat(push["probe_password_file"]).st_mode & 0o077:
                log.warning("%s is readable by group/others; chmod 600 it", push["probe_password_file"])
            try:
                job = build_probe_job(target, probe, url, push)
            except DiracError as exc:
                stats.fail("dirac", exc)
                continue
            if dry_run:
                from .diracjob import job_jdl

                print(f"# {target}\n{job_jdl(job).strip()}\n")
                continue
            try:
                job_id = backend.submit(job, target)
            except BackendError as exc:
                stats.fail("dirac", exc)
                continue
            stats.submitted += 1
            log.info("%s: submitted probe job %s", target, job_id)
            try:
                self._record_submission(key, job_id, backend.name, now, states)
            except StateError as exc:
                stats.fail("state", exc)
            try:
                self._push_target(target, {"dirac_probe_submitted_timestamp_seconds": now})
            except PushError as exc:
                stats.fail("pushgateway", exc)
        return stats

    def _record_submission(self, key: str, job_id: str, backend: str, now: float, states) -> None:
        with self.state.locked() as s:
            old = s["pending"].get(key)
            if old and old.get("job_id") != job_id:
                prev = states.get(old["job_id"]) if states else None
                s["finished"].append({**old, "key": key, "status": prev.status if prev else UNKNOWN})
                del s["finished"][:-1000]
            s["pending"][key] = {"job_id": job_id, "submitted": now, "backend": backend}
            s["submitted"][key] = now

    # ---- reap -------------------------------------------------------------------------------------

    def probe_results(self, groups: list[Group] | None = None) -> dict[tuple[str, str], ProbeResult]:
        """The probe's own latest result per (site, ce) from its Pushgateway groups."""
        out = {}
        for g in self.pgw.groups(PROBE_JOB) if groups is None else groups:
            if g.labels.get("job") != PROBE_JOB:
                continue
            site, ce = g.labels.get("site"), g.labels.get("ce")
            success = g.value("dirac_probe_success", check="all")
            if not site or not ce or success is None:
                continue
            when = g.value("dirac_probe_last_run_timestamp_seconds") or g.push_time
            out[(site, ce)] = ProbeResult(time=when, success=success >= 1)
        return out

    def reap_cycle(self) -> CycleStats:
        """Kill and classify probe jobs past their timeouts, push every target's state, retire old groups."""
        stats = CycleStats("reap")
        now = self.clock()
        probe = self.cfg.probe
        targets: list[Target] | None = None
        backend: Backend | None = None
        try:
            targets = self.targets()
            backend = self.backend(targets)
        except (BackendError, DiracError) as exc:
            stats.fail("dirac", f"{exc}; timed-out probe jobs cannot be killed this cycle")
        downtimes = self._downtimes(stats)
        groups: list[Group] | None = None
        results: dict | None = None
        try:
            groups = self.pgw.groups()
            results = self.probe_results(groups)
        except PushError as exc:
            stats.fail("pushgateway", exc)

        snapshot = self.state.read()
        cands: dict[str, Candidate] = {}
        if self.jobdb is not None and (backend is None or backend.in_jobdb):
            try:
                for r in self.own_jobs(self.jobdb.probe_jobs(probe["job_group"]), stats):
                    cands[r.job_id] = Candidate(r.job_id, r.target, r.status, r.waited, r.ran)
            except JobDBError as exc:
                stats.fail("db", exc)
        recorded = {rec["job_id"]: (key, rec) for key, rec in snapshot["pending"].items()}
        if backend is not None:
            ask = [jid for jid, (_, rec) in recorded.items()
                   if rec.get("backend") == backend.name and jid not in cands]
            try:
                for jid, st in backend.status(ask).items():
                    key, rec = recorded[jid]
                    sub = float(rec.get("submitted") or st.submitted or now)
                    cands[jid] = Candidate(jid, target_from_key(key), st.status, now - sub,
                                           now - float(st.started or sub), sub, st.ended, backend.name)
            except BackendError as exc:
                stats.fail("dirac", exc)
        for jid, c in cands.items():
            if jid in recorded:
                c.target = target_from_key(recorded[jid][0])
                c.submitted = float(recorded[jid][1].get("submitted") or 0) or c.submitted

        timed_out: list[Candidate] = []
        finished: list[Candidate] = []
        for c in cands.values():
            if c.status in FINAL or c.status == UNKNOWN:
                finished.append(c)
            elif (c.status in WAITING and c.waited > probe["waiting_timeout"]
                  or c.status in RUNNING and c.ran > probe["running_timeout"]):
                timed_out.append(c)
        for h in snapshot["finished"]:
            finished.append(Candidate(str(h.get("job_id")), target_from_key(h.get("key", "")),
                                      h.get("status", UNKNOWN), 0, 0, float(h.get("submitted") or 0),
                                      backend=h.get("backend")))

        activity: dict[str, SiteActivity] | None = None
        sites = sorted({c.target.site if c.target else "" for c in timed_out if c.status not in HELD} - {""})
        if sites:
            if self.jobdb is None:
                log.warning("no 'database' configured: timed-out probe jobs are classified 'unknown'")
            else:
                try:
                    activity = self.jobdb.site_activity(sites, probe["job_group"], probe["done_window"])
                except JobDBError as exc:
                    stats.fail("db", f"{exc}; timed-out probe jobs are classified 'unknown'")
        events: dict[str, dict] = {}
        removed: set[str] = set()
        for c in timed_out:
            act = activity.get(c.target.site if c.target else "", SiteActivity()) if activity is not None else None
            if c.status in HELD:
                cls, why = "unknown", "held by DIRAC, never queued for the site"
            else:
                cls = classify(c.status, act) if act is not None else "unknown"
                why = f"site: {act.running if act else '?'} running, {act.done if act else '?'} done"
            log.info("probe job %s for %s: %s for %.0f s, past its timeout -> %s (%s)", c.job_id,
                     c.target or "an unknown target", c.status, c.waited if c.status in WAITING else c.ran, cls, why)
            if c.target is not None:
                events[c.target.state_key] = {"status": cls, "time": now, "job_id": c.job_id}
            if backend is None:
                continue
            try:
                backend.kill(c.job_id)
                removed.add(c.job_id)
                stats.reaped += 1
            except BackendError as exc:
                stats.fail("dirac", exc)
        harvests: dict[str, collections.Counter] = {}
        for c in finished:
            if results is None:
                continue  # cannot tell whether the probe reported; decide next cycle
            if c.target is None:
                removed.add(c.job_id)
                continue
            res = results.get(c.target.key)
            since = (c.submitted or 0) - CLOCK_SLACK
            if res is None or res.time < since:
                outcome, res = self._harvest(backend, c, now, stats)
                if outcome is None:
                    continue  # DIRAC or the Pushgateway failed: try again next cycle (within harvest_max_age)
                if outcome:
                    harvests.setdefault(c.target.state_key, collections.Counter())[outcome] += 1
                if res is not None:
                    results[c.target.key] = res
                else:
                    log.info("probe job %s for %s ended %s without a probe result", c.job_id, c.target, c.status)
                    events[c.target.state_key] = {"status": "failed", "time": now, "job_id": c.job_id}
            removed.add(c.job_id)
        try:
            with self.state.locked() as s:
                s["events"].update(events)
                for key, counts in harvests.items():
                    total = collections.Counter(s["harvests"].get(key) or {})
                    total.update(counts)
                    s["harvests"][key] = dict(total)
                harvest_totals = dict(s["harvests"])
                s["pending"] = {k: v for k, v in s["pending"].items() if v.get("job_id") not in removed}
                s["finished"] = [h for h in s["finished"] if str(h.get("job_id")) not in removed]
                current_events = dict(s["events"])
                submitted = dict(s["submitted"])
        except StateError as exc:
            stats.fail("state", exc)
            current_events = {**snapshot["events"], **events}
            submitted = snapshot["submitted"]
            harvest_totals = snapshot["harvests"]

        if results is not None and groups is not None and targets is not None:
            # What the Pushgateway holds of ours: after a restart without persistence (or a wipe) the
            # submission times are missing and are pushed again from the state file.
            on_pgw = {(g.labels.get("site"), g.labels.get("ce")): g.value("dirac_probe_submitted_timestamp_seconds")
                      for g in groups if g.labels.get("job") == AGENT_JOB}
            for target in targets:
                status = decide(now, results.get(target.key), current_events.get(target.state_key),
                                self.cfg.result_max_age)
                down = 1.0 if in_downtime(target, downtimes, now) else 0.0
                values: dict[str, float | dict[str, float]] = {
                    "dirac_probe_status": {s: float(s == status) for s in STATUSES}, "dirac_site_downtime": down}
                counts = harvest_totals.get(target.state_key) or {}
                values["dirac_probe_harvests"] = {o: float(counts.get(o) or 0) for o in HARVEST_OUTCOMES}
                sub = float(submitted.get(target.state_key) or 0)
                if sub and (on_pgw.get(target.key) or 0) < sub:
                    log.info("%s: dirac_probe_submitted_timestamp_seconds missing from the Pushgateway (restarted?),"
                             " pushed again", target)
                    values["dirac_probe_submitted_timestamp_seconds"] = sub
                try:
                    self._push_target(target, values)
                    stats.pushed += 1
                except PushError as exc:
                    stats.fail("pushgateway", exc)
                    break  # the Pushgateway is down: do not time out once per target
            self._retire(targets, groups, stats)
        return stats

    def _harvest(self, backend: Backend | None, c: Candidate, now: float, stats: CycleStats
                 ) -> tuple[str | None, ProbeResult | None]:
        """Push the result a finished probe job printed because its own push failed (``bes-probe`` exit 2).

        Only jobs the submitter recorded on this back-end, ended within ``probe.harvest_max_age``; the result
        must be for the job's target and run within the job's life (:func:`.harvest.parse_result`). Returns
        (outcome, result): outcome ``pushed``, ``refused``, ``missing``, ``""`` (not looked for) or None (a
        DIRAC or Pushgateway failure: try again next cycle).
        """
        assert c.target is not None
        max_age = self.cfg.harvest_max_age
        if backend is None or c.backend != backend.name or not max_age:
            return "", None
        if now - float(c.ended or c.submitted or now) > max_age:
            log.info("probe job %s for %s ended more than %.0f s ago: not harvested", c.job_id, c.target, max_age)
            return "", None
        try:
            output = backend.read_output(c.job_id, PROBE_LOG, MAX_OUTPUT)
            found = parse_result(output, c.target, (c.submitted or 0) - CLOCK_SLACK, now + CLOCK_SLACK)
        except (NoOutput, NoResult) as exc:
            log.info("probe job %s for %s: no result to harvest: %s", c.job_id, c.target, exc)
            return "missing", None
        except BackendError as exc:
            stats.fail("dirac", exc)
            return None, None
        except HarvestRefused as exc:
            log.warning("probe job %s for %s: harvested result refused: %s", c.job_id, c.target, exc)
            return "refused", None
        try:
            self.pgw.push(PROBE_JOB, {"site": c.target.site, "ce": c.target.ce_label}, found.registry)
        except PushError as exc:
            stats.fail("pushgateway", exc)
            return None, None
        stats.harvested += 1
        log.info("probe job %s for %s: result harvested from its output and pushed (%s)", c.job_id, c.target,
                 "ok" if found.success else "failed")
        return "pushed", ProbeResult(time=found.run_time, success=found.success)

    def _retire(self, targets: list[Target], groups: list[Group], stats: CycleStats) -> None:
        """Delete the agent's and the probe's groups of targets no longer configured."""
        keep = {t.key for t in targets}
        for g in groups:
            job, site, ce = g.labels.get("job"), g.labels.get("site"), g.labels.get("ce")
            if job not in (AGENT_JOB, PROBE_JOB) or not site or not ce or (site, ce) in keep:
                continue
            try:
                self.pgw.delete(job, {"site": site, "ce": ce})
                stats.deleted_groups += 1
                log.info("deleted Pushgateway group job=%s site=%s ce=%s (target no longer configured)",
                         job, site, ce)
            except PushError as exc:
                stats.fail("pushgateway", exc)
        with_state_cleanup(self.state, keep, stats)


def with_state_cleanup(store: StateStore, keep: set[tuple[str, str]], stats: CycleStats) -> None:
    """Forget events of targets no longer configured (pending jobs stay until reaped)."""
    try:
        with store.locked() as s:
            s["events"] = {k: v for k, v in s["events"].items() if target_from_key(k).key in keep}
    except StateError as exc:
        stats.fail("state", exc)


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def run_loop(cycle: Callable[[], CycleStats], interval: float, max_cycles: int | None = None,
             stop: threading.Event | None = None) -> collections.Counter:
    """Run ``cycle`` every ``interval`` s until ``stop`` is set or ``max_cycles`` ran; return failure totals.

    Nothing a cycle raises ends the loop: it is logged and counted as an ``internal`` failure.
    """
    stop = stop or threading.Event()
    totals: collections.Counter = collections.Counter()
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        try:
            stats = cycle()
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            log.debug("cycle %d raised", n, exc_info=True)
            stats = CycleStats("cycle")
            stats.fail("internal", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        totals.update(stats.failures)
        total = " ".join(f"{k}={v}" for k, v in sorted(totals.items())) or "none"
        log.info("cycle %d: %s (%.1f s); failures so far: %s", n, stats.summary(), time.monotonic() - started,
                 total)
        if max_cycles is not None and n >= max_cycles:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return totals
