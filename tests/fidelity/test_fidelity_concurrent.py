"""DIRAC's own code, in four threads, writes ~120 whole job lives and their pilots while ``bes-exporter``
(a real server) is scraped every 50-250 ms; scrapes and DIRAC actions take turns (a scrape never lands inside one
action: the statement-level interleavings are enumerated in test_fidelity_races.py).

Ground truth: the harness's record of every action's outcome, cross-checked against JobLoggingDB. A life
counts at its site only if it ran there (its row was Running or Completing); the lives that failed before
running (JobSanity on a missing sandbox, the maximum of reschedulings) count per owner apart."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from dirac_harness import ACTIVE, FINAL, PROBE_GROUP, DiracHarness
from fidelity_util import (
    ExporterProcess,
    Gate,
    History,
    Scheduler,
    Scrape,
    ScrapeLoop,
    diff,
    expected_finished,
    expected_owners,
    exported,
)
from scenario import Lives, mixed

from bes_exporter.labels import ce_label, site_label
from bes_exporter.scrapers import SCRAPERS

N_JOBS = 110
SEED = 20261125
HAS_PILOTS = any(s.name == "pilots" for s in SCRAPERS)
NO_PILOTS = "the `pilots` scraper is not in bes_exporter.scrapers yet (pilot counters untested)"


def active_by_site(env, probe: bool) -> Counter:
    rows = env.query(
        f"SELECT Site, Status, COUNT(*) FROM `{env.dbs.jobdb}`.Jobs WHERE Status IN ({', '.join(['%s'] * len(ACTIVE))})"
        f" AND JobGroup {'=' if probe else '<>'} %s GROUP BY Site, Status", (*ACTIVE, PROBE_GROUP))
    out: Counter = Counter()
    for site, status, n in rows:
        out[(site_label(site), status)] += n
    return out


def pilots_by_site(env) -> Counter:
    rows = env.query(f"SELECT GridSite, DestinationSite, Status, COUNT(*) FROM `{env.dbs.pilotdb}`.PilotAgents"
                     " WHERE Status IN ('Submitted', 'Waiting', 'Running', 'Unknown')"
                     " GROUP BY GridSite, DestinationSite, Status")
    out: Counter = Counter()
    for site, ce, status, n in rows:
        out[(site_label(site), ce_label(ce), status)] += n
    return out


@dataclass
class Run:
    env: object
    h: DiracHarness
    lives: Lives
    history: History
    started: float
    gauge_mismatches: list[str] = field(default_factory=list)
    checkpoints: int = 0
    seconds: float = 0.0


@pytest.fixture(scope="module")
def run(module_env):
    env = module_env
    t0 = time.monotonic()
    h = env.harness()
    exporter = ExporterProcess(env.exporter_config(), env.folder).start()
    history = History()
    rng = random.Random(SEED)
    try:
        first = exporter.scrape()
        started = time.time()
        history.add(Scrape(started, started, first, "first"))
        result = Run(env, h, Lives(h, history, rng), history, started)

        def checkpoint(where: str) -> None:
            """Quiescent point (the gate is closed): gauges must equal a direct GROUP BY."""
            t = time.time()
            s = exporter.scrape()
            history.add(Scrape(t, time.time(), s, where))
            result.checkpoints += 1
            for name, probe in (("dirac_jobs", False), ("dirac_probe_jobs", True)):
                want, got = active_by_site(env, probe), exported(s, name, "site", "status")
                if want != got:
                    result.gauge_mismatches.append(f"{where} {name}:\n{diff(want, got)}")
            if HAS_PILOTS:
                want = pilots_by_site(env)
                got = Counter()
                for (n, labels), value in s.items():
                    if n == "dirac_pilots" and value:
                        d = dict(labels)
                        got[(d["site"], d["ce"], d["status"])] += int(value)
                if want != got:
                    result.gauge_mismatches.append(f"{where} dirac_pilots:\n{diff(want, got)}")

        gate = Gate()
        loop = ScrapeLoop(exporter, history, gate, random.Random(SEED + 1))
        scheduler = Scheduler(gate, rng, checkpoint, checkpoint_every=200, workers=4)
        mixed(result.lives, scheduler, N_JOBS)
        loop.start()
        try:
            scheduler.run(max_seconds=120)
        finally:
            loop.stop()
        time.sleep(1.1)  # one more resync period, then the final quiescent scrapes
        checkpoint("end-1")  # a series new in it is exported at 0 once: the last one shows its value
        checkpoint("end")
        result.seconds = time.monotonic() - t0
        yield result
    finally:
        exporter.stop()


def _final(run: Run):
    return run.history.scrapes[-1].samples


def _lives(run: Run):
    return run.h.record.lives(after=run.started)


def test_scenario_covers_every_kind_and_stays_bounded(run):
    assert set(run.lives.kinds.values()) >= {"done", "stalled_pilot_gone", "resched_slow", "deleted_waiting",
                                             "max_resched", "done_late_heartbeat", "cleaned", "optimizer_failed"}
    # Scraped while DIRAC wrote (how often depends on the machine's load; 50 on an idle 2-core one).
    loop_scrapes = sum(s.where.startswith("loop") for s in run.history.scrapes)
    assert loop_scrapes >= 10, f"the exporter was scraped while DIRAC wrote ({loop_scrapes} times)"
    assert run.checkpoints >= 3
    assert run.seconds < 110, f"the concurrent scenario took {run.seconds:.0f} s"


def test_finished_and_failed_counters_equal_ground_truth(run):
    fin, fail = expected_finished(_lives(run))
    s = _final(run)
    got_fin = exported(s, "dirac_jobs_finished_total", "site", "status")
    got_fail = exported(s, "dirac_jobs_failed_total", "site", "reason")
    assert (got_fin, got_fail) == (fin, fail), f"finished:\n{diff(fin, got_fin)}\nfailed:\n{diff(fail, got_fail)}"


def test_scenario_ends_lives_that_never_ran(run):
    """Kills while waiting, the optimizer's and the reschedule limit's failures: lives the site counters
    leave out (test_finished_and_failed_counters_equal_ground_truth)."""
    kinds = {run.lives.kinds[life.job] for life in _lives(run) if not life.ran and life.job in run.lives.kinds}
    assert kinds >= {"killed_waiting", "deleted_waiting", "optimizer_failed", "max_resched"}, kinds


def test_owner_counters_equal_ground_truth(run):
    fin, fail, before = expected_owners(_lives(run))
    s = _final(run)
    got_fin = exported(s, "dirac_owner_jobs_finished_total", "site", "owner", "owner_group", "status")
    got_fail = exported(s, "dirac_owner_jobs_failed_total", "owner", "owner_group", "reason")
    got_before = exported(s, "dirac_jobs_failed_before_running_total", "owner", "owner_group", "stage", "reason")
    assert got_fin == fin, diff(fin, got_fin)
    assert got_fail == fail, diff(fail, got_fail)
    assert got_before == before, diff(before, got_before)
    assert before[("besuser", "bes_user", "JobSanity", "sandbox_not_available")] >= 1
    # summed over owners: the site counters
    per_site = exported(s, "dirac_jobs_finished_total", "site", "status")
    summed = Counter()
    for (site, _owner, _group, status), n in got_fin.items():
        summed[(site, status)] += n
    assert summed == per_site, diff(per_site, summed)


def test_active_gauges_equal_group_by_at_quiescent_points(run):
    assert not run.gauge_mismatches, "\n".join(run.gauge_mismatches[:5])


def test_no_counter_ever_decreases(run):
    assert not run.history.decreases()


def test_final_twice_follows_documented_semantics(run):
    """Reschedule: the old life stays counted and the new one is counted once more; a heartbeat that
    flips Done back to Running (then Stalled -> Failed) does not start a new life."""
    lives = _lives(run)
    per_job: dict[int, list[str]] = {}
    for life in lives:
        per_job.setdefault(life.job, []).append(life.status)
    for job, kind in run.lives.kinds.items():
        if kind in ("done_late_heartbeat", "done_heartbeat_quick"):
            assert per_job[job] == ["Done"], (job, per_job[job])
            row = run.h.row(job)
            assert row.Status == "Failed" and row.RescheduleCounter == 0  # the same life, final twice
        if kind == "resched_slow":
            assert per_job[job] == ["Failed", "Done"], (job, per_job[job])
        if kind == "max_resched":
            assert per_job[job] == ["Failed"] and run.h.row(job).MinorStatus == "Maximum of reschedulings reached"
    rows = {job: run.h.row(job) for job, kind in run.lives.kinds.items()
            if kind in ("done_late_heartbeat", "resched_slow")}
    fin, _ = expected_finished([life for life in lives if life.job in rows])
    # These jobs' lives are counted exactly (no second count for the flipped Done jobs).
    got = exported(_final(run), "dirac_jobs_finished_total", "site", "status")
    for key, n in fin.items():
        assert got[key] >= n


@pytest.mark.skipif(not HAS_PILOTS, reason=NO_PILOTS)
def test_pilot_counters_equal_ground_truth(run):
    want: Counter = Counter()
    for (site, ce, status), n in run.h.record.pilot_finals(after=run.started).items():
        want[(site_label(site), ce_label(ce), status)] += n
    got: Counter = Counter()
    for (n, labels), value in _final(run).items():
        if n == "dirac_pilots_finished_total" and value:
            d = dict(labels)
            got[(d["site"], d["ce"], d["status"])] += int(value)
    assert got == want, diff(want, got)


def test_record_agrees_with_job_logging_db(run):
    """Ground truth cross-check: every life the record saw end in Done/Completed/Failed through a logged
    action has that status as the first final LoggingInfo record of the life (kills, deletions and
    'Maximum of reschedulings reached' write no LoggingInfo); a life ran (its row was Running or Completing)
    exactly when its LoggingInfo segment holds a Running or Completing record."""
    logged: dict[tuple[int, int], str] = {}
    logged_ran: set[tuple[int, int]] = set()
    for job in run.lives.kinds:
        rows = run.env.query(f"SELECT Status, MinorStatus FROM `{run.env.dbs.logdb}`.LoggingInfo WHERE JobID=%s"
                             " ORDER BY StatusTimeOrder, SeqNum", (job,))
        rc = 0
        for status, minor in rows:
            if minor == "Job Rescheduled":
                rc += 1
            elif status in FINAL and (job, rc) not in logged:
                logged[(job, rc)] = status
            elif status in ("Running", "Completing"):
                logged_ran.add((job, rc))
    checked = ran_checked = 0
    for life in _lives(run):
        if run.lives.kinds[life.job] == "cleaned":
            continue  # LoggingInfo removed with the job (phase 2)
        assert ((life.job, life.rc) in logged_ran) == life.ran, life
        ran_checked += 1
        if life.status == "Killed" or life.minor == "Maximum of reschedulings reached":
            continue
        assert logged.get((life.job, life.rc)) == life.status, life
        checked += 1
    assert checked > 100 and ran_checked > checked
