"""Faults beyond tests/test_exporter_faults.py (which covers a database down at start, killed between
scrapes, and a statement held by a lock): MariaDB killed *during* a scrape with changes the exporter has
not read yet, the exporter itself restarted, and a huge backlog after a long outage read with bounded
memory and counted exactly once over several scrapes."""

from __future__ import annotations

import threading
import time

import pytest
from dirac_instance import make_instance
from hardening_util import CliExporter, MonitorAccount
from private_mariadb import PrivateMariaDB

IHEP = "BES.IHEP-PBS.cn"
SITES = ["BES.IHEP-PBS.cn", "BES.USTC.cn", "BES.WHU.cn", "BES.JINR.ru", "CLUSTER.UCAS.cn"]


@pytest.fixture
def private_db(mariadb):
    db = PrivateMariaDB()
    db.start()
    yield db
    db.cleanup()


def test_database_killed_during_a_scrape_watermark_survives(private_db, tmp_path):
    inst = make_instance("9.1", private_db.connect(), "127.0.0.1", private_db.port)
    w = inst.writer
    w.set_site_status(IHEP, "Active")
    exp = CliExporter(inst.config(database={"connect_timeout": 1, "query_timeout": 10}), tmp_path)
    try:
        jobs = [w.submit() for _ in range(7)]
        assert exp.scrape()[0].v("dirac_up") == 1
        for j in jobs[:2]:
            w.run_to(j, IHEP, "Done")
        assert exp.scrape()[0].v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
        for j in jobs[2:4]:  # finished after the last good scrape: must be counted after the outage
            w.run_to(j, IHEP, "Failed", "Application Finished With Errors")

        locker = private_db.connect()  # hold the jobs collector's statement, then crash the server under it
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES `{inst.dbs.jobdb}`.Jobs WRITE")
        result: dict = {}

        def scrape() -> None:
            try:
                result["samples"], result["took"] = exp.scrape(timeout=20)
            except Exception as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

        t = threading.Thread(target=scrape)
        t.start()
        time.sleep(1.0)
        killed = time.monotonic()
        private_db.kill()
        t.join(20)
        assert not t.is_alive() and "error" not in result, result
        assert time.monotonic() - killed < 5, "the scrape waited for its statement although the server died"
        s = result["samples"]
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 0
        assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2

        for _ in range(2):
            s, took = exp.scrape()
            assert took < 5 and s.v("dirac_up") == 0
            assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
        private_db.start()
        w.conn = inst.conn = private_db.connect()
        w.run_to(jobs[4], IHEP, "Done")
        for _ in range(2):  # the second scrape re-reads the overlap window: nothing counted twice
            s, _ = exp.scrape()
            assert s.v("dirac_up") == 1
            assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 3
            assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 2
            assert s.v("dirac_jobs_failed_total", site=IHEP, reason="application_error") == 2
    finally:
        exp.stop()
    assert "Traceback" not in exp.log()


def test_exporter_restart_counters_start_over_cleanly(dirac_new, tmp_path):
    w = dirac_new.writer
    w.set_site_status(IHEP, "Active")
    jobs = [w.submit() for _ in range(6)]
    first = CliExporter(dirac_new.config(), tmp_path, name="first")
    first.scrape()
    for j in jobs[:3]:
        w.run_to(j, IHEP, "Done")
    assert first.scrape()[0].v("dirac_jobs_finished_total", site=IHEP, status="Done") == 3
    t0 = time.monotonic()
    assert first.stop() == 0 and time.monotonic() - t0 < 5  # SIGTERM: clean, prompt exit

    second = CliExporter(dirac_new.config(), tmp_path, name="second")
    try:
        s, _ = second.scrape()
        assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 0  # nothing counted again
        assert s.v("dirac_jobs", site="ANY", status="Received") == 3
        for j in jobs[3:5]:
            w.run_to(j, IHEP, "Done")
        assert second.scrape()[0].v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
    finally:
        second.stop()
    assert "Traceback" not in first.log() + second.log()


BACKLOG = 200_000
MAX_ROWS = 25_000
PAGE = 5_000
OVERLAP, OUTAGE = 2, 3
RSS_GROWTH_LIMIT_MB = 100


def test_huge_backlog_after_an_outage_bounded_memory(dirac_new, tmp_path):
    """200 k jobs finish while the exporter cannot reach JobDB; afterwards it reads at most
    jobs.max_rows_per_scrape rows per scrape, in pages, until every job is counted exactly once.

    A "long" outage is one longer than jobs.overlap_seconds: 2 s here (120 s by default), so the test
    needs a 6 s outage, not hours."""
    inst = dirac_new
    for site in SITES:
        inst.writer.set_site_status(site, "Active")
    acct = MonitorAccount(inst.conn, inst.dbs, "9.1")
    cfg = inst.config(database={"user": acct.user, "password": acct.password, "connect_timeout": 2,
                                "query_timeout": 10},
                      jobs={"page_rows": PAGE, "max_rows_per_scrape": MAX_ROWS, "overlap_seconds": OVERLAP})
    exp = CliExporter(cfg, tmp_path)
    jobdb = f"`{inst.dbs.jobdb}`"
    try:
        for _ in range(2):
            s, _ = exp.scrape()
        assert s.v("dirac_up") == 1
        rss_before, _ = exp.memory_kb()

        with inst.conn.cursor() as cur:  # the outage: the account locked, its session killed
            cur.execute(f"ALTER USER '{acct.user}'@'{acct.host}' ACCOUNT LOCK")
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (acct.user,))
            for (pid,) in cur.fetchall():
                cur.execute(f"KILL CONNECTION {int(pid)}")
            cur.execute("SELECT UTC_TIMESTAMP()")
            outage_start = cur.fetchone()[0]
        s, _ = exp.scrape()
        assert s.v("dirac_up") == 0
        time.sleep(OUTAGE)

        with inst.conn.cursor() as cur:  # meanwhile DIRAC finished 200 k jobs (one in ten Failed)
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute(f"SELECT COALESCE(MAX(JobID), 0) FROM {jobdb}.Jobs")
            base = cur.fetchone()[0]
            sites = ", ".join(f"'{s}'" for s in SITES)
            cur.execute(
                f"INSERT INTO {jobdb}.Jobs (JobID, Site, Status, MinorStatus, VO, SubmissionTime, StartExecTime,"
                f" EndExecTime, LastUpdateTime)"
                f" SELECT {base} + seq, ELT(1 + MOD(seq, {len(SITES)}), {sites}),"
                f" IF(MOD(seq, 10) = 0, 'Failed', 'Done'),"
                f" IF(MOD(seq, 10) = 0, 'Application Finished With Errors', 'Execution Complete'), 'bes',"
                f" %(t)s, %(t)s,"  # submitted and started during the outage, never seen active
                f" %(t)s + INTERVAL MOD(seq, {OUTAGE}) SECOND, %(t)s + INTERVAL MOD(seq, {OUTAGE}) SECOND"
                f" FROM seq_1_to_{BACKLOG}", {"t": outage_start})
            cur.execute(f"ALTER USER '{acct.user}'@'{acct.host}' ACCOUNT UNLOCK")

        totals, peaks, times = [], [], []
        for _ in range(BACKLOG // MAX_ROWS + 3):
            s, took = exp.scrape(timeout=60)
            assert s.v("dirac_up") == 1 and s.v("dirac_exporter_collector_success", collector="finished") == 1
            totals.append(sum(s.v("dirac_jobs_finished_total", site=site, status=st)
                              for site in SITES for st in ("Done", "Failed")))
            peaks.append(exp.memory_kb()[1])
            times.append(took)
            if totals[-1] == BACKLOG and len(totals) > 1 and totals[-2] == BACKLOG:
                break
        steps = [b - a for a, b in zip([0, *totals], totals)]
        assert totals[-1] == BACKLOG, totals  # every job counted
        assert max(steps) <= MAX_ROWS, steps  # never more than max_rows_per_scrape per scrape
        assert len([x for x in steps if x]) >= BACKLOG // MAX_ROWS, steps  # spread over several scrapes
        assert sum(s.v("dirac_jobs_failed_total", site=site, reason="application_error") for site in SITES) \
            == BACKLOG // 10
        growth_mb = (max(peaks) - rss_before) / 1024
        print(f"backlog {BACKLOG} rows: peak RSS growth {growth_mb:.0f} MB over {len(totals)} scrapes"
              f" of {', '.join(f'{t:.1f}' for t in times)} s")
        assert growth_mb < RSS_GROWTH_LIMIT_MB, f"RSS grew by {growth_mb:.0f} MB while catching up"
    finally:
        exp.stop()
        acct.drop()
