"""The hosts scraper on DIRAC's real schemas: exact per-host counters from JobParameters' HostName
(DIRAC v6-v8 schema), window and cap, hostile host names, and the 9.1 schema without JobParameters."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

from metrics_util import Exporter

from bes_exporter.labels import host_label
from bes_exporter.scrapers import SCRAPERS
from bes_exporter.scrapers.hosts import LOOKUP_ATTEMPTS, UNAVAILABLE

IHEP, UCAS = "BES.IHEP-PBS.cn", "BES.UCAS.cn"
WN1, WN2 = "wn01.ihep.ac.cn", "wn02.ucas.ac.cn"
HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def finish(w, site: str, host: str | None, final: str = "Done", *, wall: int = 0, group: str = "00000000",
           when: dt.datetime | None = None) -> int:
    """One job: submitted, matched, Running ``wall`` seconds before ``when`` on ``host``, then final."""
    when = when or utcnow()
    j = w.submit(job_group=group)
    w.optimize(j)
    w.match(j, site)
    w.set_status(j, "Running", "Application", "Running", when=when - dt.timedelta(seconds=wall))
    if host is not None:
        w.set_host(j, host)
    minor = "Execution Complete" if final == "Done" else "Application Finished With Errors"
    w.set_status(j, final, minor, when=when)
    return j


def test_host_counters_exact(dirac_old):
    w = dirac_old.writer
    before = finish(w, IHEP, WN1)  # final before the exporter's first look: never counted
    exp = Exporter(dirac_old.config())
    s = exp.scrape()
    assert s.v("dirac_exporter_collector_success", collector="hosts") == 1
    assert not s.series("dirac_host_jobs_finished_total")
    second = utcnow()
    for _ in range(2):  # same second
        finish(w, IHEP, "WN01.IHEP.AC.CN ", when=second)  # normalised to WN1
    finish(w, IHEP, WN1, "Failed", wall=10, when=second)  # fast
    finish(w, IHEP, WN1, "Failed", wall=1000, when=second)  # slow
    finish(w, UCAS, WN2, when=second)
    finish(w, IHEP, WN1, group="bes_probe")  # probe job: not counted
    killed = w.submit()  # never started: no worker node, not counted
    w.kill(killed)
    running = w.submit()
    w.optimize(running)
    w.match(running, IHEP)
    w.set_status(running, "Running", "Application", "Running")
    w.set_host(running, WN1)
    s = exp.scrape()
    # a host's first exposure is at zero, its counts one scrape later: increase() then sees them all
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 0
    assert s.v("dirac_host_job_failures_fast_total", site=IHEP, host=WN1) == 0
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 2
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Failed") == 2
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Killed") == 0
    assert s.v("dirac_host_job_failures_fast_total", site=IHEP, host=WN1) == 1
    assert s.v("dirac_host_jobs_finished_total", site=UCAS, host=WN2, status="Done") == 1
    assert s.v("dirac_host_job_failures_fast_total", site=UCAS, host=WN2) == 0
    end = second.replace(tzinfo=dt.timezone.utc).timestamp()
    assert s.v("dirac_host_last_job_end_timestamp_seconds", site=UCAS, host=WN2) == end
    assert s.v("dirac_exporter_hosts_dropped_total", site=IHEP) == 0
    assert {h["host"] for h in s.series("dirac_host_jobs_finished_total")} == {WN1, WN2}
    # a second scrape, a Minor-only update of a finished job and a kill of a running one
    w.set_status(before, minor="Requests done")
    w.kill(running)
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 2
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Killed") == 1
    # a reschedule is a new life, counted again where it ends
    w.reschedule(running)
    exp.scrape()
    w.optimize(running)
    w.match(running, IHEP)  # rescheduled: Site back to the JDL's ('ANY') until matched again
    w.set_status(running, "Running", "Application", "Running")
    w.set_host(running, WN2)
    w.set_status(running, "Done", "Execution Complete")
    exp.scrape()
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN2, status="Done") == 1
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Killed") == 1


def test_host_counts_only_lives_that_ran(dirac_old):
    """A rescheduled job's second life, killed while it waits again, did not run on any host (its row keeps
    the first life's StartExecTime); the first life, which ran on WN1, is counted there once."""
    w = dirac_old.writer
    exp = Exporter(dirac_old.config())
    exp.scrape()
    j = w.submit()
    w.optimize(j)
    w.match(j, IHEP)
    w.set_status(j, "Running", "Application", "Running")
    w.set_host(j, WN1)
    exp.scrape()
    w.set_status(j, "Failed", "Application Finished With Errors", "Error")
    exp.scrape()
    w.reschedule(j)
    w.optimize(j)
    exp.scrape()
    w.kill(j)
    w.set_host(j, WN2)  # a stray parameter: the lookup must not even happen
    for _ in range(LOOKUP_ATTEMPTS + 1):
        s = exp.scrape()
    assert {(lab["host"], lab["status"]): s.v("dirac_host_jobs_finished_total", **lab)
            for lab in s.series("dirac_host_jobs_finished_total") if s.v("dirac_host_jobs_finished_total", **lab)} \
        == {(WN1, "Failed"): 1}


def test_host_lookup_pending_then_unknown(dirac_old):
    w = dirac_old.writer
    exp = Exporter(dirac_old.config())
    exp.scrape()
    late = finish(w, IHEP, None)
    never = finish(w, IHEP, None)
    s = exp.scrape()
    assert not s.series("dirac_host_jobs_finished_total")  # both pending
    w.set_host(late, WN1)
    for _ in range(LOOKUP_ATTEMPTS):  # the last one shows the `unknown` host past its zero exposure
        s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 1
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="unknown", status="Done") == 1
    w.set_host(never, WN2)  # too late: already counted as unknown, never twice
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="unknown", status="Done") == 1
    assert s.get_value("dirac_host_jobs_finished_total", site=IHEP, host=WN2, status="Done") is None


def test_host_window_forgets_idle_hosts(dirac_old):
    w = dirac_old.writer
    exp = Exporter(dirac_old.config(hosts={"window_seconds": 2}))
    exp.scrape()
    finish(w, IHEP, WN1)
    exp.scrape()
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 1
    time.sleep(3.1)  # 1 s timestamps: the job is then more than 2 s old
    finish(w, IHEP, "wn03.ihep.ac.cn")
    exp.scrape()
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="wn03.ihep.ac.cn", status="Done") == 1
    for name in ("dirac_host_jobs_finished_total", "dirac_host_job_failures_fast_total",
                 "dirac_host_last_job_end_timestamp_seconds"):
        assert all(lab["host"] != WN1 for lab in s.series(name)), name


def test_host_cap_keeps_busiest_and_counts_dropped(dirac_old):
    w = dirac_old.writer
    exp = Exporter(dirac_old.config(hosts={"max_per_site": 2}))
    exp.scrape()
    for host, n in (("a.ihep", 3), ("b.ihep", 2), ("c.ihep", 1)):
        for _ in range(n):
            finish(w, IHEP, host)
    finish(w, UCAS, "d.ucas")
    s = exp.scrape()
    assert {lab["host"] for lab in s.series("dirac_host_jobs_finished_total") if lab["site"] == IHEP} \
        == {"a.ihep", "b.ihep"}
    assert s.v("dirac_exporter_hosts_dropped_total", site=IHEP) == 1
    assert s.v("dirac_exporter_hosts_dropped_total", site=UCAS) == 0
    s = exp.scrape()  # still left out: not dropped again
    assert s.v("dirac_exporter_hosts_dropped_total", site=IHEP) == 1
    for _ in range(3):
        finish(w, IHEP, "c.ihep")
    exp.scrape()
    s = exp.scrape()
    assert {lab["host"] for lab in s.series("dirac_host_jobs_finished_total") if lab["site"] == IHEP} \
        == {"a.ihep", "c.ihep"}
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="c.ihep", status="Done") == 4
    assert s.v("dirac_exporter_hosts_dropped_total", site=IHEP) == 2


def test_hostile_host_names_never_reach_a_label(dirac_old):
    w = dirac_old.writer
    exp = Exporter(dirac_old.config())
    exp.scrape()
    hostile = ["", "x" * 10_000, "wn\"01'.ihep", "wn01\nevil.ihep", "wn01.ihep\n}\n# HELP x", "nöde01.ihep",
               "wn01 .ihep", "-wn.ihep", "wn..ihep", "wn01.ihep;DROP TABLE Jobs", "a" * 64 + ".ihep"]
    for value in hostile:
        finish(w, IHEP, value)
    finish(w, IHEP, "  WN09.Example.ORG.  ")
    exp.scrape()
    s = exp.scrape()
    hosts = {lab["host"] for lab in s.series("dirac_host_jobs_finished_total")}
    assert hosts == {"unknown", "wn09.example.org"}
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="unknown", status="Done") == len(hostile)
    for name in ("dirac_host_job_failures_fast_total", "dirac_host_last_job_end_timestamp_seconds"):
        assert all(lab["host"] == "unknown" or HOST_RE.match(lab["host"]) for lab in s.series(name))
    # values the latin1 JobParameters column cannot even store, straight through the label function
    for value in ("wn\u212a.ihep", "wn01.\u8282\u70b9", "wn\U0001f600", "wn01\u0130.ihep", None, b"wn01"):
        assert host_label(value) == "unknown", value


def test_no_jobparameters_on_91_degrades_alone(dirac_new, caplog):
    w = dirac_new.writer
    exp = Exporter(dirac_new.config())
    caplog.set_level(logging.INFO, logger="bes_exporter")
    exp.scrape()
    finish(w, IHEP, WN1)
    for _ in range(2):
        s = exp.scrape()
    assert s.v("dirac_up") == 1
    for cls in SCRAPERS:
        assert s.v("dirac_exporter_collector_success", collector=cls.name) == (0 if cls.name == "hosts" else 1)
    assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 1
    assert not [k for k in s if k[0].startswith("dirac_host_")]
    lines = [r.getMessage() for r in caplog.records if "hosts" in r.getMessage()]
    assert lines == [f"hosts failed: {UNAVAILABLE}"], lines


def rows_examined(exp: Exporter) -> int:
    return sum(int(v) for _, v in exp.collector.db.query("SHOW SESSION STATUS LIKE 'Handler_read%'"))


def test_host_lookup_reads_only_finished_jobs_rows(dirac_old):
    """40 k HostName rows of history: a scrape reads the parameters of the jobs that just finished."""
    with dirac_old.conn.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"INSERT INTO `{dirac_old.dbs.jobdb}`.JobParameters (JobID, Name, Value)"
                    " SELECT seq, IF(seq % 2, 'HostName', 'GridCE'), CONCAT('wn', seq % 300, '.ihep')"
                    " FROM seq_1000000_to_1039999")
        cur.execute("SET SESSION foreign_key_checks = 1")
    w = dirac_old.writer
    exp = Exporter(dirac_old.config(), scrapers=[cls for cls in SCRAPERS if cls.name == "hosts"])
    exp.scrape()
    exp.scrape()
    for _ in range(10):
        finish(w, IHEP, WN1)
    before = rows_examined(exp)
    s = exp.scrape()
    cost = rows_examined(exp) - before
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 0  # first exposure
    s = exp.scrape()
    assert s.v("dirac_host_jobs_finished_total", site=IHEP, host=WN1, status="Done") == 10
    print(f"hosts scrape rows examined with 40 k JobParameters rows: {cost}")
    assert cost < 500, cost  # the tracker's window (10 jobs x a few writes) + 10 PK lookups, not 40 k
