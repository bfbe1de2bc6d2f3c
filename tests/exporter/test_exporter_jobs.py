"""The JobDB scrapers on DIRAC's real schemas (both generations): exact values after scripted
transitions written the way DIRAC writes them."""

from __future__ import annotations

import datetime as dt
import logging

from metrics_util import Exporter

from bes_exporter.tracker import Finished

IHEP, UCAS, JINR = "BES.IHEP-PBS.cn", "BES.UCAS.cn", "BES.JINR.ru"


def tracker_events(exp: Exporter) -> list[Finished]:
    """One collection of the exporter's job tracker on its own connection: the lives it ended."""
    c = exp.collector
    return c.shared.tracker.update(c.db, c.db.now()).finished


def test_active_jobs_by_site_and_status_probe_jobs_apart(dirac):
    w = dirac.writer
    waiting = [w.submit() for _ in range(3)]
    for j in waiting:
        w.optimize(j)
    running = w.submit()
    w.optimize(running)
    w.match(running, IHEP)
    w.set_status(running, "Running", "Application", "Running")
    probe = w.submit(job_group="bes_probe")
    w.optimize(probe)
    w.match(probe, UCAS)
    s = Exporter(dirac.config()).scrape()
    assert s.v("dirac_up") == 1
    assert s.v("dirac_jobs", site="ANY", status="Waiting") == 3
    assert s.v("dirac_jobs", site=IHEP, status="Running") == 1
    assert s.v("dirac_jobs", site=IHEP, status="Waiting") == 0
    assert s.v("dirac_jobs", site=UCAS, status="Matched") == 0  # the probe job is not a site statistic
    assert s.v("dirac_probe_jobs", site=UCAS, status="Matched") == 1
    for name in ("jobs", "finished", "wait", "heartbeat", "site_status"):
        assert s.v("dirac_exporter_collector_success", collector=name) == 1, name


def test_finished_counted_once_per_life_same_second_and_reasons(dirac):
    w = dirac.writer
    for site in (IHEP, UCAS):
        w.set_site_status(site, "Active")  # known sites: counters exist at zero from the first scrape
    exp = Exporter(dirac.config())
    before = [w.submit() for _ in range(2)]
    w.run_to(before[0], IHEP, "Done")  # final before the exporter's first look: never counted
    exp.scrape()
    jobs = [w.submit() for _ in range(7)]
    second = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    # all in the same second, as DIRAC's Python clock writes them
    w.run_to(jobs[0], IHEP, "Done", when=second)
    w.run_to(jobs[1], IHEP, "Done", when=second)
    w.run_to(jobs[2], IHEP, "Failed", "Application Finished With Errors", when=second)
    w.run_to(jobs[3], IHEP, "Failed", "Stalling for more than 4500 sec", when=second)
    w.run_to(jobs[4], UCAS, "Failed", "something nobody listed 42", when=second)
    w.run_to(before[1], UCAS, "Done")
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 2
    assert s.v("dirac_jobs_finished_total", site=UCAS, status="Done") == 1
    assert s.v("dirac_jobs_failed_total", site=IHEP, reason="application_error") == 1
    assert s.v("dirac_jobs_failed_total", site=IHEP, reason="stalling") == 1
    assert s.v("dirac_jobs_failed_total", site=UCAS, reason="Other") == 1
    # re-reading the overlap window, a Minor-only update of a Done job and a second scrape change nothing
    w.set_status(jobs[0], minor="Requests done")
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
    # a heartbeat after Done flips it to Running without moving LastUpdateTime; the next Done is the same life
    w.heartbeat(jobs[1])
    w.set_status(jobs[1], "Done", "Execution Complete")
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
    # a reschedule starts a new life, which is counted again when it ends
    w.reschedule(jobs[2])
    exp.scrape()
    w.run_to(jobs[2], IHEP, "Done")
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 3
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 2
    # killed while it runs at a site no scrape has seen yet: its series appear at zero, then count
    w.optimize(jobs[5])
    w.match(jobs[5], JINR)
    w.set_status(jobs[5], "Running", "Application", "Running")
    w.kill(jobs[5])
    w.kill(jobs[6])  # killed before it ran: no site's, never counted
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=JINR, status="Killed") == 0
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=JINR, status="Killed") == 1
    w.delete(jobs[5])
    w.delete(jobs[6])
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=JINR, status="Killed") == 1
    assert {lab["site"] for lab in s.series("dirac_jobs_finished_total")} == {IHEP, UCAS, JINR}


def test_zero_initialised_for_known_sites(dirac):
    w = dirac.writer
    j = w.submit()
    w.optimize(j)
    w.match(j, UCAS)
    w.set_site_status(IHEP, "Active")
    grouped = w.submit()  # JobScheduling's placeholder for input data at one domain: not a site
    w.optimize(grouped)
    w.set_attributes(grouped, Site="Group.ihep.ac.cn")
    s = Exporter(dirac.config()).scrape()
    assert s.v("dirac_jobs", site="Group.ihep.ac.cn", status="Waiting") == 1
    for site in (IHEP, UCAS):
        for status in ("Done", "Completed", "Failed", "Killed"):
            assert s.v("dirac_jobs_finished_total", site=site, status=status) == 0
        assert s.v("dirac_jobs_failed_total", site=site, reason="Other") == 0
    assert s.v("dirac_site_status", site=IHEP, status="Active") == 1
    assert s.v("dirac_site_status", site=IHEP, status="Banned") == 0
    for placeholder in ("ANY", "Group.ihep.ac.cn"):
        assert ("dirac_jobs_finished_total", frozenset({("site", placeholder), ("status", "Done")})) not in s


def test_wait_histogram_and_heartbeat_age(dirac):
    w = dirac.writer
    exp = Exporter(dirac.config())
    exp.scrape()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    j = w.submit(when=now - dt.timedelta(seconds=6000))
    w.optimize(j)
    w.match(j, IHEP)
    w.set_status(j, "Running", "Application", "Running", when=now - dt.timedelta(seconds=5000))  # waited 1000 s
    w.heartbeat(j, when=now - dt.timedelta(seconds=4000))  # the later of heartbeat and update: 4000 s ago
    s = exp.scrape()
    assert s.v("dirac_job_wait_seconds_count", site=IHEP) == 1
    assert s.v("dirac_job_wait_seconds_bucket", site=IHEP, le="900.0") == 0
    assert s.v("dirac_job_wait_seconds_bucket", site=IHEP, le="1800.0") == 1
    assert 3990 < s.v("dirac_running_jobs_heartbeat_age_seconds_gsum", site=IHEP) < 4100
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="3600") == 0
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="4500") == 1
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_gcount", site=IHEP) == 1
    # bucket bounds are configurable (e.g. a shorter Watchdog period, or a time-accelerated demo)
    s = Exporter(dirac.config(heartbeat={"buckets": [60, 3999, 4001]})).scrape()
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="3999") == 0
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="+Inf") == 1


def test_start_counts_however_far_the_worker_node_clock_lags(dirac):
    """StartExecTime (and the LastUpdateTime of the report) come from the worker node: a start written ten minutes
    in the past, far beyond the overlap, counts for a job followed unstarted, whether the row is seen through its
    LastUpdateTime or only by the sweep of running jobs; a start before submission counts as no wait."""
    w = dirac.writer
    exp = Exporter(dirac.config())
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    waiting = w.submit(when=now - dt.timedelta(seconds=1000))  # already waiting at the exporter's first look
    w.optimize(waiting)
    exp.scrape()
    late_lut, late_start, early = w.submit(), w.submit(when=now - dt.timedelta(seconds=900)), w.submit()
    for j in (late_lut, late_start, early):
        w.optimize(j)
        w.match(j, IHEP)
    exp.scrape()
    lag = now - dt.timedelta(seconds=600)
    w.match(waiting, UCAS)
    w.set_status(waiting, "Running", "Application", "Running", when=lag)  # row and LUT ten minutes old
    w.set_status(late_lut, "Running", "Application", "Running", when=lag)
    w.set_status(late_start, "Running", "Application", "Running", when=lag)
    w.set_attributes(late_start, ApplicationStatus="Running")  # the LUT moves to now, StartExecTime stays
    w.set_status(early, "Running", "Application", "Running", when=now - dt.timedelta(seconds=3600))
    s = exp.scrape()
    assert s.v("dirac_job_wait_seconds_count", site=UCAS) == 1
    assert 390 <= s.v("dirac_job_wait_seconds_sum", site=UCAS) <= 410
    assert s.v("dirac_job_wait_seconds_count", site=IHEP) == 3
    assert s.v("dirac_job_wait_seconds_bucket", site=IHEP, le="60.0") == 2  # late_lut, early: no wait
    assert 290 <= s.v("dirac_job_wait_seconds_sum", site=IHEP) <= 310  # late_start waited 300 s
    assert exp.scrape().v("dirac_job_wait_seconds_count", site=IHEP) == 3  # each start once


HOSTILE = ['BES"IHEP', "BES.IHEP\nfake 1", "", "-x" * 50, "BÉS.IHEP.cn", "a{b}c", "../../etc"]


def test_label_values_stay_bounded_under_hostile_rows(dirac):
    w = dirac.writer
    exp = Exporter(dirac.config())
    exp.scrape()
    for i, site in enumerate(HOSTILE):
        j = w.submit()
        w.run_to(j, site[:100], "Failed", f"Weird minor {i} \"quoted\"\nline two")
    exp.scrape()
    s = exp.scrape()
    sites = {labels["site"] for labels in s.series("dirac_jobs_finished_total")}
    assert sites == {"invalid"}, sites
    assert s.v("dirac_jobs_finished_total", site="invalid", status="Failed") == len(HOSTILE)
    reasons = {labels["reason"] for labels in s.series("dirac_jobs_failed_total")}
    from bes_exporter.labels import FAIL_REASONS

    assert reasons <= set(FAIL_REASONS)
    assert s.v("dirac_jobs_failed_total", site="invalid", reason="Other") == len(HOSTILE)


def test_active_job_deleted_between_scrapes_ends_a_killed_life_that_never_ran(dirac):
    """DIRAC deletes an active job by killing it first (StatusUtils.kill_delete_jobs): the tracker ends the
    life as Killed. Only jobs that never ran in their current life can be deleted while active, so the site
    counters leave them out - also a rescheduled one, whose row keeps its first life's StartExecTime."""
    w = dirac.writer
    w.set_site_status(IHEP, "Active")
    waiting = w.submit()
    w.optimize(waiting)
    done, resched = w.submit(), w.submit()
    w.optimize(resched)
    w.match(resched, IHEP)
    w.set_status(resched, "Running", "Application", "Running")
    exp, scraped = Exporter(dirac.config()), Exporter(dirac.config())  # the tracker's events; the scrapers'
    tracker_events(exp)
    scraped.scrape()
    w.run_to(done, IHEP, "Done")
    w.set_status(resched, "Failed", "Application Finished With Errors", "Error")
    w.reschedule(resched)
    w.optimize(resched)
    w.kill(waiting)
    w.delete(waiting)  # between two collections: the tracker sees only Deleted
    fresh = w.submit(owner="carol", owner_group="bes_prod")
    w.kill(fresh)
    w.delete(fresh)  # submitted and deleted between two collections
    events = tracker_events(exp) + tracker_events(exp)
    ended = {(e.job_id, e.status, e.site, e.ran) for e in events}
    assert ended == {(done, "Done", IHEP, True), (resched, "Failed", IHEP, True), (waiting, "Killed", "ANY", False),
                     (fresh, "Killed", "ANY", False)}, ended
    assert {(e.owner, e.owner_group) for e in events if e.job_id == fresh} == {("carol", "bes_prod")}
    for _ in range(2):
        s = scraped.scrape()
    counted = {(lab["site"], lab["status"]): s.v("dirac_jobs_finished_total", **lab)
               for lab in s.series("dirac_jobs_finished_total")}
    assert {k: v for k, v in counted.items() if v} == {(IHEP, "Done"): 1, (IHEP, "Failed"): 1}
    w.delete(resched)  # its second life, waiting again: StartExecTime is the first life's
    assert dirac.query(f"SELECT StartExecTime IS NOT NULL FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s",
                       (resched,)) == ((1,),)
    w.delete(done)  # deleting a finished job ends nothing new
    assert [(e.job_id, e.status, e.ran) for e in tracker_events(exp)] == [(resched, "Killed", False)]
    for _ in range(2):
        s = scraped.scrape()
    assert {(lab["site"], lab["status"]): s.v("dirac_jobs_finished_total", **lab)
            for lab in s.series("dirac_jobs_finished_total")} == counted


def test_life_failed_and_rescheduled_between_scrapes_is_read_from_logging_info(dirac, caplog):
    w = dirac.writer
    w.set_site_status(IHEP, "Active")
    jobs = [w.submit() for _ in range(2)]
    for j in jobs:
        w.optimize(j)
        w.match(j, IHEP)
        w.set_status(j, "Running", "Application", "Running")
    exp = Exporter(dirac.config())
    blind = Exporter(dirac.config(database={"logdb": "no_such_logging_db"}))
    exp.scrape()
    blind.scrape()
    for j in jobs:  # fails, is rescheduled and runs again, all between two scrapes
        w.set_status(j, "Failed", "Job has insufficient disk space to continue", "Error")
        w.reschedule(j)
        w.optimize(j)
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 2
    assert s.v("dirac_jobs_failed_total", site=IHEP, reason="insufficient_disk") == 2
    w.run_to(jobs[0], IHEP, "Done")
    s = exp.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 1
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 2
    # without access to LoggingInfo such lives cannot be counted: said once, everything else works
    import logging

    caplog.set_level(logging.WARNING, logger="bes_exporter")
    s = blind.scrape()
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 0
    assert s.v("dirac_exporter_collector_success", collector="finished") == 1
    assert [r for r in caplog.records if "LoggingInfo" in r.getMessage()]


def test_without_logging_info_a_life_ran_if_it_has_a_start_exec_time(dirac, caplog):
    """No LoggingInfo record to read (none written, or no access): StartExecTime tells whether it ran."""
    import dataclasses
    import logging

    from bes_simulator.writer import DiracWriter

    caplog.set_level(logging.WARNING, logger="bes_exporter")
    silent = DiracWriter(dirac.conn, dataclasses.replace(dirac.dbs, logdb=None))  # writes no LoggingInfo
    exps = [Exporter(dirac.config()), Exporter(dirac.config(database={"logdb": "no_such_logging_db"}))]
    for exp in exps:
        tracker_events(exp)
    ran, waited = silent.submit(owner="alice"), silent.submit(owner="bob")
    silent.run_to(ran, IHEP, "Failed", "Application Finished With Errors")
    silent.optimize(waited)
    silent.kill(waited)
    for exp in exps:
        events = tracker_events(exp) + tracker_events(exp)
        assert sorted((e.job_id, e.status, e.ran, e.owner, e.app_status) for e in events) == [
            (ran, "Failed", True, "alice", "Error"), (waited, "Killed", False, "bob", "Unknown")]
    assert [r for r in caplog.records if "LoggingInfo" in r.getMessage()]


def test_vo_filter_counts_one_vo_of_a_shared_instance(dirac_new):
    """IHEP's DIRAC serves BES3, JUNO and CEPC: with ``vo: bes`` only BES3's jobs and pilots are counted."""
    w = dirac_new.writer
    mine, theirs = [w.submit() for _ in range(2)], [w.submit() for _ in range(3)]
    pilots = [w.submit_pilot(IHEP, "ce01.ihep.ac.cn", status="Waiting") for _ in range(2)]
    dirac_new.query(f"UPDATE `{dirac_new.dbs.jobdb}`.Jobs SET VO = 'juno' WHERE JobID IN ({theirs[0]}, {theirs[1]},"
                    f" {theirs[2]})")
    dirac_new.query(f"UPDATE `{dirac_new.dbs.pilotdb}`.PilotAgents SET VO = 'juno' WHERE PilotID = {pilots[1]}")
    for j in (*mine, *theirs):
        w.optimize(j)
    w.set_site_status(IHEP, "Active")  # a known site: its counters exist at zero from the first scrape
    only_bes, every_vo = Exporter(dirac_new.config(vo="bes")), Exporter(dirac_new.config())
    for exp in (only_bes, every_vo):
        exp.scrape()
    w.run_to(mine[0], IHEP, "Failed", "Application Finished With Errors")
    for j in theirs:
        w.run_to(j, IHEP, "Failed", "Application Finished With Errors")
    new_pilot = w.submit_pilot(IHEP, "ce01.ihep.ac.cn", status="Waiting")
    dirac_new.query(f"UPDATE `{dirac_new.dbs.pilotdb}`.PilotAgents SET VO = 'juno' WHERE PilotID = {new_pilot}")
    s, every = only_bes.scrape(), every_vo.scrape()
    assert s.v("dirac_jobs", site="ANY", status="Waiting") == 1
    assert every.v("dirac_jobs", site="ANY", status="Waiting") == 1
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 1
    assert every.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 4
    assert s.v("dirac_pilots", site=IHEP, ce="ce01.ihep.ac.cn", status="Waiting") == 1
    assert every.v("dirac_pilots", site=IHEP, ce="ce01.ihep.ac.cn", status="Waiting") == 3
    for name in ("jobs", "finished", "pilots"):
        assert s.v("dirac_exporter_collector_success", collector=name) == 1, name


def test_vo_filter_on_an_older_dirac_says_how_to_fix_it(dirac_old, caplog):
    caplog.set_level(logging.ERROR, logger="bes_exporter")
    s = Exporter(dirac_old.config(vo="bes")).scrape()
    assert s.v("dirac_up") == 1
    assert s.v("dirac_exporter_collector_success", collector="jobs") == 0
    assert s.v("dirac_exporter_collector_success", collector="pilots") == 0
    assert s.v("dirac_exporter_collector_success", collector="site_status") == 1
    assert any("'vo' needs DIRAC >= 9.1" in r.getMessage() and "remove 'vo'" in r.getMessage()
               for r in caplog.records)
