"""Faults on a private MariaDB server: down at start, killed mid-life and restarted, a statement held by a
lock. The exporter runs as the real CLI server; every scrape must answer within its timeouts."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pymysql
import pytest
import yaml
from dirac_instance import make_instance
from metrics_util import http_scrape, parse_text
from private_mariadb import PrivateMariaDB, free_port

IHEP = "BES.IHEP-PBS.cn"


@pytest.fixture
def private_db(mariadb):
    db = PrivateMariaDB()
    db.start()
    yield db
    db.cleanup()


class ExporterServer:
    def __init__(self, config: dict, tmp_path):
        path = tmp_path / "exporter.yml"
        path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = open(tmp_path / "exporter.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bes_exporter", "--config.file", str(path),
                                      "--web.listen-address", f"127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url.replace("/metrics", "/"), timeout=2).close()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        raise RuntimeError("exporter did not start")

    def scrape(self, timeout: float = 30):
        t0 = time.monotonic()
        samples = http_scrape(self.url, timeout=timeout)
        return samples, time.monotonic() - t0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.mark.parametrize("generation", ["9.1", "8.0"])
def test_killed_and_restarted_database_counters_resume_exactly(private_db, tmp_path, generation):
    inst = make_instance(generation, private_db.connect(), "127.0.0.1", private_db.port)
    w = inst.writer
    w.set_site_status(IHEP, "Active")  # a known site: its counters exist at zero from the first scrape
    cfg = inst.config(database={"connect_timeout": 1, "query_timeout": 2})
    server = ExporterServer(cfg, tmp_path)
    try:
        jobs = [w.submit() for _ in range(6)]
        s, _ = server.scrape()
        assert s.v("dirac_up") == 1
        for j in jobs[:2]:
            w.run_to(j, IHEP, "Done")
        s, _ = server.scrape()
        assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
        private_db.kill()
        for _ in range(2):
            s, took = server.scrape()
            assert took < 5, f"scrape with the database down took {took:.1f}s"
            assert s.v("dirac_up") == 0
            assert s.v("dirac_exporter_collector_success", collector="jobs") == 0
            assert s.v("dirac_exporter_collector_success", collector="finished") == 0
            # what was counted is still exported, unchanged
            assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
        private_db.start()
        w.conn = inst.conn = private_db.connect()
        for j in jobs[2:5]:
            w.run_to(j, IHEP, "Failed", "Application Finished With Errors")
        s, _ = server.scrape()
        assert s.v("dirac_up") == 1
        assert s.v("dirac_exporter_collector_success", collector="finished") == 1
        assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 2
        assert s.v("dirac_jobs_finished_total", site=IHEP, status="Failed") == 3
        assert s.v("dirac_jobs_failed_total", site=IHEP, reason="application_error") == 3
        assert s.v("dirac_jobs", site="ANY", status="Received") == 1
    finally:
        server.stop()


def test_database_down_at_start_then_up(tmp_path, mariadb):
    db = PrivateMariaDB()
    try:
        cfg = {"database": {"host": "127.0.0.1", "port": db.port, "user": "root", "password": "",
                            "connect_timeout": 1, "query_timeout": 2}}
        server = ExporterServer(cfg, tmp_path)
        try:
            s, took = server.scrape()
            assert s.v("dirac_up") == 0 and took < 3
            db.start()
            inst = make_instance("9.1", db.connect(), "127.0.0.1", db.port)
            server.stop()
            cfg = inst.config(database={"connect_timeout": 1, "query_timeout": 2})
            server = ExporterServer(cfg, tmp_path)
            s, _ = server.scrape()
            assert s.v("dirac_up") == 1
        finally:
            server.stop()
    finally:
        db.cleanup()


def test_statement_held_by_a_lock_times_out_others_still_report(dirac, tmp_path):
    cfg = dirac.config(database={"query_timeout": 1.5})
    server = ExporterServer(cfg, tmp_path)
    locker = pymysql.connect(host=dirac.host, port=dirac.port, user="root", password="", autocommit=False)
    try:
        dirac.writer.set_site_status(IHEP, "Banned")
        s, _ = server.scrape()
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 1
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES `{dirac.dbs.jobdb}`.Jobs WRITE")
        s, took = server.scrape()
        assert took < 8, f"scrape took {took:.1f}s with a statement held by a lock"
        assert s.v("dirac_up") == 1
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 0
        assert s.v("dirac_exporter_collector_success", collector="site_status") == 1
        assert s.v("dirac_site_status", site=IHEP, status="Banned") == 1
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        s, _ = server.scrape()
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 1
    finally:
        locker.close()
        server.stop()


def test_slow_database_fits_the_scrape_timeout_and_says_what_was_cut(dirac, tmp_path):
    """A slow (not down) JobDB: the scrape answers within Prometheus's timeout with dirac_up 1, the collectors
    that could not finish marked cut, the others reporting (issue #20 item 4)."""
    cfg = dirac.config(database={"query_timeout": 10})  # alone, 2 x query_timeout = 20 s: past any scrape_timeout
    server = ExporterServer(cfg, tmp_path)
    locker = pymysql.connect(host=dirac.host, port=dirac.port, user="root", password="", autocommit=False)
    try:
        dirac.writer.set_site_status(IHEP, "Banned")
        server.scrape()
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES `{dirac.dbs.jobdb}`.Jobs WRITE")
        req = urllib.request.Request(server.url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "4"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as resp:
            s = parse_text(resp.read().decode())
        took = time.monotonic() - t0
        assert took < 4, f"the scrape took {took:.1f} s, past Prometheus's 4 s timeout"
        assert s.v("dirac_up") == 1
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 0
        assert s.v("dirac_exporter_collector_cut", collector="jobs") == 1
        assert s.v("dirac_exporter_collector_success", collector="site_status") == 1
        assert s.v("dirac_exporter_collector_cut", collector="site_status") == 0
        assert s.v("dirac_site_status", site=IHEP, status="Banned") == 1
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        s, _ = server.scrape()
        assert s.v("dirac_exporter_collector_success", collector="jobs") == 1
        assert s.v("dirac_exporter_collector_cut", collector="jobs") == 0
    finally:
        locker.close()
        server.stop()
