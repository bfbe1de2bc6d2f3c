"""DiracWriter's journaled transactions: a transient MariaDB error rolls the transaction back (a lock wait
timeout here, standing for a deadlock or a full lock table while the buffer pool shrinks); the writer
replays what the transaction had written, with the same AUTO_INCREMENT ids, and retries the statement,
so a long-running simulator loses nothing and does not die."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest
from dirac_instance import drop_instance, make_instance, root_conn


@pytest.fixture
def inst(mariadb):
    i = make_instance("8.0")
    yield i
    drop_instance(i)


def _count(inst, sql: str, args=()) -> int:
    return inst.query(sql.format(job=inst.dbs.jobdb, pilot=inst.dbs.pilotdb, log=inst.dbs.logdb), args)[0][0]


def test_a_rolled_back_transaction_is_replayed_and_the_statement_retried(inst):
    w = inst.writer
    old = w.submit(site="BES.USTC.cn")  # committed (autocommit): the row another session will lock
    with inst.conn.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
    locker = root_conn()
    released = threading.Event()

    def hold_the_row() -> None:
        with locker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT JobID FROM `{inst.dbs.jobdb}`.Jobs WHERE JobID=%s FOR UPDATE", (old,))
            time.sleep(2.5)  # longer than the lock wait timeout: the writer's first attempt fails
            cur.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=hold_the_row)
    w.begin()
    new = w.submit(site="BES.WHU.cn")  # written before the failure: must survive it exactly once
    pilot = w.site_director_submit("BES.WHU.cn", "ce01.whu.edu.cn", "bes", "HTCondorCE")
    thread.start()
    time.sleep(0.3)
    w.set_status(old, "Running", "Job Initialization")  # waits, times out, is retried after the replay
    w.commit()
    thread.join(10)
    locker.close()
    assert released.is_set() and w.recovered >= 1 and w.journal is None
    assert _count(inst, "SELECT COUNT(*) FROM `{job}`.Jobs WHERE JobID=%s AND Site='BES.WHU.cn'", (new,)) == 1
    assert _count(inst, "SELECT COUNT(*) FROM `{job}`.JobJDLs WHERE JobID=%s", (new,)) == 1
    assert _count(inst, "SELECT COUNT(*) FROM `{log}`.LoggingInfo WHERE JobID=%s", (new,)) == 1
    assert _count(inst, "SELECT COUNT(*) FROM `{pilot}`.PilotAgents WHERE PilotID=%s AND GridSite='BES.WHU.cn'",
                  (pilot,)) == 1
    assert _count(inst, "SELECT COUNT(*) FROM `{job}`.Jobs WHERE JobID=%s AND Status='Running'", (old,)) == 1
    assert _count(inst, "SELECT COUNT(*) FROM `{log}`.LoggingInfo WHERE JobID=%s", (old,)) == 2


def test_outside_a_journaled_transaction_errors_are_not_hidden(inst):
    w = inst.writer
    with pytest.raises(pymysql.err.ProgrammingError):
        w._x("SELECT * FROM no_such_table_anywhere")  # not transient: raised at once, never retried
    assert w.recovered == 0
