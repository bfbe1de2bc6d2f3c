"""Cost: rows examined per scrape grow with active + recently changed jobs, not with the history.

History rows are bulk-inserted with MariaDB's SEQUENCE engine (finished jobs spread over 30 days); the
rows examined are the exporter connection's own Handler_read_* session counters around one scrape."""

from __future__ import annotations

from metrics_util import Exporter

HISTORY_SQL = """
INSERT INTO `{db}`.Jobs (JobID, JobGroup, Site, Owner, OwnerGroup, SubmissionTime, LastUpdateTime,
                         StartExecTime, EndExecTime, HeartBeatTime, Status, MinorStatus)
SELECT seq, '00000000', ELT(1 + seq % 5, 'BES.IHEP-PBS.cn', 'BES.UCAS.cn', 'BES.USTC.cn', 'BES.WHU.cn',
       'BES.JINR.ru'), 'bes_user', 'bes_user', t - INTERVAL 2 HOUR, t, t - INTERVAL 1 HOUR, t, t,
       IF(seq % 10 = 0, 'Failed', 'Done'), IF(seq % 10 = 0, 'Application Finished With Errors', 'Execution Complete')
FROM (SELECT seq, UTC_TIMESTAMP() - INTERVAL 1 DAY - INTERVAL (seq % 2592000) SECOND AS t
      FROM seq_{lo}_to_{hi}) AS s
"""


def rows_examined(exp: Exporter) -> int:
    rows = exp.collector.db.query("SHOW SESSION STATUS LIKE 'Handler_read%'")
    return sum(int(v) for _, v in rows)


def add_history(inst, lo: int, hi: int) -> None:
    with inst.conn.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(HISTORY_SQL.format(db=inst.dbs.jobdb, lo=lo, hi=hi))
        cur.execute("SET SESSION foreign_key_checks = 1")
        cur.execute(f"ANALYZE TABLE `{inst.dbs.jobdb}`.Jobs")


def steady_scrape_cost(inst, exp: Exporter, writes: int) -> int:
    """Rows examined by one scrape after ``writes`` jobs went through a whole life."""
    w = inst.writer
    for _ in range(writes):
        w.run_to(w.submit(), "BES.IHEP-PBS.cn", "Done")
    before = rows_examined(exp)
    s = exp.scrape()
    assert s.v("dirac_up") == 1
    return rows_examined(exp) - before - 1  # minus the SHOW itself


def test_rows_examined_independent_of_history(dirac):
    w = dirac.writer
    add_history(dirac, 1_000_000, 1_199_999)  # 200 k finished jobs
    active = [w.submit() for _ in range(200)]
    for j in active[:100]:
        w.optimize(j)
    exp = Exporter(dirac.config())
    exp.scrape()
    exp.scrape()
    small = steady_scrape_cost(dirac, exp, 20)
    add_history(dirac, 2_000_000, 2_199_999)  # twice the history
    exp.scrape()
    large = steady_scrape_cost(dirac, exp, 20)
    # active 200 + changed (20 jobs, within the overlap window) + a few index probes, not 200 k or 400 k
    print(f"rows examined per steady scrape: {small} (200 k history), {large} (400 k history)")
    assert small < 5_000, small
    assert large <= small * 1.1 + 50, (small, large)
