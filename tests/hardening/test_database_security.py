"""The exporter's database access: the documented least-privilege account (SELECT on the scrapers' tables
only, MAX_USER_CONNECTIONS) on both schema generations, and TLS to a private MariaDB with its own CA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pymysql
import pytest
import yaml
from dirac_instance import make_instance
from hardening_util import ROOT, CliExporter, MonitorAccount, make_pki
from private_mariadb import PrivateMariaDB

IHEP, USTC = "BES.IHEP-PBS.cn", "BES.USTC.cn"
COLLECTORS = ("jobs", "site_status", "finished", "wait", "heartbeat", "hosts", "owners", "pilots")


def expected_success(generation: str) -> dict[str, float]:
    # DIRAC 9.1 has no JobParameters table: the hosts collector fails by design (docs/metrics.md)
    return {c: 0.0 if (c == "hosts" and generation == "9.1") else 1.0 for c in COLLECTORS}


def test_exporter_under_the_least_privilege_account(dirac, tmp_path):
    acct = MonitorAccount(dirac.conn, dirac.dbs, dirac.generation, max_connections=1)
    w = dirac.writer
    try:
        w.set_site_status(IHEP, "Active")
        w.set_site_status(USTC, "Banned")
        jobs = [w.submit() for _ in range(5)]
        pilot = w.submit_pilot(IHEP, "ce01.ihep.ac.cn")
        cfg = dirac.config(database={"user": acct.user, "password": None,
                                     "password_file": str(acct.password_file(tmp_path))})
        exp = CliExporter(cfg, tmp_path)
        try:
            s, _ = exp.scrape()
            assert s.v("dirac_up") == 1
            w.run_to(jobs[0], IHEP, "Done", host="wn01.ihep.ac.cn")
            w.run_to(jobs[1], IHEP, "Failed", "Application Finished With Errors", host="wn01.ihep.ac.cn")
            w.set_pilot_status(pilot, "Done")
            s, _ = exp.scrape()
            s, _ = exp.scrape()  # the hosts collector looks host names up one collection later at most
            assert {c: s.v("dirac_exporter_collector_success", collector=c) for c in COLLECTORS} \
                == expected_success(dirac.generation)
            assert s.v("dirac_jobs_finished_total", site=IHEP, status="Done") == 1
            assert s.v("dirac_jobs_failed_total", site=IHEP, reason="application_error") == 1
            assert s.v("dirac_owner_jobs_finished_total", site=IHEP, owner="bes_user", owner_group="bes_user",
                       status="Done") == 1
            assert s.v("dirac_site_status", site=USTC, status="Banned") == 1
            assert s.v("dirac_pilots_finished_total", site=IHEP, ce="ce01.ihep.ac.cn", status="Done") == 1
            if dirac.generation == "8.0":
                assert s.v("dirac_host_jobs_finished_total", site=IHEP, host="wn01.ihep.ac.cn", status="Done") == 1

            # the exporter holds exactly one connection: MAX_USER_CONNECTIONS 1 refuses a second one
            with pytest.raises(pymysql.err.OperationalError) as err:
                acct.connect(dirac.port)
            assert err.value.args[0] == 1226  # ER_USER_LIMIT_REACHED
            assert exp.scrape()[0].v("dirac_up") == 1
        finally:
            exp.stop()
        assert "Traceback" not in exp.log()

        # writes and tables outside the grant are refused for that account
        conn = acct.connect(dirac.port)
        jobdb, logdb = f"`{dirac.dbs.jobdb}`", f"`{dirac.dbs.logdb}`"
        try:
            for sql in (f"UPDATE {jobdb}.Jobs SET Status='Killed' WHERE JobID={jobs[2]}",
                        f"DELETE FROM {jobdb}.Jobs WHERE JobID={jobs[2]}",
                        f"INSERT INTO {jobdb}.Jobs (JobID) VALUES (999999)",
                        f"CREATE TABLE {jobdb}.evil (x INT)",
                        f"SELECT COUNT(*) FROM {jobdb}.JobJDLs",
                        f"SELECT COUNT(*) FROM {jobdb}.HeartBeatLoggingInfo",
                        f"DELETE FROM {logdb}.LoggingInfo",
                        f"LOCK TABLES {jobdb}.Jobs WRITE"):
                with pytest.raises((pymysql.err.OperationalError, pymysql.err.ProgrammingError)) as err:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                assert err.value.args[0] in (1044, 1142, 1143), (sql, err.value.args)
        finally:
            conn.close()
        assert dirac.query(f"SELECT Status FROM {jobdb}.Jobs WHERE JobID=%s", (jobs[2],))[0][0] == "Received"
    finally:
        acct.drop()


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory, mariadb):
    """A private MariaDB serving TLS with a self-made CA; accounts ``tls_user`` (REQUIRE SSL) and
    ``x509_user`` (REQUIRE X509), both with the least-privilege grants on a DIRAC 9.1 instance."""
    db = PrivateMariaDB()
    pki = make_pki(db.dir / "tls")
    subprocess.run(["chown", "-R", "mysql:mysql", str(db.dir / "tls")], check=True, timeout=30)
    db.extra = [f"--ssl-ca={pki['ca']}", f"--ssl-cert={pki['server_cert']}", f"--ssl-key={pki['server_key']}"]
    try:
        db.start()
        inst = make_instance("9.1", db.connect(), "127.0.0.1", db.port)
        inst.writer.set_site_status(IHEP, "Active")
        accounts = {req: MonitorAccount(inst.conn, inst.dbs, "9.1", require=req)
                    for req in ("REQUIRE SSL", "REQUIRE X509")}
        client = tmp_path_factory.mktemp("db-client")
        for key in ("ca", "client_cert", "client_key"):  # the exporter's copies, readable by it only
            shutil.copy(pki[key], client / pki[key].name)
            os.chmod(client / pki[key].name, 0o600)
        yield db, inst, accounts, {k: client / pki[k].name for k in ("ca", "client_cert", "client_key")}
    finally:
        db.cleanup()


def run_once(cfg: dict, tmp_path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "bes_exporter", "--config.file", str(path), "--once"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_tls_to_mariadb_with_a_self_made_ca(tls_mariadb, tmp_path):
    db, inst, accounts, files = tls_mariadb
    other = make_pki(tmp_path / "other")

    def cfg(account: MonitorAccount, **ssl) -> dict:
        return inst.config(database={"user": account.user, "password": account.password, "connect_timeout": 3,
                                     "ssl": {k: str(v) for k, v in ssl.items()}})

    tls_user, x509_user = accounts["REQUIRE SSL"], accounts["REQUIRE X509"]
    ok = run_once(cfg(tls_user, ca=files["ca"]), tmp_path, "ok")
    assert ok.returncode == 0, ok.stderr
    assert "dirac_up 1.0" in ok.stdout
    assert 'dirac_exporter_collector_success{collector="site_status"} 1.0' in ok.stdout
    assert 'dirac_site_status{site="BES.IHEP-PBS.cn",status="Active"} 1.0' in ok.stdout

    plain = run_once(cfg(tls_user), tmp_path, "plain")  # the account requires TLS, the exporter has none
    assert plain.returncode == 1 and "dirac_up 0.0" in plain.stdout
    assert "Access denied" in plain.stderr and "set database.ssl" in plain.stderr
    assert "Traceback" not in plain.stderr and tls_user.password not in plain.stderr

    wrong_ca = run_once(cfg(tls_user, ca=other["ca"]), tmp_path, "wrong-ca")  # an impostor server's CA
    assert wrong_ca.returncode == 1 and "certificate verify failed" in wrong_ca.stderr.lower()

    mutual = run_once(cfg(x509_user, ca=files["ca"], cert=files["client_cert"], key=files["client_key"]),
                      tmp_path, "x509")
    assert mutual.returncode == 0, mutual.stderr
    no_cert = run_once(cfg(x509_user, ca=files["ca"]), tmp_path, "x509-no-cert")
    assert no_cert.returncode == 1 and "Access denied" in no_cert.stderr

    # the same TLS session as the exporter's, opened by hand, is really encrypted
    from dirac_db.connection import ssl_context

    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=tls_user.user, password=tls_user.password,
                           ssl=ssl_context({"ca": str(files["ca"])}), connect_timeout=3)
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert cur.fetchone()[1] in ("TLSv1.2", "TLSv1.3")
    conn.close()


@pytest.mark.parametrize("ssl,words", [
    ({"key": "KEY"}, ["'database.ssl.key' needs 'database.ssl.cert'"]),
    ({"ca": "/nonexistent/ca.pem"}, ["'database.ssl.ca'", "No such file"]),
    ({"ca": "KEY"}, ["'database.ssl' files do not load"]),
    ({"ca": "CA", "cert": "CERT", "key": "CA"}, ["'database.ssl' files do not load"]),
])
def test_bad_database_ssl_is_one_line_exit_2(ssl, words, tmp_path):
    pki = make_pki(tmp_path / "pki")
    names = {"KEY": pki["client_key"], "CA": pki["ca"], "CERT": pki["client_cert"]}
    cfg = {"database": {"ssl": {k: str(names.get(v, v)) for k, v in ssl.items()}}}
    proc = run_once(cfg, tmp_path, "bad")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
