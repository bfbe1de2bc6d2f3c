"""Whole job and pilot lives as programs of DIRAC actions (see ``dirac_harness``), interleaved by the
``Scheduler``. Each ``yield`` ends one action; what it yields is what the program waits for next."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable

from dirac_harness import MISSING_SANDBOX, PROBE_GROUP, SITES, DiracHarness
from fidelity_util import After, History, Program, Scheduler, Scraped

# Job life kinds and their weights in the mixed scenario.
KINDS = {
    "done": 30, "done_bulk": 8, "app_failed": 10, "failed_other": 5, "completed_then_done": 4,
    "stalled_pilot_gone": 5, "stalled_pilot_running": 4, "done_late_heartbeat": 5, "resched_slow": 5,
    "resched_quick": 3, "matched_stuck": 3, "max_resched": 2, "killed_running": 4, "killed_waiting": 2,
    "deleted_waiting": 3, "cleaned": 4, "left_active": 3, "done_heartbeat_quick": 3, "optimizer_failed": 4,
}


def _utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Lives:
    """Builds job and pilot programs over one harness; ``kinds`` maps JobID -> kind for the tests."""

    def __init__(self, h: DiracHarness, history: History | None, rng: random.Random):
        self.h, self.history, self.rng = h, history, rng
        self.kinds: dict[int, str] = {}

    def seen(self) -> Scraped | After:
        """Wait until the exporter has scraped after this point (or 0.3 s without a scrape loop)."""
        if self.history is None:
            return After(time.time() + 0.3)
        return Scraped(self.history, time.time())

    # ---- building blocks ----

    def _start(self, job: int, site: str, ce: str) -> Program:
        """Optimizers, a pilot, the match, the JobWrapper's first reports and a heartbeat."""
        h = self.h
        h.optimize(job)
        yield
        pilot = h.submit_pilots(site, ce, "long", 1)[0]
        yield
        h.pilot_status(pilot, "Waiting")
        yield
        h.match(job, site, pilot, ce)
        yield
        h.report(job, minor="Job Received by Agent", source="JobAgent")
        yield
        h.report(job, "Running", "Job Initialization", source="JobWrapper")
        yield
        h.heartbeat(job, load=self.rng.uniform(0.5, 4))
        yield
        h.report(job, minor="Application", app="Running")
        yield
        return pilot

    def _stall_and_fail(self, job: int, pilot: str, pilot_gone: bool) -> Program:
        """StalledJobAgent: Stalled once the heartbeat is old enough, then Failed."""
        h = self.h
        yield After(time.time() + 1.1)
        while not h.mark_stalled(job):
            yield After(time.time() + 0.5)
        if pilot_gone:
            h.pilot_status(pilot, "Done")
            yield
        else:
            yield After(time.time() + 2.2)  # no sign of life for more than failedTime
        h.fail_stalled(job)
        yield
        if not pilot_gone:
            h.pilot_status(pilot, "Failed")
            yield

    # ---- job programs ----

    def job(self, kind: str, site: str | None = None, probe: bool = False) -> Program:
        h = self.h
        site = site or self.rng.choice(sorted(SITES))
        ce = SITES[site]
        dest: str | list[str] = site
        if kind == "done" and self.rng.random() < 0.15:
            dest = sorted({site, self.rng.choice(sorted(set(SITES) - {site}))})  # Site 'Multiple' until matched
        job = h.submit(dest, group=PROBE_GROUP if probe else "bes_analysis",
                       sandbox=MISSING_SANDBOX if kind == "optimizer_failed" else None)
        self.kinds[job] = kind
        yield
        if kind == "optimizer_failed":
            h.optimize(job)  # JobSanity: 'Sandbox does not exist ...' -> Failed, 'JobSanity optimizer'
            yield
            return
        if kind in ("killed_waiting", "deleted_waiting", "left_active") and (kind != "left_active"
                                                                            or self.rng.random() < 0.5):
            h.optimize(job)
            yield
            if kind == "killed_waiting":
                h.kill(job)
            elif kind == "deleted_waiting":
                h.delete(job)
            yield
            return
        if kind in ("matched_stuck", "max_resched"):
            for _ in range(1 if kind == "matched_stuck" else 3):
                h.optimize(job)
                yield
                pilot = h.submit_pilots(site, ce, "long", 1)[0]
                h.match(job, site, pilot, ce)
                yield After(time.time() + 0.3)
                h.pilot_status(pilot, "Aborted")
                h.reschedule(job, source="StalledJobAgent")  # _kickStuckJobs: Matched too long
                yield
            if kind == "max_resched":
                return  # the third reschedule failed the job: 'Maximum of reschedulings reached'
        pilot = yield from self._start(job, site, ce)
        if kind == "left_active":
            return
        if kind == "killed_running":
            h.kill(job)
            yield
            h.pilot_status(pilot, "Done")
            yield
            return
        if kind in ("stalled_pilot_gone", "stalled_pilot_running"):
            yield from self._stall_and_fail(job, pilot, kind == "stalled_pilot_gone")
            return
        if kind in ("done", "cleaned", "done_late_heartbeat", "matched_stuck", "resched_slow", "resched_quick",
                    "app_failed", "failed_other", "completed_then_done", "done_heartbeat_quick"):
            h.heartbeat(job)
            yield
            h.report(job, "Completing", "Uploading Output Sandbox", app="Running")
            yield
        if kind == "done_bulk":
            # JobReport: a late update with an old time stamp (only LoggingInfo and HeartBeatTime move),
            # then the last updates in one bulk call.
            old = _utc() - dt.timedelta(seconds=30)
            h.report_bulk(job, [(old, {"ApplicationStatus": "late report", "Source": "JobWrapper"})])
            yield
            t = _utc()
            done = {"Status": "Done", "MinorStatus": "Execution Complete", "ApplicationStatus": "Finished",
                    "Source": "JobWrapper"}
            h.report_bulk(job, [(t, {"Status": "Completing", "MinorStatus": "Uploading Output Sandbox",
                                     "Source": "JobWrapper"}),
                                (t + dt.timedelta(milliseconds=200), done)])
            yield
        elif kind == "completed_then_done":
            h.report(job, "Completed", "Pending Requests", app="Finished")
            yield self.seen()
            h.report(job, "Done", "Requests done", source="RequestExecutingAgent")
            yield
        elif kind in ("app_failed", "resched_slow", "resched_quick"):
            if kind == "resched_quick":  # failed and rescheduled within one action turn: never scraped Failed
                h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
                h.reschedule(job)
            else:
                h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
                yield self.seen()
                if kind == "resched_slow":
                    h.reschedule(job)
            if kind != "app_failed":
                yield
                h.pilot_status(pilot, "Done")
                yield
                pilot = yield from self._start(job, site, ce)
                h.report(job, "Done", "Execution Complete", app="Finished")
            yield
        elif kind == "failed_other":
            h.report(job, "Failed", self.rng.choice(["Job has reached the CPU limit of the queue",
                                                     "Exception During Execution"]), app="Unknown")
            yield
        elif kind == "done_heartbeat_quick":
            # The Watchdog's last beat right after the final report, before any scrape: Done -> Running.
            h.report(job, "Done", "Execution Complete", app="Finished")
            h.heartbeat(job)
            yield
            yield from self._stall_and_fail(job, pilot, pilot_gone=True)
            return
        else:
            h.report(job, "Done", "Execution Complete", app="Finished")
            yield
        if kind == "done_late_heartbeat":
            yield self.seen()
            h.heartbeat(job)  # a beat after the final report, once the exporter saw Done: Done -> Running
            yield
            yield from self._stall_and_fail(job, pilot, pilot_gone=True)
            return
        h.pilot_status(pilot, "Done")
        yield
        if kind == "cleaned":
            yield self.seen()
            h.delete(job)  # JobCleaningAgent phase 1
            yield self.seen()
            h.remove(job)  # phase 2
            yield

    # ---- pilot-only programs ----

    def pilots(self, site: str) -> Program:
        """SiteDirector: a few pilots that never get a job."""
        h = self.h
        refs = h.submit_pilots(site, SITES[site], "long", 3)
        yield
        h.pilot_status(refs[0], "Aborted")
        yield
        h.pilot_status(refs[1], "Waiting")
        yield
        h.pilot_status(refs[1], "Unknown")
        yield
        h.pilot_status(refs[1], "Aborted")
        yield
        h.pilot_status(refs[2], "Waiting")
        yield
        h.pilot_status(refs[2], "Running")
        yield
        h.pilot_status(refs[2], "Failed")
        yield


def running(h: DiracHarness, site: str = "BES.UCAS.cn", ce: str = "ce.ucas.ac.cn") -> tuple[int, str]:
    """A job of ours, Running at ``site`` with its pilot Running."""
    job = h.submit(site)
    h.optimize(job)
    pilot = h.submit_pilots(site, ce, "long", 1)[0]
    h.match(job, site, pilot, ce)
    h.report(job, "Running", "Application", app="Running")
    h.heartbeat(job)
    return job, pilot


def stall_and_fail(h: DiracHarness, job: int, max_seconds: float = 10.0) -> None:
    """StalledJobAgent on one job, synchronously: Stalled once its last update is old enough, then Failed."""
    deadline = time.monotonic() + max_seconds
    time.sleep(1.1)
    while not h.mark_stalled(job):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job} never stalled")
        time.sleep(0.3)
    h.fail_stalled(job)


def mixed(lives: Lives, scheduler: Scheduler, n_jobs: int, n_probes: int = 8,
          pick: Callable[[random.Random], str] | None = None) -> None:
    """Add ``n_jobs`` job programs of every kind (weights ``KINDS``), probe jobs and pilot programs."""
    kinds = list(KINDS)
    weights = [KINDS[k] for k in kinds]
    plan = kinds + lives.rng.choices(kinds, weights, k=max(0, n_jobs - len(kinds)))
    for kind in plan:
        scheduler.add(lives.job(kind))
    for i in range(n_probes):
        scheduler.add(lives.job("done" if i % 2 else "app_failed", probe=True))
    for site in SITES:
        scheduler.add(lives.pilots(site))
