"""dirac_jobs_rescheduled_total on DIRAC's real schemas (both generations): each reschedule of a life that had
not ended counted once, at the site where it ran, by the reason of its "Rescheduled" LoggingInfo record;
heartbeat ages as StalledJobAgent takes them."""

from __future__ import annotations

import datetime as dt

from metrics_util import Exporter

IHEP, UCAS = "BES.IHEP-PBS.cn", "BES.UCAS.cn"


def wrapper_reschedules(w, job: int, step: str) -> None:
    """JobWrapperUtilities.rescheduleFailedJob: Status Rescheduled with the failed step, then
    JobManager.rescheduleJob (a new life: Received, 'Job Rescheduled', RescheduleCounter + 1)."""
    w.set_status(job, "Rescheduled", step, f"Failed {step} ")
    w.reschedule(job)


def run_at(w, job: int, site: str) -> None:
    w.optimize(job)
    w.match(job, site)
    w.set_status(job, "Running", "Application", "Running")


def test_each_reschedule_once_at_its_site_by_reason(dirac):
    w = dirac.writer
    for site in (IHEP, UCAS):
        w.set_site_status(site, "Active")
    exp = Exporter(dirac.config())
    s = exp.scrape()
    assert s.v("dirac_jobs_rescheduled_total", site=IHEP, reason="input_sandbox") == 0
    bouncing, twice, stuck, probe = w.submit(), w.submit(), w.submit(), w.submit(job_group="bes_probe")
    for job in (bouncing, twice, probe):
        run_at(w, job, IHEP)
    w.optimize(stuck)
    w.match(stuck, UCAS)
    exp.scrape()
    wrapper_reschedules(w, bouncing, "Downloading InputSandbox")
    wrapper_reschedules(w, probe, "Downloading InputSandbox")
    wrapper_reschedules(w, twice, "Input Data Resolution")  # twice between two looks: both counted
    run_at(w, twice, IHEP)
    wrapper_reschedules(w, twice, "Input Data Resolution")
    w.reschedule(stuck)  # StalledJobAgent._kickStuckJobs: Matched for MatchedTime, no Rescheduled record
    s = exp.scrape()
    assert s.v("dirac_jobs_rescheduled_total", site=IHEP, reason="input_sandbox") == 1  # the probe's is apart
    assert s.v("dirac_jobs_rescheduled_total", site=IHEP, reason="input_data") == 2
    assert s.v("dirac_jobs_rescheduled_total", site=UCAS, reason="stuck_matched") == 1
    run_at(w, bouncing, UCAS)
    exp.scrape()
    w.set_status(bouncing, "Rescheduled", None, "Failed to fetch the payload")  # JobAgent._rescheduleFailedJob
    w.reschedule(bouncing)
    s = exp.scrape()
    assert s.v("dirac_jobs_rescheduled_total", site=UCAS, reason="job_agent") == 1
    assert s.v("dirac_jobs_rescheduled_total", site=IHEP, reason="input_sandbox") == 1  # counted once
    # a life that ended, then rescheduled by hand: not DIRAC's retry
    run_at(w, bouncing, IHEP)
    w.set_status(bouncing, "Failed", "Application Finished With Errors")
    exp.scrape()
    w.reschedule(bouncing)
    s = exp.scrape()
    assert sum(s.nonzero("dirac_jobs_rescheduled_total", "reason").values()) == 5
    assert s.v("dirac_exporter_collector_success", collector="reschedules") == 1


def test_heartbeat_age_is_the_later_of_heartbeat_and_last_update(dirac):
    """StalledJobAgent._getLatestUpdateTime: a job whose heartbeat is old but whose row was updated since is
    not stalling; one whose heartbeat and row are both old is."""
    w = dirac.writer
    exp = Exporter(dirac.config())
    exp.scrape()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    quiet, updated = w.submit(when=now - dt.timedelta(seconds=6000)), w.submit(when=now - dt.timedelta(seconds=6000))
    for job in (quiet, updated):
        w.optimize(job)
        w.match(job, IHEP)
        w.set_status(job, "Running", "Application", "Running", when=now - dt.timedelta(seconds=5000))
        w.heartbeat(job, when=now - dt.timedelta(seconds=4000))
    w.set_attributes(updated, ApplicationStatus="Event 1000", when=now - dt.timedelta(seconds=100))  # LUT moves
    s = exp.scrape()
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_gcount", site=IHEP) == 2
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="300") == 1
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="3600") == 1
    assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=IHEP, le="4500") == 2
