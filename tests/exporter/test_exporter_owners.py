"""The owners scraper on DIRAC's real schemas (both generations): exact per-owner counters that sum to the
site counters, failures before running by optimizer and reason, the owner cap and `other`, the window,
hostile owner names, restarts."""

from __future__ import annotations

import time
from collections import Counter

from metrics_util import Exporter, Samples

from bes_exporter.scrapers.owners import Owners

IHEP, UCAS = "BES.IHEP-PBS.cn", "BES.UCAS.cn"
FIN, FAIL, BEFORE = ("dirac_owner_jobs_finished_total", "dirac_owner_jobs_failed_total",
                     "dirac_jobs_failed_before_running_total")
DROPPED = "dirac_exporter_owners_dropped_total"


def finish(w, owner: str, group: str, site: str, final: str = "Done", minor: str | None = None,
           job_group: str = "00000000") -> int:
    """One whole life that ran at ``site``."""
    j = w.submit(owner=owner, owner_group=group, job_group=job_group)
    w.run_to(j, site, final, minor or ("Execution Complete" if final == "Done" else "Application Finished With Errors"))
    return j


def twice(exp: Exporter) -> Samples:
    """Two scrapes: a new series is exported at 0 once, then with its value."""
    exp.scrape()
    return exp.scrape()


def owners_scraper(exp: Exporter) -> Owners:
    return next(s for s in exp.collector.scrapers if isinstance(s, Owners))


def test_owner_counters_exact_and_summing_to_the_site_counters(dirac):
    w = dirac.writer
    for site in (IHEP, UCAS):
        w.set_site_status(site, "Active")
    finish(w, "alice", "bes_user", IHEP)  # ended before the exporter's first look: never counted
    exp = Exporter(dirac.config())
    s = exp.scrape()
    assert not s.nonzero(FIN, "owner") and s.v(DROPPED) == 0
    for _ in range(2):
        finish(w, "alice", "bes_user", IHEP)
    finish(w, "alice", "bes_user", IHEP, "Failed")
    finish(w, "alice", "bes_user", UCAS, "Failed", "Stalling for more than 4500 sec")
    finish(w, "bob", "bes_user", IHEP)
    finish(w, "carol", "bes_prod", UCAS)
    finish(w, "alice", "bes_user", UCAS, "Failed", job_group="bes_probe")  # a probe job: nobody's
    bob = w.submit(owner="bob", owner_group="bes_user")  # killed while it runs at UCAS
    w.optimize(bob)
    w.match(bob, UCAS)
    w.set_status(bob, "Running", "Application", "Running")
    w.kill(bob)
    carol = w.submit(site=UCAS, owner="carol", owner_group="bes_prod")  # its JDL names UCAS; it never gets there
    w.fail_optimizer(carol, "JobScheduling", "No possible site candidates")
    dave = w.submit(owner="dave", owner_group="bes_user")  # killed while waiting: ended, never ran
    w.optimize(dave)
    w.kill(dave)
    s = exp.scrape()
    assert not s.nonzero(FIN, "owner") and not s.nonzero(BEFORE, "owner")  # new series: 0 once
    assert {lab["owner"] for lab in s.series(FIN)} == {"alice", "bob", "carol"}
    s = exp.scrape()
    assert s.nonzero(FIN, "site", "owner", "owner_group", "status") == Counter({
        (IHEP, "alice", "bes_user", "Done"): 2, (IHEP, "alice", "bes_user", "Failed"): 1,
        (UCAS, "alice", "bes_user", "Failed"): 1, (IHEP, "bob", "bes_user", "Done"): 1,
        (UCAS, "bob", "bes_user", "Killed"): 1, (UCAS, "carol", "bes_prod", "Done"): 1})
    assert s.nonzero(FAIL, "owner", "owner_group", "reason") == Counter({
        ("alice", "bes_user", "application_error"): 1, ("alice", "bes_user", "stalling"): 1})
    assert s.nonzero(BEFORE, "owner", "owner_group", "stage", "reason") == Counter({
        ("carol", "bes_prod", "JobScheduling", "no_site_candidates"): 1})
    # the site counters hold exactly the same lives: those that ran
    site_fin = s.nonzero("dirac_jobs_finished_total", "site", "status")
    summed = Counter()
    for (site, _owner, _group, status), n in s.nonzero(FIN, "site", "owner", "owner_group", "status").items():
        summed[(site, status)] += n
    assert summed == site_fin == Counter({(IHEP, "Done"): 3, (IHEP, "Failed"): 1, (UCAS, "Failed"): 1,
                                          (UCAS, "Killed"): 1, (UCAS, "Done"): 1})
    assert s.v("dirac_jobs_failed_total", site=UCAS, reason="Other") == 0  # carol's failure is not UCAS's
    assert s.v(DROPPED) == 0
    assert s.v("dirac_exporter_collector_success", collector="owners") == 1
    again = exp.scrape()  # nothing new: the same values
    for name in (FIN, FAIL, BEFORE):
        assert [(k, v) for k, v in again.items() if k[0] == name] == [(k, v) for k, v in s.items() if k[0] == name]


def test_failures_before_running_by_optimizer_and_reason(dirac):
    """Written as DIRAC's OptimizerExecutor writes them (DiracWriter.fail_optimizer), plus a failure that is
    no optimizer's (JobDB.rescheduleJob past MaxRescheduling: Status and MinorStatus, no LoggingInfo)."""
    w = dirac.writer
    exp = Exporter(dirac.config())
    exp.scrape()
    cases = [
        ("JobPath", "No manifest for job 12", "JobPath", "no_manifest"),
        ("JobSanity", "Sandbox does not exist or you are not authorized to assign it being alice@bes_user",
         "JobSanity", "sandbox_not_available"),
        ("InputData", "Input data not available", "InputData", "input_data_not_available"),
        ("InputData", "Failed to instantiate FileCatalog for vo bes", "InputData", "file_catalog_unavailable"),
        ("JobScheduling", "Impossible site requirement", "JobScheduling", "impossible_site_requirement"),
        ("BESDataCheck", "Input data not available", "optimizer", "input_data_not_available"),
        ("JobScheduling", "a message of a newer DIRAC", "JobScheduling", "Other"),
    ]
    for optimizer, message, _, _ in cases:
        w.fail_optimizer(w.submit(site=IHEP, owner="alice"), optimizer, message)
    limit = w.submit(owner="alice")
    w.optimize(limit)
    w.match(limit, IHEP)
    w.set_attributes(limit, Status="Failed", MinorStatus="Maximum of reschedulings reached")
    exp.scrape()  # the unlogged Failed row waits one collection for its record, then counts as it stands
    s = twice(exp)
    want = Counter((stage, reason) for _, _, stage, reason in cases) + Counter({("other", "max_reschedulings"): 1})
    assert s.nonzero(BEFORE, "stage", "reason") == want
    assert {(lab["owner"], lab["owner_group"]) for lab in s.series(BEFORE)} == {("alice", "bes_user")}
    assert not s.nonzero("dirac_jobs_finished_total", "site", "status"), "none of them ran at a site"
    assert not s.nonzero(FIN, "site") and not s.nonzero(FAIL, "owner")


def test_owner_cap_other_and_dropped(dirac):
    w = dirac.writer
    w.set_site_status(IHEP, "Active")
    exp = Exporter(dirac.config(owners={"max_owners": 2}))
    exp.scrape()
    for owner, n in (("alice", 3), ("bob", 2), ("carol", 1)):
        for _ in range(n):
            finish(w, owner, "bes_user" if owner != "carol" else "bes_prod", IHEP)
    s = twice(exp)
    assert s.nonzero(FIN, "owner", "owner_group") == Counter({("alice", "bes_user"): 3, ("bob", "bes_user"): 2,
                                                              ("other", "bes_prod"): 1})
    assert s.v(DROPPED) == 1
    assert sum(s.nonzero(FIN, "owner").values()) == s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 6
    s = exp.scrape()
    assert s.v(DROPPED) == 1  # still left out: not dropped again
    for _ in range(3):  # carol becomes the busiest: counted under her name from then on; bob leaves
        finish(w, "carol", "bes_prod", IHEP)
    s = exp.scrape()
    assert s.v(FIN, site=IHEP, owner="carol", owner_group="bes_prod", status="Done") == 0  # new: 0 once
    assert not [lab for lab in s.series(FIN) if lab["owner"] == "bob"], "bob's series are dropped"
    assert s.v(DROPPED) == 2
    s = exp.scrape()
    assert s.nonzero(FIN, "owner", "owner_group") == Counter({("alice", "bes_user"): 3, ("carol", "bes_prod"): 3,
                                                              ("other", "bes_prod"): 1})
    # memory stays bounded: at most 4 x max_owners owners remembered
    for i in range(12):
        finish(w, f"user{i:02d}", "bes_user", IHEP)
    s = twice(exp)
    assert len(owners_scraper(exp).busiest.keys) == 8
    assert {lab["owner"] for lab in s.series(FIN)} == {"alice", "carol", "other"}
    assert s.v(FIN, site=IHEP, owner="other", owner_group="bes_user", status="Done") == 12


def test_idle_owners_are_forgotten_after_the_window(dirac):
    w = dirac.writer
    exp = Exporter(dirac.config(owners={"window_seconds": 2}))
    exp.scrape()
    finish(w, "alice", "bes_user", IHEP)
    s = twice(exp)
    assert s.v(FIN, site=IHEP, owner="alice", owner_group="bes_user", status="Done") == 1
    time.sleep(3.1)  # 1 s timestamps: the job is then more than 2 s old
    finish(w, "bob", "bes_user", IHEP)
    s = twice(exp)
    assert {lab["owner"] for lab in s.series(FIN)} == {"bob"}
    assert s.v(DROPPED) == 0  # forgotten, not left out by the cap
    finish(w, "alice", "bes_user", IHEP)  # back: from 0 again
    s = exp.scrape()
    assert s.v(FIN, site=IHEP, owner="alice", owner_group="bes_user", status="Done") == 0
    s = exp.scrape()
    assert s.v(FIN, site=IHEP, owner="alice", owner_group="bes_user", status="Done") == 1


def test_owner_label_values_stay_bounded(dirac):
    w = dirac.writer
    exp = Exporter(dirac.config())
    exp.scrape()
    hostile = ["/DC=cn/DC=ihep/OU=users/CN=alice", "al ice", "", "-alice", "alice\n", "ali\"ce", "é", "a/b"]
    for name in hostile:
        finish(w, name, "bes_user", IHEP, "Failed")
    finish(w, "alice", "/DC=cn/CN=group", IHEP)
    finish(w, "a.b-c_d@ihep", "bes_user", IHEP)
    s = twice(exp)
    assert s.nonzero(FIN, "owner", "owner_group") == Counter({("invalid", "bes_user"): len(hostile),
                                                              ("alice", "invalid"): 1, ("a.b-c_d@ihep", "bes_user"): 1})
    assert s.nonzero(FAIL, "owner", "reason") == Counter({("invalid", "application_error"): len(hostile)})


def test_restart_counts_only_what_ends_after_it(dirac):
    w = dirac.writer
    first = Exporter(dirac.config())
    first.scrape()
    finish(w, "alice", "bes_user", IHEP)
    assert twice(first).v(FIN, site=IHEP, owner="alice", owner_group="bes_user", status="Done") == 1
    w.fail_optimizer(w.submit(owner="alice"), "InputData", "Input data not available")
    second = Exporter(dirac.config())  # a restart: its counters start from nothing
    s = twice(second)
    assert not s.nonzero(FIN, "owner") and not s.nonzero(BEFORE, "owner")
    finish(w, "alice", "bes_user", IHEP)
    w.fail_optimizer(w.submit(owner="alice"), "InputData", "Input data not available")
    s = twice(second)
    assert s.nonzero(FIN, "owner") == Counter({("alice",): 1})
    assert s.nonzero(BEFORE, "owner", "stage", "reason") == Counter({("alice", "InputData",
                                                                      "input_data_not_available"): 1})
