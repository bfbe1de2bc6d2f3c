"""The sweep of the active jobs: rows examined per scrape do not grow with the active jobs, and a status
DIRAC writes without moving LastUpdateTime (the heartbeat's Status='Running') is in the gauges within two
passes. Active jobs are bulk-inserted with MariaDB's SEQUENCE engine, last updated a day ago (never in the
window), so only the sweep reads them."""

from __future__ import annotations

import math
import time
from collections import Counter

from metrics_util import Exporter

from bes_exporter.collector import scrape_deadline
from bes_exporter.labels import site_label
from bes_exporter.scrapers.heartbeat import Heartbeat
from bes_exporter.scrapers.jobs import Jobs
from bes_exporter.scrapers.pilots import Pilots

IHEP = "BES.IHEP-PBS.cn"
SITES = ("BES.IHEP-PBS.cn", "BES.UCAS.cn", "BES.JINR.ru")
# Running, and three of the other statuses; heartbeats 600 s ago (the 900 s bucket for minutes on end).
ACTIVE_SQL = """
INSERT INTO `{db}`.Jobs (JobID, JobGroup, Site, Owner, OwnerGroup, SubmissionTime, LastUpdateTime,
                         StartExecTime, HeartBeatTime, Status, MinorStatus)
SELECT seq, '00000000', ELT(1 + seq % 3, 'BES.IHEP-PBS.cn', 'BES.UCAS.cn', 'BES.JINR.ru'), 'bes_user', 'bes_user',
       t - INTERVAL 1 HOUR, t, t, UTC_TIMESTAMP() - INTERVAL 600 SECOND,
       ELT(1 + seq % 4, 'Running', 'Waiting', 'Matched', 'Stalled'), 'bulk'
FROM (SELECT seq, UTC_TIMESTAMP() - INTERVAL 1 DAY AS t FROM seq_{lo}_to_{hi}) AS s
"""
PILOTS_SQL = """
INSERT INTO `{db}`.PilotAgents (PilotID, PilotJobReference, DestinationSite, Queue, GridSite, GridType,
                                SubmissionTime, LastUpdateTime, Status, {extra_cols})
SELECT seq, CONCAT('htcondorce://ce01.ihep.ac.cn/', seq), 'ce01.ihep.ac.cn', 'default', 'BES.IHEP-PBS.cn',
       'HTCondorCE', UTC_TIMESTAMP() - INTERVAL 1 HOUR, UTC_TIMESTAMP() - INTERVAL 1 HOUR,
       ELT(1 + seq % 3, 'Running', 'Submitted', 'Waiting'), {extra_vals}
FROM seq_1_to_{n}
"""
ROWS = 250  # rows of each sweep per scrape (jobs.resync_rows, heartbeat.rows)


def add_active(inst, lo: int, hi: int) -> None:
    with inst.conn.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(ACTIVE_SQL.format(db=inst.dbs.jobdb, lo=lo, hi=hi))
        cur.execute("SET SESSION foreign_key_checks = 1")


def add_pilots(inst, n: int) -> None:
    extra = ("VO", "'bes'") if inst.generation == "9.1" else \
        ("OwnerDN, OwnerGroup", "'/DC=cn/OU=bes/CN=pilot', 'bes_pilot'")
    with inst.conn.cursor() as cur:
        cur.execute(PILOTS_SQL.format(db=inst.dbs.pilotdb, extra_cols=extra[0], extra_vals=extra[1], n=n))


def exporter(inst) -> Exporter:
    return Exporter(inst.config(jobs={"resync_rows": ROWS}, heartbeat={"rows": ROWS}), scrapers=[Jobs, Heartbeat])


def rows_examined(exp: Exporter) -> int:
    return sum(int(v) for _, v in exp.collector.db.query("SHOW SESSION STATUS LIKE 'Handler_read%'"))


def scrape_cost(exp: Exporter) -> int:
    before = rows_examined(exp)
    assert exp.scrape().v("dirac_exporter_collector_success", collector="jobs") == 1
    return rows_examined(exp) - before - 1  # minus the SHOW itself


def group_by(inst) -> Counter:
    rows = inst.query(f"SELECT Site, Status, COUNT(*) FROM `{inst.dbs.jobdb}`.Jobs WHERE Status IN"
                      " ('Running', 'Waiting', 'Matched', 'Stalled', 'Received', 'Completing') GROUP BY Site, Status")
    return Counter({(site_label(site), status): n for site, status, n in rows})


def passes(inst) -> int:
    """Scrapes a pass of the slower sweep takes (the Running/Completing one and the other statuses')."""
    (running,), = inst.query(f"SELECT COUNT(*) FROM `{inst.dbs.jobdb}`.Jobs WHERE Status IN ('Running', 'Completing')")
    (other,), = inst.query(f"SELECT COUNT(*) FROM `{inst.dbs.jobdb}`.Jobs WHERE Status NOT IN"
                           " ('Running', 'Completing', 'Done', 'Failed', 'Killed', 'Completed', 'Deleted')")
    return max(math.ceil((running + 1) / ROWS), math.ceil((other + 1) / ROWS))


def test_rows_per_scrape_do_not_grow_with_active_jobs(dirac):
    add_active(dirac, 1_000_001, 1_002_000)  # 2 k active
    exp = exporter(dirac)
    exp.scrape()  # the baseline reads them all, once
    small = sorted(scrape_cost(exp) for _ in range(5))[2]
    add_active(dirac, 1_002_001, 1_020_000)  # 20 k active
    for _ in range(2 * passes(dirac)):  # the sweeps find the new ones
        exp.scrape()
    s = exp.scrape()
    assert s.nonzero("dirac_jobs", "site", "status") == group_by(dirac)
    large = sorted(scrape_cost(exp) for _ in range(5))[2]
    print(f"rows examined per scrape: {small} (2 k active), {large} (20 k active)")
    assert small < 3 * ROWS, small  # the two sweeps' pages and a few index probes, not 2 k
    assert large <= small * 1.1 + 50, (small, large)


def test_status_written_without_last_update_time_shows_within_two_passes(dirac):
    """DIRAC's heartbeat sets Status='Running' without LastUpdateTime, on a Done job and on a Stalled one."""
    add_active(dirac, 1_000_001, 1_003_000)
    w = dirac.writer
    done = w.submit()
    w.run_to(done, IHEP, "Done")
    stalled = next(j for j in range(1_000_001, 1_000_020) if j % 4 == 3)  # ELT(1 + seq % 4, ...): Stalled
    exp = exporter(dirac)
    exp.scrape()
    exp.scrape()
    w.heartbeat(done)
    w.heartbeat(stalled)
    assert dirac.query(f"SELECT COUNT(*) FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID IN (%s, %s) AND Status = 'Running'",
                       (done, stalled)) == ((2,),)
    want = group_by(dirac)
    bound = 2 * passes(dirac) + 1
    seen = []
    for _ in range(bound):
        s = exp.scrape()
        seen.append(s.nonzero("dirac_jobs", "site", "status") == want)
    assert seen[-1], f"dirac_jobs differs from GROUP BY {bound} scrapes after the write"
    assert all(seen[seen.index(True):]), seen  # and stays equal
    # the heartbeat ages of the Running jobs as last read: the bulk ones 600 s old, the two beaten now
    running = {site: n for (site, status), n in want.items() if status == "Running"}
    for site in SITES:
        beaten = int(site == IHEP) + int(site == site_label(SITES[stalled % 3]))
        assert s.v("dirac_running_jobs_heartbeat_age_seconds_gcount", site=site) == running[site]
        assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=site, le="300") == beaten
        assert s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=site, le="900") == running[site]


def test_first_read_cut_by_the_scrape_timeout_goes_on_at_the_next_scrape(dirac):
    """The first scrape reads every active job; cut to fit Prometheus's scrape timeout, the next scrapes go on
    from where it stopped (never from the start again) and the gauges appear once it is complete."""
    add_active(dirac, 1_000_001, 1_030_000)
    add_pilots(dirac, 30_000)
    exp = Exporter(dirac.config(jobs={"page_rows": 100}), scrapers=[Jobs, Pilots])  # 300 statements each
    seen = []
    for _ in range(60):
        with scrape_deadline(time.monotonic() + 0.2):
            s = exp.scrape()
        seen.append(tuple(s.v(f"dirac_exporter_collector_{what}", collector=name)
                          for name in ("jobs", "pilots") for what in ("success", "cut")))
        if seen[-1] == (1, 0, 1, 0):
            break
    assert seen[0][:2] == (0, 1), seen  # cut, not failed
    assert seen[-1] == (1, 0, 1, 0), f"the first read never completed in {len(seen)} scrapes cut at 0.2 s"
    assert s.nonzero("dirac_jobs", "site", "status") == group_by(dirac)
    assert s.nonzero("dirac_pilots", "site", "ce", "status") == {
        ("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn", status): 10_000 for status in ("Running", "Submitted", "Waiting")}
