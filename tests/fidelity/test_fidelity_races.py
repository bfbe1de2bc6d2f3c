"""Deterministic interleavings of DIRAC's writes and the exporter's scrapes, one per documented rule and
one per bug found (B1-B6, all fixed; see docs/how-it-reads-dirac.md). Each test starts
its own ``bes-exporter`` server; the DIRAC databases are shared by the module, each test uses fresh jobs.

A *probe* scrape runs inside a DIRAC action, right after one of DIRAC's write methods returned (the
harness's JobDB subclass calls it): that is a scrape landing between two statements of one action."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fidelity_util import ExporterProcess, exported
from scenario import running, stall_and_fail

SITE, CE = "BES.UCAS.cn", "ce.ucas.ac.cn"


class Probe:
    """Scrapes ``exporter`` after the named DIRAC write methods, while armed."""

    def __init__(self) -> None:
        self.exporter: ExporterProcess | None = None
        self.armed: set[str] = set()
        self.hits: list[str] = []

    def __call__(self, where: str) -> None:
        if self.exporter is not None and where in self.armed:
            self.exporter.scrape()
            self.hits.append(where)


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe()


@pytest.fixture(scope="module")
def h(module_env, probe):
    return module_env.harness(probe=probe)


@pytest.fixture
def exporter(module_env, probe, request):
    ex = ExporterProcess(module_env.exporter_config(overlap_seconds=5, finished_retention_seconds=1),
                         module_env.folder, request.node.name).start()
    ex.scrape()  # the first collection: from here on lives are counted
    time.sleep(1.0)
    ex.scrape()
    probe.exporter, probe.armed = ex, set()
    yield ex
    probe.exporter = None
    ex.stop()


def counts(exporter: ExporterProcess) -> tuple[Counter, Counter]:
    """Finished and failed counters after two scrapes (a site's counters are first exported at zero)."""
    exporter.scrape()
    s = exporter.scrape()
    return (exported(s, "dirac_jobs_finished_total", "site", "status"),
            exported(s, "dirac_jobs_failed_total", "site", "reason"))


# ---- the documented semantics (tracker docstring) ----------------------------------------------------

def test_reschedule_starts_a_new_life_counted_again(h, exporter):
    job, pilot = running(h)
    h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
    exporter.scrape()
    h.reschedule(job)
    exporter.scrape()
    h.optimize(job)
    h.match(job, SITE, pilot, CE)
    h.report(job, "Running", "Application")
    h.report(job, "Done", "Execution Complete", app="Finished")
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Failed"): 1, (SITE, "Done"): 1})
    assert fail == Counter({(SITE, "application_error"): 1})


def test_heartbeat_after_seen_done_is_not_a_new_life(h, exporter):
    """Done, then the Watchdog's late beat (Status Running, LastUpdateTime unchanged), then StalledJobAgent
    fails the job: one life, counted Done - also after finished_retention_seconds, as resync keeps the
    flipped job's life while it is active."""
    job, pilot = running(h)
    h.report(job, "Done", "Execution Complete", app="Finished")
    exporter.scrape()
    h.heartbeat(job)
    assert h.row(job).Status == "Running"
    for _ in range(3):
        time.sleep(1.0)
        s = exporter.scrape()
    assert s.v("dirac_jobs", site=SITE, status="Running") >= 1
    h.pilot_status(pilot, "Done")
    stall_and_fail(h, job)
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Done"): 1}) and not fail


def test_same_second_lives_and_out_of_order_last_update_time(h, exporter):
    """Lives submitted and finished within one or two seconds (LastUpdateTime from the Python
    clock at submission, 1 s resolution) between two scrapes: all counted, once."""
    jobs = [running(h) for _ in range(4)]
    for i, (job, _) in enumerate(jobs):
        h.report(job, "Done" if i % 2 else "Failed", "Execution Complete" if i % 2 else "Exception During Execution")
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Done"): 2, (SITE, "Failed"): 2})
    assert fail == Counter({(SITE, "exception_during_execution"): 2})
    assert counts(exporter) == (fin, fail)  # re-read in the overlap window, not counted twice


# ---- bugs ----------------------------------------------------------------------------------------------

def test_b1_job_deleted_while_waiting_ends_a_life_that_never_ran(h, exporter):
    """B1, fixed in the tracker (f97f635): kill_delete_jobs sets Killed, then Deleted, in one call; the
    tracker ends that life as Killed. Since issue 18 a life counts at a site only if it ran there: this
    one (a rescheduled job's second life, waiting again) did not, although the row keeps the first
    life's StartExecTime; its first life, which ran and failed, stays counted once."""
    job, _ = running(h)
    h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
    exporter.scrape()
    h.reschedule(job)
    h.optimize(job)
    exporter.scrape()
    h.delete(job)
    row = h.row(job)
    assert row.Status == "Deleted" and row.StartExecTime is not None
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Failed"): 1})
    assert fail == Counter({(SITE, "application_error"): 1})


def test_b2_failure_reason_is_the_final_minor_status(h, exporter, probe):
    """B2, fixed in the tracker: a final row without its LoggingInfo record waits for the next collection."""
    job, _ = running(h)
    exporter.scrape()
    probe.armed = {"setJobsMajorStatus"}
    h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
    probe.armed = set()
    assert probe.hits, "the probe scraped between the two statements"
    _, fail = counts(exporter)
    assert fail == Counter({(SITE, "application_error"): 1})


def test_b3_stalled_job_is_counted_failed_not_killed(h, exporter, probe):
    """B3, fixed in the tracker: a stalled job seen Killed (unlogged) waits for StalledJobAgent's Failed."""
    job, pilot = running(h)
    time.sleep(1.1)
    assert h.mark_stalled(job)
    h.pilot_status(pilot, "Done")
    exporter.scrape()
    probe.armed = {"setJobAttributes"}  # right after the kill's Status and MinorStatus statements
    h.fail_stalled(job)
    probe.armed = set()
    assert h.row(job).Status == "Failed"
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Failed"): 1})
    assert fail == Counter({(SITE, "stalled_pilot_not_running"): 1})


def test_b4_failed_and_rescheduled_between_scrapes_is_counted(h, exporter):
    """B4, fixed in the tracker (f97f635, from LoggingInfo): the row shows only the new life."""
    job, _ = running(h)
    exporter.scrape()
    h.report(job, "Failed", "Application Finished With Errors", app="Exit code 1")
    h.reschedule(job)
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Failed"): 1})
    assert fail == Counter({(SITE, "application_error"): 1})


def test_b6_done_then_heartbeat_before_a_scrape_is_counted_done(h, exporter):
    """B6, fixed in the tracker: a life is counted with its first final LoggingInfo record."""
    job, pilot = running(h)
    exporter.scrape()
    h.report(job, "Done", "Execution Complete", app="Finished")
    h.heartbeat(job)
    exporter.scrape()
    h.pilot_status(pilot, "Done")
    stall_and_fail(h, job)
    fin, fail = counts(exporter)
    assert fin == Counter({(SITE, "Done"): 1})
    assert not fail
