"""DIRAC's real schema files load into MariaDB, and the writer writes rows the way DIRAC does."""

from dirac_db.schema import statements


def test_statements_skip_use_and_comments():
    sql = "-- c\nUSE JobDB;\nCREATE TABLE a (x INT);\n-- end\n"
    assert statements(sql) == ["CREATE TABLE a (x INT)"]


def test_both_generations_load(dirac):
    tables = {r[0] for r in dirac.query(f"SHOW TABLES FROM `{dirac.dbs.jobdb}`")}
    assert {"Jobs", "JobJDLs", "HeartBeatLoggingInfo"} <= tables
    assert ("JobParameters" in tables) == (dirac.generation == "8.0")
    assert ("SiteMask" in tables) == (dirac.generation == "8.0")
    keys = {r[2] for r in dirac.query(f"SHOW INDEX FROM `{dirac.dbs.jobdb}`.Jobs")}
    assert {"StatusSite", "LastUpdateTime"} <= keys


def test_writer_heartbeat_forces_running_without_moving_lut(dirac):
    w = dirac.writer
    job = w.submit()
    w.run_to(job, "BES.IHEP-PBS.cn", "Done", host="wn001.ihep.ac.cn")
    (lut_before,) = dirac.query(f"SELECT LastUpdateTime FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s", (job,))[0]
    w.heartbeat(job)
    status, lut = dirac.query(f"SELECT Status, LastUpdateTime FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s",
                              (job,))[0]
    assert status == "Running" and lut == lut_before
    n_log = dirac.query(f"SELECT COUNT(*) FROM `{dirac.dbs.logdb}`.LoggingInfo WHERE JobID=%s", (job,))[0][0]
    assert n_log == 6  # submit, Checking, Waiting, Matched, Running, Done
    pilot = w.submit_pilot("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
    w.set_pilot_status(pilot, "Aborted", "Job aborted")
    assert dirac.query(f"SELECT Status FROM `{dirac.dbs.pilotdb}`.PilotAgents")[0][0] == "Aborted"
