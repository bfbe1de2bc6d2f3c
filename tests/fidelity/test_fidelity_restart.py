"""Exporter restarts while DIRAC's code keeps writing. A new process starts its counters at zero (a
Prometheus counter reset, which ``increase()`` handles); what it counts is every life that ends after
its first collection. Lives that end while no exporter runs are not counted by anyone: that is the
loss counter semantics allow, and nothing more is lost - or counted twice."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from dirac_harness import MISSING_SANDBOX
from fidelity_util import ExporterProcess, History, Scrape, exported
from scenario import running, stall_and_fail

SITE, CE = "BES.IHEP-PBS.cn", "ce01.ihep.ac.cn"


def start(env, name: str, history: History | None = None) -> ExporterProcess:
    ex = ExporterProcess(env.exporter_config(overlap_seconds=5), env.folder, name).start()
    scrape(ex, history, "first")
    return ex


def scrape(ex: ExporterProcess, history: History | None = None, where: str = "") -> Counter:
    t = time.time()
    s = ex.scrape()
    if history is not None:
        history.add(Scrape(t, time.time(), s, where))
    return exported(s, "dirac_jobs_finished_total", "site", "status")


def finish(h, job: int, status: str = "Done") -> None:
    h.report(job, status, "Execution Complete" if status == "Done" else "Application Finished With Errors")


def test_restart_counts_exactly_the_lives_ended_while_it_ran(env):
    h = env.harness()
    first, second = History(), History()
    ex1 = start(env, "before", first)
    try:
        across = [running(h, SITE, CE) for _ in range(3)]  # active across the restart
        a = [running(h, SITE, CE) for _ in range(3)]
        scrape(ex1, first)
        finish(h, a[0][0])
        finish(h, a[1][0], "Failed")
        scrape(ex1, first)
        finish(h, a[2][0])
        scrape(ex1, first)
        assert scrape(ex1, first, "end") == Counter({(SITE, "Done"): 2, (SITE, "Failed"): 1})
    finally:
        ex1.stop()
    # down: one life of an active job and one whole new life end; nobody counts them
    finish(h, across[0][0])
    job, _ = running(h, SITE, CE)
    finish(h, job)
    ex2 = start(env, "after", second)
    try:
        scrape(ex2, second)
        assert not scrape(ex2, second), "a new process starts from zero and never counts older lives"
        finish(h, across[1][0], "Failed")
        scrape(ex2, second)
        finish(h, across[2][0])
        c = [running(h, SITE, CE) for _ in range(2)]
        for job, _ in c:
            finish(h, job)
        h.report(across[0][0], "Done", "Execution Complete")  # the same life, final again: not counted
        scrape(ex2, second)
        assert scrape(ex2, second, "end") == Counter({(SITE, "Done"): 3, (SITE, "Failed"): 1})
    finally:
        ex2.stop()
    assert not first.decreases() and not second.decreases()


def test_job_submitted_and_finished_in_the_first_collection_second_is_counted(env):
    """B5, fixed in the tracker (cf085d2): the first collection remembers the highest JobID, so a job
    submitted in the very second of the first collection and finished before the next one is new. The
    short life: JobSanity fails the job (its input sandbox does not exist) before it runs."""
    h = env.harness()
    before_running = ("dirac_jobs_failed_before_running_total",
                      {"owner": "besuser", "owner_group": "bes_user", "stage": "JobSanity",
                       "reason": "sandbox_not_available"})
    for _ in range(3):  # bounded: retry until all of it happens within one second
        time.sleep(1.0 - time.time() % 1.0 + 0.02)
        ex = start(env, f"b5-{time.time():.0f}")
        try:
            t0 = time.time()
            job = h.submit(SITE, sandbox=MISSING_SANDBOX)
            h.optimize(job)  # a whole (short) life: Received -> Checking -> Failed
            same_second = int(time.time()) == int(t0)
            scrape(ex)  # the owner's series appear at 0 first
            s = ex.scrape()
        finally:
            ex.stop()
        assert h.row(job).MinorStatus == "JobSanity optimizer"
        assert s.v(before_running[0], **before_running[1]) == 1
        assert not exported(s, "dirac_jobs_finished_total", "site", "status"), "it never ran at the site"
        if same_second:
            return
    pytest.skip("could not fit a whole life into the first collection's second (machine too loaded)")


def test_b7_flipped_done_job_is_not_counted_again_after_restart(env):
    """B7, fixed in the tracker: a final life is settled against its first final LoggingInfo record,
    and one older than the process is not counted (LoggingInfo.StatusTime has 1 s resolution: a life
    that ended in the second the exporter started counts as ended after it, hence the pause)."""
    h = env.harness()
    ex1 = start(env, "b7-before")
    try:
        job, pilot = running(h, SITE, CE)
        scrape(ex1)
        finish(h, job)
        scrape(ex1)
        h.heartbeat(job)  # Done -> Running, LastUpdateTime unchanged
        scrape(ex1)
        assert scrape(ex1) == Counter({(SITE, "Done"): 1})
    finally:
        ex1.stop()
    time.sleep(1.1)
    ex2 = start(env, "b7-after")
    try:
        scrape(ex2)
        h.pilot_status(pilot, "Done")
        stall_and_fail(h, job)
        scrape(ex2)
        assert not scrape(ex2), "the life ended (Done) before this process started"
    finally:
        ex2.stop()
