"""The discrete-event workload: users submitting, optimizers, SiteDirector and pilots, Matcher, JobWrapper
and Watchdog, StalledJobAgent and the RSS policies, all writing through :class:`DiracWriter`.

Every event runs at a simulated second ``t`` and writes database time ``clock.when(t)``. The engine keeps
two views of each job and pilot: what really happens on the worker node (``phase``/``state``) and what
DIRAC's databases say (``db``); they differ when reports are lost (``heartbeat-loss``), which is exactly
what StalledJobAgent exists for.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from collections import deque
from typing import Any, Callable

from .clock import SimClock
from .cvmfs import FakeCvmfs
from .events import EventLog
from .owners import USERS
from .scenarios import Scenario
from .topology import CE, Host, Site, Topology
from .writer import DiracWriter

NON_FINAL_DB = ("Matched", "Running", "Completing", "Stalled")
INITIAL_FILL = 3600.0  # simulated seconds in which pilots fill the empty grid (they get random ages)
PRODUCTIONS = ("psi3770_sim", "jpsi_rec", "psi2s_sim", "xyz4180_rec")
# Background failures: (weight, MinorStatus, ApplicationStatus, when as a share of the run time, via Completing).
# A transient input failure ("sandbox", "data": FETCH_STEPS) is no failure: the JobWrapper reschedules the job.
FAILURES = (
    (45, "Application Finished With Errors", "'boss.exe' Exited With Status 139", None, True),
    (15, "data", "", 0.0, False),
    (5, "sandbox", "", 0.0, False),
    (10, "Exception During Execution", "Exception During Execution", None, False),
    (5, "Job has exceeded maximum wall clock time", "'boss.exe' Exited With Status 137", 1.0, False),
    (10, "Watchdog identified this job as stalled", "'boss.exe' Exited With Status 143", None, False),
    (10, "Payload failed", "'boss.exe' Exited With Status 1", None, True),
)
# The JobWrapper reports a payload's non-zero exit as Completing / APP_ERRORS (JobWrapper.py, JobMinorStatus.py),
# the workflow's Script module sets ApplicationStatus "'<executable>' Exited With Status <N>" (Workflow/Modules/
# Script.py _exitWithError); the job then ends Failed with the same strings.
APP_ERRORS = "Application Finished With Errors"
USER_BROKEN_APP = "'boss.exe' Exited With Status 2"  # BOSS is Gaudi: ReturnCode FailInput, an input file unreadable
NO_RELEASE_APP = "'boss.exe' Exited With Status 127"  # the shell's "command not found": the BOSS release is missing
# OptimizerExecutor.processTask (WorkloadManagementSystem/Executor/Base/OptimizerExecutor.py): an optimizer's
# S_ERROR fails the job, MinorStatus "<Name> optimizer", ApplicationStatus the message (Executor/InputData.py
# _getInputData, Executor/JobScheduling.py optimizeJob). The chain JobPath, JobSanity, InputData, JobScheduling
# moves on by setNextOptimizer: Checking, MinorStatus the next optimizer, source the current one.
OPTIMIZER_CHAIN = ("JobPath", "JobSanity", "InputData", "JobScheduling")
OPTIMIZER_FAILURES = (("InputData", "Input data not available"), ("JobScheduling", "No possible site candidates"))
# JobScheduling optimizer (WorkloadManagementSystem/Executor/JobScheduling.py optimizeJob): a rescheduled job is held
# RescheduleDelays[min(RescheduleCounter - 1, 3)] seconds before it reaches the TaskQueue again.
RESCHEDULE_DELAYS = (60.0, 180.0, 300.0, 600.0)
# JobWrapperTemplate.py execute -> JobWrapperUtilities.py transferInputSandbox / resolveInputData: the step's
# MinorStatus passed to rescheduleFailedJob, and the reports JobWrapper.py stored before it (sent with it).
FETCH_STEPS = {"sandbox": ("Downloading InputSandbox", ("Downloading InputSandbox", "Failed Downloading InputSandbox")),
               "data": ("Input Data Resolution", ("Input Data Resolution",))}
# RSS states a SiteDirector and the Matcher use (ResourceStatusSystem/Client/SiteStatus.py getUsableSites,
# WorkloadManagementSystem/Agent/SiteDirector.py CE mask): Active and Degraded only.
USABLE = ("Active", "Degraded")
PILOT_ABORT_REASONS = ("Job held by the CE: no matching resources", "Pilot aborted by the batch system",
                       "Job was held: error from the execute node")


class Job:
    """A DIRAC job: the real life on the node (``phase``) and its database view (``db``, ``last``)."""

    __slots__ = ("id", "target", "site", "host", "pilot", "phase", "db", "last", "submitted", "pending", "started",
                 "owner", "group", "reschedules")

    def __init__(self, job_id: int, target: Site | None, t: float, owner: str = "", group: str = ""):
        self.id, self.target, self.submitted = job_id, target, t
        self.owner, self.group = owner, group
        self.site: Site | None = None
        self.host: Host | None = None
        self.pilot: Pilot | None = None
        self.phase = "received"  # received, waiting, matched, running, completing, ended
        self.db = "Received"
        self.last = t  # latest of HeartBeatTime and LastUpdateTime (what StalledJobAgent looks at)
        self.pending: tuple[str, str, str] | None = None  # final report lost in a network cut
        self.started = 0.0
        self.reschedules = 0  # JobDB RescheduleCounter


def rss_next(current: str, candidate: str) -> str:
    """RSSMachine (ResourceStatusSystem/PolicySystem/StateMachine.py): any transition, except that Banned moves
    only to Error, Banned or Probing; any other candidate from Banned becomes Probing."""
    if current == "Banned" and candidate not in ("Error", "Banned", "Probing"):
        return "Probing"
    return candidate


def pilot_efficiency(open_pilots: int, failed: int, recent: list[bool]) -> float | None:
    """PilotJobEff as PilotAgentsDB.getGroupedPilotSummary (PivotedPilotSummaryTable) computes it for the
    PilotCommand that CacheFeederAgent runs: every pilot not Done/Aborted (whatever its age: open ones and Failed
    ones) plus the Done/Aborted ones updated in the last day (``recent``, True for Aborted); (Total - Aborted) /
    Total * 100. No pilot: no record, the policy answers Unknown (None). No minimum count."""
    total = open_pilots + failed + len(recent)
    if total == 0:
        return None
    return (total - sum(recent)) / total * 100.0


def pilot_efficiency_status(eff: float | None) -> str:
    """Policy/PilotEfficiencyPolicy.py: <= 50 Banned, <= 90 Degraded, else Active; no value Unknown."""
    if eff is None:
        return "Unknown"
    return "Banned" if eff <= 50.0 else "Degraded" if eff <= 90.0 else "Active"


def job_efficiency_status(done: int, failed: int) -> str:
    """Policy/JobEfficiencyPolicy.py: (Done + Completed) / (Done + Completed + Failed); Unknown under 10 jobs,
    < 0.5 Banned, < 0.9 Degraded, else Active."""
    total = done + failed
    if total < 10:
        return "Unknown"
    eff = done / total
    return "Banned" if eff < 0.5 else "Degraded" if eff < 0.9 else "Active"


def combined(result: str) -> str:
    """PDP._combineSinglePolicyResults takes the most penalizing result; the element's policies are the efficiency
    policy and AlwaysActive, so its Unknown (the least penalizing level of RSSMachine) combines to Active."""
    return "Active" if result == "Unknown" else result


class Pilot:
    """A pilot job on a CE: batch state (``state``) and PilotAgentsDB status (``db``)."""

    __slots__ = ("id", "ce", "host", "state", "db", "started", "jobs", "fails", "ref", "pending")

    def __init__(self, pilot_id: int, ce: CE, ref: str):
        self.id, self.ce, self.ref = pilot_id, ce, ref
        self.host: Host | None = None
        self.state = "submitted"  # submitted, waiting, running, ended
        self.db = "Submitted"
        self.started = 0.0
        self.jobs = 0
        self.fails = 0
        self.pending: tuple[str, str] | None = None


class Engine:
    """Runs the workload and the faults; ``run_until(t)`` processes every event up to simulated ``t``."""

    def __init__(self, topo: Topology, writer: DiracWriter, clock: SimClock, rng: random.Random, log: EventLog,
                 scenarios: list[Scenario], cvmfs: FakeCvmfs | None = None, *, rss_enforce: bool = True,
                 pilot_history: float = 0.0):
        self.topo, self.w, self.clock, self.rng, self.log = topo, writer, clock, rng, log
        self.scenarios, self.cvmfs, self.rss_enforce = scenarios, cvmfs, rss_enforce
        self.pilot_history = pilot_history
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable, tuple]] = []
        self._seq = itertools.count()
        self.dirac, self.wl, self.pl = topo.dirac, topo.workload, topo.pilots
        d = self.wl["job_duration"]
        self.mean_duration = min(d["max"], d["median"] * math.exp(d["sigma"] ** 2 / 2))
        self.any_queue: deque[Job] = deque()
        self.site_queue: dict[Site, deque[Job]] = {s: deque() for s in topo.sites}
        self.n_any = 0
        self.n_site = dict.fromkeys(topo.sites, 0)
        self.tracked: dict[int, Job] = {}  # DB status Running/Completing/Stalled: StalledJobAgent's view
        self.pilots: dict[int, Pilot] = {}  # pilots whose DB status is not final yet
        self.site_finals: dict[Site, deque[tuple[float, bool]]] = {s: deque() for s in topo.sites}
        self.ce_finals: dict[CE, deque[tuple[float, bool]]] = {c: deque() for s in topo.sites for c in s.ces}
        self.ce_failed = dict.fromkeys(self.ce_finals, 0)  # Failed pilots: PilotEfficiency counts them at any age
        self.ce_open = dict.fromkeys(self.ce_finals, 0)  # pilots whose PilotAgentsDB status is not final
        self.site_status = dict.fromkeys(topo.sites, "Active")
        self.ce_status = {c: "Active" for c in self.ce_finals}
        self.site_mask: dict[Site, str] = {}
        self.blackholes: dict[Host, Scenario] = {}
        self.aborting: dict[CE, Scenario] = {}
        self.cut: set[Site] = set()
        self.nomatch: set[Site] = set()
        self.central: Scenario | None = None
        self.fetch_broken: dict[Host | Site, Scenario] = {}  # input-fetch faults by worker node or site
        self.broken: dict[str, Scenario] = {}  # owner -> its user-broken fault
        self.software: dict[Site, Scenario] = {}  # site -> its site-software fault
        self._users = list(USERS)  # who submits the usual jobs (not an owner whose workflow is broken)
        self.counts: dict[str, int] = {"jobs": 0, "pilots": 0, "done": 0, "failed": 0}
        self._job_serial = itertools.count(1)

    # ---- scheduling ---------------------------------------------------------------------------------

    def at(self, t: float, fn: Callable, *args: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), fn, args))

    def after(self, delay: float, fn: Callable, *args: Any) -> None:
        self.at(self.now + max(0.0, delay), fn, *args)

    def when(self) -> dt.datetime:
        """Database time of the current event."""
        return self.clock.when(self.now)

    def u(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi)

    def start(self) -> None:
        """Initial site status rows, the periodic agents, the scenarios' start and end."""
        for site in self.topo.sites:
            self._write_site_status(site, "Active", "Initial status set by bes-simulate")
        if self.pilot_history > 0:
            self._write_pilot_history()
        # The instance starts with a queue: enough jobs for every slot plus the usual backlog.
        f, total = self.wl["targeted_fraction"], self.topo.slots
        for _ in range(round((1 - f + self.wl["backlog"]) * total)):
            self.at(self.u(0, 600), self._submit, None)
        for site in self.topo.sites:
            for _ in range(round(f * site.slots)):
                self.at(self.u(0, 600), self._submit, site)
        self.at(600.0, self._submitter)
        self.at(self.u(0, 30), self._director)
        self.at(self.u(0, self.dirac["stalled_agent_period"]), self._stalled_agent)
        self.at(self.u(0, self.dirac["rss_period"]), self._rss)
        for sc in self.scenarios:
            self.at(sc.spec.at, self._scenario_start, sc)
            if sc.spec.duration is not None:
                self.at(sc.spec.at + sc.spec.duration, self._scenario_end, sc)

    def run_until(self, t_end: float) -> int:
        """Process every event due by simulated ``t_end``; returns how many ran."""
        n = 0
        heap = self._heap
        while heap and heap[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(heap)
            self.now = t
            fn(*args)
            n += 1
        self.now = max(self.now, t_end)
        return n

    def _write_pilot_history(self) -> None:
        """Finished pilots of the ``pilot_history`` before the start, at each CE's steady turnover (its slots
        over a pilot's mean life) with the normal abort/fail rates: what a running instance's PilotAgentsDB
        holds, so RSS's pilot efficiency (a day of pilots) does not judge a CE on its first hour alone."""
        life = max(self.pl["lifetime"] - self.wl["job_duration"]["max"], 0.0) + self.mean_duration
        for site in self.topo.sites:
            for ce in site.ces:
                for _ in range(round(ce.slots * self.pilot_history / life)):
                    end = -self.u(0, self.pilot_history)
                    start = end - self.u(600, life)
                    r = self.rng.random()
                    status = ("Aborted" if r < self.pl["abort_rate"]
                              else "Failed" if r < self.pl["abort_rate"] + self.pl["fail_rate"] else "Done")
                    pid = self.w.site_director_submit(site.name, ce.name, ce.queue, ce.grid_type,
                                                      when=self.clock.when(start))
                    self.w.set_pilot_status(pid, status, "Not given", when=self.clock.when(end))
                    if status == "Failed":
                        self.ce_failed[ce] += 1
                    else:
                        self.ce_finals[ce].append((end, status == "Aborted"))
        for finals in self.ce_finals.values():
            finals_sorted = sorted(finals)
            finals.clear()
            finals.extend(finals_sorted)
        self.log.note(0.0, "pilot history written", seconds=self.pilot_history)

    # ---- workload: submission and optimizers ---------------------------------------------------------

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _submitter(self) -> None:
        period = self.wl["submit_period"]
        f = self.wl["targeted_fraction"]
        total = self.topo.slots
        if self.n_any < self.wl["backlog"] * total:
            rate = self.wl["demand"] * (1 - f) * total / self.mean_duration
            for _ in range(self._poisson(rate * period)):
                self.after(self.u(0, period), self._submit, None)
        for site in self.topo.sites:
            rate = 0.9 * f * site.slots / self.mean_duration
            for _ in range(self._poisson(rate * period)):
                self.after(self.u(0, period), self._submit, site)
        self.after(period, self._submitter)

    def _submit(self, target: Site | None) -> None:
        broken = self._broken_pick()
        if broken is not None:  # the broken workflow; "mostly one site": its JDL names the focus site
            owner, group = broken.owner, broken.group
            if broken.focus is not None and self.rng.random() < broken.spec.params["concentration"]:
                target = broken.focus
        else:
            owner, group = self.rng.choice(self._users)
        serial = next(self._job_serial)
        if owner == "bes_prod":
            prod = self.rng.choice(PRODUCTIONS)
            name, job_group = f"{prod}_{serial:06d}", f"BES3_{prod}_r{1 + serial // 5000:02d}"
        else:
            name, job_group = f"boss_ana_{serial:06d}", "00000000"
        # Jobs for one site carry its name; others 'ANY', or 'Multiple' when they list several sites.
        placeholder = "Multiple" if self.rng.random() < 0.1 else "ANY"
        job_id = self.w.submit(site=target.name if target else placeholder, job_group=job_group, owner=owner,
                               owner_group=group, job_name=name, when=self.when())
        self.counts["jobs"] += 1
        self.after(self.u(5, 60), self._optimize, Job(job_id, target, self.now, owner, group))

    def _broken_pick(self) -> Scenario | None:
        """The user-broken fault whose workflow the next new job belongs to (each takes its ``share``)."""
        if not self.broken:
            return None
        r = self.rng.random()
        for sc in self.broken.values():
            r -= sc.spec.params["share"]
            if r < 0:
                return sc
        return None

    def _optimize(self, job: Job) -> None:
        sc = self.broken.get(job.owner)
        if sc is not None and self.rng.random() < sc.spec.params["before_running"]:
            self._optimizer_fails(job, sc)
            return
        if job.reschedules:  # JobScheduling holds a rescheduled job (RESCHEDULE_DELAYS) before the TaskQueue
            self.w.hold(job.id, job.reschedules, when=self.when())
            job.db, job.last = "Checking", self.now
            delay = RESCHEDULE_DELAYS[min(job.reschedules - 1, len(RESCHEDULE_DELAYS) - 1)]
            self.after(delay, self._release, job)
            return
        self.w.optimize(job.id, when=self.when())
        self._enqueue(job)

    def _release(self, job: Job) -> None:
        self.w.release(job.id, when=self.when())
        self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        """The job is Waiting in the TaskQueue: the site's queue if its JDL names one, else the common one."""
        job.phase, job.db, job.last = "waiting", "Waiting", self.now
        if job.target is None:
            self.any_queue.append(job)
            self.n_any += 1
        else:
            self.site_queue[job.target].append(job)
            self.n_site[job.target] += 1
        if self.rng.random() < self.wl["kill_rate"]:
            self.after(self.rng.expovariate(1 / 1800), self._user_kill, job)

    def _optimizer_fails(self, job: Job, sc: Scenario) -> None:
        """An optimizer fails the job before it runs (see OPTIMIZER_FAILURES); its Site stays what the JDL says."""
        stage, message = self.rng.choice(OPTIMIZER_FAILURES)
        when = self.when()
        chain = OPTIMIZER_CHAIN[:OPTIMIZER_CHAIN.index(stage) + 1]
        for source, nxt in zip(chain, chain[1:]):
            self.w.set_status(job.id, "Checking", nxt, source=source, when=when)
        self.w.set_status(job.id, "Failed", f"{stage} optimizer", message, source=stage, when=when)
        job.phase, job.db, job.last = "ended", "Failed", self.now
        self.counts["failed"] += 1
        if job.target is not None:  # RSS counts JobDB's Site column (JobDB.getSiteSummaryWeb): the JDL's site
            self.site_finals[job.target].append((self.now, False))
        stages = sc.record["owner_failures"]["before_running"]
        stages[stage] = stages.get(stage, 0) + 1

    def _user_kill(self, job: Job) -> None:
        if job.phase != "waiting":
            return
        self._unqueue(job)
        job.phase, job.db = "ended", "Killed"
        self.w.kill(job.id, when=self.when())

    def _unqueue(self, job: Job) -> None:
        if job.target is None:
            self.n_any -= 1
        else:
            self.n_site[job.target] -= 1

    # ---- SiteDirector and pilots ---------------------------------------------------------------------

    def _director(self) -> None:
        budget_any = self.n_any
        sites = list(self.topo.sites)
        self.rng.shuffle(sites)
        max_submit = int(self.pl["max_submit"])
        for site in sites:
            if site in self.cut or (self.rss_enforce and self.site_status[site] not in USABLE):
                continue
            budget_site = self.n_site[site]
            for ce in site.ces:
                if self.rss_enforce and self.ce_status[ce] not in USABLE:
                    continue
                queued = max(1, round(self.pl["queued"] * ce.slots))  # pilots kept waiting in the CE's queue
                n = min(ce.slots + queued - ce.active, max_submit, budget_site + budget_any)
                if n <= 0:
                    continue
                from_site = min(n, budget_site)
                budget_site -= from_site
                budget_any -= n - from_site
                ce.active += n
                for _ in range(n):
                    self.after(self.u(0, 20), self._pilot_submit, ce)
        self.after(self.pl["director_period"], self._director)

    def _abort_ratio(self, ce: CE) -> float:
        base = self.pl["abort_rate"]
        sc = self.aborting.get(ce)
        if sc is None:
            return base
        ramp = sc.spec.params["ramp"]
        share = 1.0 if ramp <= 0 else min(1.0, (self.now - sc.spec.at) / ramp)
        return base + (sc.spec.params["max_ratio"] - base) * share

    def _pilot_submit(self, ce: CE) -> None:
        if ce.site in self.cut:  # the CE became unreachable meanwhile: the submission fails
            ce.active -= 1
            return
        pilot_id = self.w.site_director_submit(ce.site.name, ce.name, ce.queue, ce.grid_type, when=self.when())
        pilot = Pilot(pilot_id, ce, self.w.last_pilot_reference)
        self.pilots[pilot_id] = pilot
        self.ce_open[ce] += 1
        self.counts["pilots"] += 1
        aborted = self.rng.random() < self._abort_ratio(ce)
        self.after(self.u(30, 180), self._pilot_waiting, pilot, aborted)

    def _pilot_status(self, pilot: Pilot, status: str, reason: str) -> None:
        """PilotStatusAgent/Matcher update; lost (kept pending) while the site is cut off."""
        if pilot.ce.site in self.cut:
            pilot.pending = (status, reason)
            return
        self.w.set_pilot_status(pilot.id, status, reason, when=self.when())
        pilot.db, pilot.pending = status, None
        if status in ("Done", "Failed", "Aborted", "Deleted") and self.pilots.pop(pilot.id, None) is not None:
            self.ce_open[pilot.ce] -= 1
            if status in ("Done", "Aborted"):
                self.ce_finals[pilot.ce].append((self.now, status == "Aborted"))
            else:  # Failed (and Deleted) pilots stay in PilotEfficiency's count whatever their age
                self.ce_failed[pilot.ce] += 1

    def _pilot_waiting(self, pilot: Pilot, aborted: bool) -> None:
        pilot.state = "waiting"
        self._pilot_status(pilot, "Waiting", "Not given")
        if aborted:
            self.after(self.u(300, 1800), self._pilot_abort, pilot)
        else:
            self.after(self.rng.expovariate(1 / max(pilot.ce.queue_wait, 1.0)), self._pilot_start, pilot)

    def _pilot_abort(self, pilot: Pilot) -> None:
        pilot.state = "ended"
        pilot.ce.active -= 1
        self._pilot_status(pilot, "Aborted", self.rng.choice(PILOT_ABORT_REASONS))

    def _pilot_start(self, pilot: Pilot) -> None:
        free = [h for h in pilot.ce.hosts if h.used < h.slots]
        if not free:
            self.after(60, self._pilot_start, pilot)
            return
        host = self.rng.choices(free, weights=[h.slots - h.used for h in free])[0]
        host.used += 1
        pilot.host, pilot.state, pilot.started = host, "running", self.now
        if self.now < INITIAL_FILL:
            # The first pilots fill an empty grid at once; a running instance's pilots have all ages.
            # Without this they would all reach the end of their job-taking life together, hours later.
            pilot.started -= self.u(0, max(0.0, self.pl["lifetime"] - self.wl["job_duration"]["max"]))
        self._pilot_status(pilot, "Running", "Not given")
        if self.rng.random() < self.pl["fail_rate"]:
            self.after(self.u(60, 900), self._pilot_end, pilot, "Failed", "Pilot wrapper exited with status 1")
        else:
            self.after(self.u(20, 90), self._pilot_request, pilot)

    def _pilot_end(self, pilot: Pilot, status: str = "Done", reason: str = "Not given") -> None:
        """The pilot process ends: its batch slot frees now, PilotAgentsDB learns it minutes later."""
        if pilot.state == "ended":
            return
        pilot.state = "ended"
        if pilot.host is not None:
            pilot.host.used -= 1
        pilot.ce.active -= 1
        self.after(self.u(60, 600), self._pilot_status, pilot, status, reason)

    def _matchable(self, site: Site) -> bool:
        return site not in self.nomatch and not (self.rss_enforce and self.site_status[site] not in USABLE)

    def _pick(self, site: Site) -> Job | None:
        for q in (self.site_queue[site], self.any_queue):
            while q and q[0].phase != "waiting":
                q.popleft()
        a, b = self.site_queue[site], self.any_queue
        if not a and not b:
            return None
        q = a if a and (not b or a[0].submitted <= b[0].submitted) else b
        job = q.popleft()
        self._unqueue(job)
        return job

    def _pilot_request(self, pilot: Pilot) -> None:
        """JobAgent cycle: ask the Matcher for a job; after 10 failed matches the pilot stops."""
        if pilot.state != "running":
            return
        site = pilot.ce.site
        if site in self.cut:  # the Matcher is unreachable: retry later
            self.after(300, self._pilot_request, pilot)
            return
        # Jobs ask for the queue's wall-clock limit: a pilot only takes one while enough time is left.
        left = self.pl["lifetime"] - (self.now - pilot.started)
        if pilot.jobs >= self.pl["max_cycles"] or left < self.wl["job_duration"]["max"]:
            self._pilot_end(pilot)
            return
        job = self._pick(site) if self._matchable(site) else None
        if job is None:
            pilot.fails += 1
            if pilot.fails >= 10:
                self._pilot_end(pilot)
            else:
                self.after(20 * (pilot.fails + 1) * 2, self._pilot_request, pilot)
            return
        pilot.fails = 0
        pilot.jobs += 1
        job.phase, job.site, job.pilot, job.host = "matched", site, pilot, pilot.host
        when = self.when()
        self.w.match(job.id, site.name, pilot_id=pilot.id, ce=pilot.ce.name, when=when)
        job.db, job.last = "Matched", self.now
        pilot.db = "Running"
        self.tracked[job.id] = job
        self.after(self.u(10, 60), self._job_start, job)

    # ---- JobWrapper and Watchdog ---------------------------------------------------------------------

    def _report(self, job: Job, status: str | None, minor: str | None = None, app: str | None = None) -> bool:
        """A status report from the node; lost while the site is cut off."""
        if job.site in self.cut:
            return False
        self.w.set_status(job.id, status, minor, app, when=self.when())
        if status:
            job.db = status
        elif job.db == "Stalled":  # JobStatusUtility takes any report on a Stalled job as Running
            job.db = "Running"
        job.last = self.now
        if job.db in NON_FINAL_DB:
            self.tracked[job.id] = job
        return True

    def _job_start(self, job: Job) -> None:
        if job.phase != "matched":  # rescheduled meanwhile
            return
        job.phase, job.started = "running", self.now
        self._report(job, "Running", "Job Initialization", "Unknown")
        pilot = job.pilot
        ce = pilot.ce
        if job.site not in self.cut:
            self.w.set_job_parameters(job.id, {
                "HostName": job.host.name, "GridCE": ce.name, "CEQueue": ce.queue, "Site": ce.site.name,
                "Pilot_Reference": pilot.ref,
                "LocalAccount": f"besprd{self.rng.randint(1, 40):03d}", "CPUNormalizationFactor": "10.2",
                "ModelName": "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Memory(MB)": "2048"})
        self.after(self.u(0, 10), self._heartbeat, job, 0)
        fetch = self.fetch_broken.get(job.host) or self.fetch_broken.get(job.site)
        if fetch is not None:
            lo, hi = fetch.spec.params["fail_after"]
            self.after(self.u(lo, hi), self._wrapper_reschedule, job, fetch.spec.params["what"], fetch)
            return
        if self.central is not None:
            self.after(self.u(20, 120), self._job_final, job, "Failed", "Failed Downloading InputSandbox", "Unknown")
            return
        bh = self.blackholes.get(job.host)
        if bh is not None:
            lo, hi = bh.spec.params["fail_after"]
            self.after(self.u(lo, hi), self._job_completing, job, "Failed", "Application Finished With Errors",
                       "'boss.exe' Exited With Status 127")
            return
        fault = self.broken.get(job.owner) or self.software.get(job.site)
        if fault is not None and job.group == fault.group:  # the owner's broken workflow, or no release here
            lo, hi = fault.spec.params["fail_after"]
            app = USER_BROKEN_APP if fault.owner else NO_RELEASE_APP
            self.after(self.u(lo, hi), self._job_completing, job, "Failed", APP_ERRORS, app)
            return
        d = self.wl["job_duration"]
        run = min(d["max"], max(d["min"], d["median"] * math.exp(self.rng.gauss(0, d["sigma"]))))
        self.after(self.u(20, 90), self._progress, job, "running", "Application", "Executing boss.exe")
        r = self.rng.random()
        if r < job.site.failure_rate:
            _, minor, app, share, completing = self.rng.choices(FAILURES, weights=[f[0] for f in FAILURES])[0]
            if minor in FETCH_STEPS:
                self.after(self.u(10, 60), self._wrapper_reschedule, job, minor)
                return
            at = (self.u(30, 180) if share == 0.0 else d["max"] if share == 1.0 else run * self.u(0.05, 1.0))
            fn = self._job_completing if completing else self._job_final
            self.after(at, fn, job, "Failed", minor, app)
        elif r < job.site.failure_rate + self.wl["pending_requests_rate"]:
            self.after(run, self._job_completing, job, "Completed", "Pending Requests", "Job Finished Successfully")
        else:
            self.after(run, self._job_completing, job, "Done", "Execution Complete", "Job Finished Successfully")

    def _wrapper_reschedule(self, job: Job, what: str, fault: Scenario | None = None) -> None:
        """JobWrapperTemplate.py execute: the input sandbox download (or the input data resolution) fails, and
        JobWrapperUtilities.py rescheduleFailedJob reschedules the job through JobManager.rescheduleJob (JobDB,
        MaxRescheduling 3: beyond it the job is Failed); the wrapper exits 1, so the JobAgent stops
        (StopOnApplicationFailure) and the pilot ends. ``what``: sandbox or data (FETCH_STEPS); ``fault``: the
        input-fetch fault, or None for a transient background failure."""
        if job.phase != "running" or job.site in self.cut:
            return
        minor, stored = FETCH_STEPS[what]
        rescheduled = self.w.wrapper_reschedule(job.id, minor, stored=stored, when=self.when())
        job.phase = "ended"
        self.tracked.pop(job.id, None)
        self._pilot_end(job.pilot)
        rec = fault.record["reschedules"] if fault else {"rescheduled": 0, "failed": 0}
        if rescheduled:
            rec["rescheduled"] += 1
            self.log.action(self.now, "JobWrapper", "Rescheduled", site=job.site.name, host=job.host.name, jobs=1,
                            minor=minor)
            self._again(job)
            return
        rec["failed"] += 1
        job.db, job.last = "Failed", self.now
        self._finished(job, "Failed")
        self.log.action(self.now, "JobWrapper", "Failed", site=job.site.name, host=job.host.name, jobs=1,
                        minor="Maximum of reschedulings reached")

    def _again(self, job: Job) -> None:
        """A new life, same JobID: back through the optimizers, Site reset to the JDL's (``job.target``)."""
        again = Job(job.id, job.target, job.submitted, job.owner, job.group)
        again.db, again.last, again.reschedules = "Received", self.now, job.reschedules + 1
        self.after(self.u(5, 60), self._optimize, again)

    def _progress(self, job: Job, phase: str, minor: str, app: str | None) -> None:
        """A MinorStatus/ApplicationStatus report (Status rewritten unchanged), if the job is still there."""
        if job.phase == phase:
            self._report(job, None, minor, app)

    def _heartbeat(self, job: Job, beat: int) -> None:
        """Watchdog: a heartbeat at the first 10 s poll, then each time CheckingTime more has elapsed."""
        if job.phase not in ("running", "completing"):
            return
        if job.site not in self.cut:
            elapsed = self.now - job.started
            self.w.heartbeat_data(job.id, {
                "LoadAverage": round(self.u(0.8, 1.3), 2), "MemoryUsed": round(self.u(1200, 2400), 1),
                "Vsize": round(self.u(2.5e6, 3.5e6)), "AvailableDiskSpace": round(self.u(2e4, 6e4), 1),
                "CPUConsumed": round(elapsed * self.u(0.85, 0.98), 1), "WallClockTime": round(elapsed, 1),
            }, when=self.when())
            job.db, job.last = "Running", self.now  # setHeartBeatData forces Running (even over Stalled)
            self.tracked[job.id] = job
        next_at = job.started + (beat + 1) * self.dirac["heartbeat_period"] + self.u(0, 10)
        self.at(max(next_at, self.now + 1), self._heartbeat, job, beat + 1)

    def _job_completing(self, job: Job, final: str, minor: str, app: str) -> None:
        if job.phase != "running":
            return
        if self.central is not None and final != "Failed":
            final, minor = "Failed", "Failed sending requests"
        job.phase = "completing"
        if final == "Failed":
            self._report(job, "Completing", minor, app)
            self.after(self.u(5, 30), self._job_final, job, final, minor, app)
        else:
            self._report(job, "Completing", "Application Finished Successfully", "boss.exe finished")
            self.after(self.u(30, 180), self._progress, job, "completing", "Uploading Output Data", None)
            self.after(self.u(200, 400), self._job_final, job, final, minor, app)

    def _job_final(self, job: Job, final: str, minor: str, app: str) -> None:
        if job.phase == "ended":
            return
        job.phase = "ended"
        if not self._report(job, final, minor, app):
            job.pending = (final, minor, app)  # the JobWrapper's failover request delivers it later
        else:
            self._finished(job, final)
        bh = self.blackholes.get(job.host)
        if final == "Failed" and bh is not None and job.started >= bh.spec.at:  # failed by the fault
            fails = bh.record["host_failures_sim"]
            if len(fails) < 1000:
                fails.append(round(self.now, 1))
            if len(fails) in (1, 10, 50):
                self.log.milestone(bh, f"host_failed_jobs_{len(fails)}", self.now, host=job.host.name)
        pilot = job.pilot
        if final == "Failed":  # JobAgent StopOnApplicationFailure: the pilot stops after a failed payload
            self._record_failure(job)
            self._pilot_end(pilot)
        else:
            self.after(self.u(10, 30), self._pilot_request, pilot)

    def _record_failure(self, job: Job) -> None:
        """A failed job of a broken owner, or of the group a site lacks the release for: in the events file."""
        sc = self.broken.get(job.owner)
        if sc is not None:
            rec = sc.record["owner_failures"]
            rec["after_running"] += 1
            rec["sites"][job.site.name] = rec["sites"].get(job.site.name, 0) + 1
            if rec["after_running"] in (1, 10, 50):
                self.log.milestone(sc, f"owner_failed_jobs_{rec['after_running']}", self.now, site=job.site.name)
        sw = self.software.get(job.site)
        if sw is not None and job.group == sw.group and job.started >= sw.spec.at:
            rec = sw.record["group_failures"]
            rec["jobs"] += 1
            rec["owners"][job.owner] = rec["owners"].get(job.owner, 0) + 1
            if rec["jobs"] in (1, 10, 50):
                self.log.milestone(sw, f"group_failed_jobs_{rec['jobs']}", self.now)

    def _finished(self, job: Job, final: str) -> None:
        """A final status reached the database: bookkeeping for StalledJobAgent and RSS."""
        self.tracked.pop(job.id, None)
        job.pending = None
        if final in ("Done", "Completed", "Failed"):
            self.site_finals[job.site].append((self.now, final != "Failed"))
            self.counts["failed" if final == "Failed" else "done"] += 1

    # ---- DIRAC's agents ------------------------------------------------------------------------------

    def _stalled_agent(self) -> None:
        """WorkloadManagementSystem/Agent/StalledJobAgent.py execute, every PollingTime: Running/Completing jobs
        whose later of HeartBeatTime and LastUpdateTime (``job.last``, _getLatestUpdateTime) is older than
        stalledTime -> Stalled (_markStalledJobs, with LUT); Stalled jobs (those marked at an earlier cycle) ->
        Failed 'Job stalled: pilot not running' when PilotAgentsDB does not say their pilot is Running, else
        'Stalling for more than <failedTime> sec' once that later time is older than failedTime
        (_failStalledJobs); Matched longer than MatchedTime (by LastUpdateTime) -> rescheduled (_kickStuckJobs).
        A job never sits in Rescheduled here (JobManager reschedules at once), so RescheduledTime never applies."""
        st, ft = self.dirac["stalled_time"], self.dirac["failed_time"]
        stalled: dict[Site, int] = {}
        failed: dict[tuple[Site, str], int] = {}
        when = self.when()
        for job in list(self.tracked.values()):
            if job.db == "Matched":
                if self.now - job.last > self.dirac["matched_time"]:
                    self._reschedule(job)
                continue
            if job.db in ("Running", "Completing"):
                if self.now - job.last > st:
                    self.w.stall(job.id, when=when)
                    job.db, job.last = "Stalled", self.now
                    stalled[job.site] = stalled.get(job.site, 0) + 1
                continue
            if job.db != "Stalled":
                continue
            pilot_db = job.pilot.db if job.pilot else "NoPilot"
            if pilot_db != "Running":
                minor = "Job stalled: pilot not running"
            elif self.now - job.last > ft:
                minor = f"Stalling for more than {int(ft)} sec"
            else:
                continue
            self.w.fail_stalled(job.id, minor=minor, when=when)
            job.db, job.last = "Failed", self.now
            failed[(job.site, minor)] = failed.get((job.site, minor), 0) + 1
            self._finished(job, "Failed")
            if job.phase != "ended":  # the kill command reaches the node: payload killed, pilot stops
                job.phase = "ended"
                self._pilot_end(job.pilot)
        for site, n in stalled.items():
            self.log.action(self.now, "StalledJobAgent", "Stalled", site=site.name, jobs=n)
        for (site, minor), n in failed.items():
            self.log.action(self.now, "StalledJobAgent", "Failed", site=site.name, jobs=n, minor=minor)
        self.after(self.dirac["stalled_agent_period"], self._stalled_agent)

    def _reschedule(self, job: Job) -> None:
        """StalledJobAgent._kickStuckJobs: Matched too long -> Utilities/Utils.py rescheduleJobs (source
        StalledJobAgent): a new life, same JobID; beyond MaxRescheduling the job is Failed instead."""
        rescheduled = self.w.reschedule(job.id, source="StalledJobAgent", when=self.when())
        self.tracked.pop(job.id, None)
        if job.phase != "ended":
            job.phase = "ended"
            self._pilot_end(job.pilot)
        if rescheduled:
            self.log.action(self.now, "StalledJobAgent", "Rescheduled", site=job.site.name, jobs=1)
            self._again(job)
        else:
            job.db, job.last = "Failed", self.now
            self._finished(job, "Failed")
            self.log.action(self.now, "StalledJobAgent", "Failed", site=job.site.name, jobs=1,
                            minor="Maximum of reschedulings reached")

    def _rss(self) -> None:
        """RSS every rss_period: each element's policy result combined (``combined``) and passed through the
        RSSMachine (``rss_next``). Per CE, PilotInstantEfficiency (Policy/Configurations.py: PilotEfficiencyPolicy
        on PilotCommand, onlyCache) on the cache CacheFeederAgent fills from PilotAgentsDB (``pilot_efficiency``).
        Per site, JobEfficiency only when the topology opts in (``dirac.job_efficiency``): stock DIRAC runs it
        onlyCache on JobCommand's cache, which CacheFeederAgent never feeds, so it answers Unknown."""
        if self.dirac["job_efficiency"]:
            jw = self.dirac["job_efficiency_window"]
            for site, finals in self.site_finals.items():
                while finals and finals[0][0] < self.now - jw:
                    finals.popleft()
                good = sum(1 for _, ok in finals if ok)
                result = job_efficiency_status(good, len(finals) - good)
                eff = good / len(finals) if finals else 0.0
                status = rss_next(self.site_status[site], combined(result))
                if status != self.site_status[site]:
                    self.site_status[site] = status
                    reason = f"Jobs Efficiency of {eff:.2f}" if result == status else f"RssMachine: {result}"
                    self.log.action(self.now, "RSS", f"JobEfficiency {status}", site=site.name,
                                    efficiency=round(eff, 3), jobs_in_window=len(finals))
                    if self.rss_enforce:
                        self._write_site_status(site, status, reason)
        pw = self.dirac["pilot_efficiency_window"]
        for ce, finals in self.ce_finals.items():
            while finals and finals[0][0] < self.now - pw:
                finals.popleft()
            eff = pilot_efficiency(self.ce_open[ce], self.ce_failed[ce], [a for _, a in finals])
            status = rss_next(self.ce_status[ce], combined(pilot_efficiency_status(eff)))
            if status != self.ce_status[ce]:
                self.ce_status[ce] = status
                self.log.action(self.now, "RSS", f"PilotEfficiency {status}", site=ce.site.name, ce=ce.name,
                                efficiency=None if eff is None else round(eff, 1),
                                pilots=self.ce_open[ce] + self.ce_failed[ce] + len(finals))
        self.after(self.dirac["rss_period"], self._rss)

    def _write_site_status(self, site: Site, status: str, reason: str) -> None:
        if self.w.old:  # the old SiteMask knows Active and Banned only: usable or not
            status = "Active" if status in USABLE else "Banned"
            if self.site_mask.get(site) == status:
                return
            self.site_mask[site] = status
        when = self.when()
        self.w.set_site_status(site.name, status, reason, when=when)
        self.w.log_site_mask(site.name, status, reason, when=when)

    # ---- scenarios -----------------------------------------------------------------------------------

    def _scenario_start(self, sc: Scenario) -> None:
        sc.active = True
        self.log.scenario_started(sc, self.now)
        name = sc.name
        if name == "black-hole-host":
            self.blackholes[sc.host] = sc
            lo, hi = sc.spec.params["fail_after"]
            for job in list(self.tracked.values()):  # what runs there when the node breaks fails too
                if job.host is sc.host and job.phase == "running":
                    self.after(self.u(lo, hi), self._job_completing, job, "Failed", "Application Finished With Errors",
                               "'boss.exe' Exited With Status 127")
        elif name == "pilot-abort":
            self.aborting[sc.ce] = sc
        elif name == "heartbeat-loss":
            self.cut.add(sc.site)
            quiet = [j.last for j in self.tracked.values() if j.site is sc.site and j.db in ("Running", "Completing")]
            if quiet:
                first = min(quiet) + self.dirac["stalled_time"]
                self.log.expect(sc, "StalledJobAgent:Stalled", first, jobs=len(quiet))
                self.log.expect(sc, "StalledJobAgent:Failed", first + self.dirac["failed_time"],
                                minor=f"Stalling for more than {int(self.dirac['failed_time'])} sec")
        elif name == "no-matching":
            self.nomatch.add(sc.site)
        elif name == "central-failure":
            self.central = sc
        elif name == "cvmfs-broken" and self.cvmfs is not None:
            self.cvmfs.break_(sc.site.name)
        elif name == "user-broken":
            self.broken[sc.owner] = sc
            self._users = [u for u in USERS if u[0] not in self.broken] or list(USERS)
            lo, hi = sc.spec.params["fail_after"]
            for job in list(self.tracked.values()):  # its jobs already running read the same broken input
                if job.owner == sc.owner and job.phase == "running":
                    self.after(self.u(lo, hi), self._job_completing, job, "Failed", APP_ERRORS, USER_BROKEN_APP)
        elif name == "site-software":
            self.software[sc.site] = sc
        elif name == "input-fetch":
            self.fetch_broken[sc.host or sc.site] = sc
            self.log.rule(sc, "JobWrapper (JobWrapperUtilities.rescheduleFailedJob): a job whose input cannot be "
                              "fetched is Rescheduled, not Failed; JobScheduling holds it 60/180/300/600 s after "
                              "each reschedule; Site reset to its JDL's; Failed 'Maximum of reschedulings reached' "
                              "at the 4th failure (MaxRescheduling 3)")
        job_efficiency = self.dirac["job_efficiency"]
        if name in ("black-hole-host", "central-failure", "heartbeat-loss", "input-fetch") and job_efficiency:
            self.log.rule(sc, "RSS JobEfficiency: (Done+Completed)/(Done+Completed+Failed) over 30 min; "
                              "< 0.9 Degraded, < 0.5 Banned, no decision under 10 jobs; Banned -> Probing -> Active")
        if name not in ("pilot-abort", "no-matching", "cvmfs-broken") and not job_efficiency:
            self.log.rule(sc, "RSS JobEfficiency: none (stock DIRAC 9.1 runs it on a job cache CacheFeederAgent "
                              "never feeds: it answers Unknown)")
        if name == "heartbeat-loss":
            self.log.rule(sc, f"StalledJobAgent: Running/Completing without heartbeat or update for "
                              f"{int(self.dirac['stalled_time'])} s -> Stalled; Stalled -> Failed when the "
                              f"pilot is not Running, else after {int(self.dirac['failed_time'])} s more")
        if name == "pilot-abort":
            self.log.rule(sc, "RSS PilotEfficiency per CE: (total-Aborted)/total of its pilots not Done/Aborted "
                              "plus those Done/Aborted in the last day; <= 90% Degraded, <= 50% Banned; "
                              "Banned -> Probing -> Active")
        if name in ("no-matching", "cvmfs-broken"):
            self.log.rule(sc, "none: no DIRAC mechanism reacts to this fault")
        if name in ("user-broken", "site-software") and job_efficiency:
            whose = "owners" if name == "user-broken" else "owner groups"
            self.log.rule(sc, "RSS JobEfficiency per site: (Done+Completed)/(Done+Completed+Failed) of the jobs whose "
                              "JobDB Site is the site, over 30 min; < 0.9 Degraded, < 0.5 Banned, no decision under "
                              f"10 jobs. It has no notion of {whose}: the whole site is degraded or banned, every "
                              "owner's jobs with it")
        if name == "user-broken":
            self.log.rule(sc, "Optimizers: a job whose input data cannot be resolved is Failed by the InputData "
                              "('Input data not available') or JobScheduling ('No possible site candidates') "
                              "optimizer, before running, with the Site its JDL names; nothing in DIRAC tells the "
                              "user or holds their submissions")

    def _scenario_end(self, sc: Scenario) -> None:
        sc.active = False
        self.log.scenario_ended(sc, self.now)
        name = sc.name
        if name == "black-hole-host":
            self.blackholes.pop(sc.host, None)
        elif name == "pilot-abort":
            self.aborting.pop(sc.ce, None)
        elif name == "heartbeat-loss":
            self.cut.discard(sc.site)
            self._reconnect(sc.site)
        elif name == "no-matching":
            self.nomatch.discard(sc.site)
        elif name == "central-failure":
            self.central = None
        elif name == "cvmfs-broken" and self.cvmfs is not None:
            self.cvmfs.repair(sc.site.name)
        elif name == "user-broken":
            self.broken.pop(sc.owner, None)
            self._users = [u for u in USERS if u[0] not in self.broken] or list(USERS)
        elif name == "site-software":
            self.software.pop(sc.site, None)
        elif name == "input-fetch":
            self.fetch_broken.pop(sc.host or sc.site, None)
        self._operator_reset(sc)

    def _reconnect(self, site: Site) -> None:
        """The network is back: lost final reports arrive (failover requests), pilot states resync."""
        for job in [j for j in self.tracked.values() if j.site is site and j.pending]:
            final, minor, app = job.pending
            self._report(job, final, minor, app)
            self._finished(job, final)
        for pilot in [p for p in self.pilots.values() if p.ce.site is site]:
            if pilot.pending:
                self._pilot_status(pilot, *pilot.pending)

    def _operator_reset(self, sc: Scenario) -> None:
        """After a fault is fixed the site admin has DIRAC's bans lifted and the efficiency windows forgotten
        (RSS alone would keep a CE Banned while a day of aborted pilots counts against it)."""
        for site in [s for s in self.topo.sites if sc.concerns(s.name, None)]:
            if self.site_status[site] != "Active":
                self.site_status[site] = "Active"
                self.site_finals[site].clear()
                if self.rss_enforce:
                    self._write_site_status(site, "Active", "Re-activated by the operator after the fault")
                self.log.note(self.now, "operator re-activated site", site=site.name)
        if sc.ce is not None and self.ce_status[sc.ce] != "Active":
            self.ce_status[sc.ce] = "Active"
            self.ce_finals[sc.ce].clear()
            self.log.note(self.now, "operator re-activated CE", ce=sc.ce.name)
