"""The pilots scraper on DIRAC's real schemas (both generations): gauge, exact finished counters after
scripted transitions (including an insert that commits out of PilotID order), oldest waiting age, and
rows examined independent of the pilot history."""

from __future__ import annotations

import datetime as dt

import pymysql
from metrics_util import Exporter

from bes_exporter.scrapers import SCRAPERS
from bes_exporter.scrapers.pilots import Pilots
from bes_simulator.writer import DiracWriter

IHEP, UCAS = "BES.IHEP-PBS.cn", "BES.UCAS.cn"
CE1, CE2 = "ce01.ihep.ac.cn", "ce02.ucas.ac.cn"
FINAL = ("Done", "Failed", "Aborted", "Deleted")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def pilots_exporter(inst) -> Exporter:
    return Exporter(inst.config(), scrapers=[Pilots])


def test_pilot_gauge_counters_and_oldest_waiting(dirac):
    w = dirac.writer
    now = utcnow()
    history = w.submit_pilot(IHEP, CE1)
    w.set_pilot_status(history, "Done")  # ended before the baseline: never counted
    running = w.submit_pilot(IHEP, CE1)
    w.set_pilot_status(running, "Running")
    waiting = w.submit_pilot(IHEP, CE1, when=now - dt.timedelta(seconds=600))
    w.set_pilot_status(waiting, "Waiting")
    scheduled = w.submit_pilot(UCAS, CE2, status="Scheduled")
    exp = pilots_exporter(dirac)
    s = exp.scrape()
    assert s.v("dirac_exporter_collector_success", collector="pilots") == 1
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Running") == 1
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Waiting") == 1
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Submitted") == 0
    assert s.v("dirac_pilots", site=UCAS, ce=CE2, status="Submitted") == 1  # Scheduled reads as Submitted
    for status in FINAL:
        assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status=status) == 0
    assert 595 <= s.v("dirac_pilot_oldest_waiting_seconds", site=IHEP, ce=CE1) <= 700
    assert 0 <= s.v("dirac_pilot_oldest_waiting_seconds", site=UCAS, ce=CE2) <= 60

    w.set_pilot_status(running, "Done")  # active -> final: primary-key lookup
    w.set_pilot_status(waiting, "Failed")
    second = utcnow()
    born_dead = w.submit_pilot(IHEP, CE1, when=second)  # born and ended between two scrapes
    w.set_pilot_status(born_dead, "Aborted", when=second)
    for _ in range(2):  # same second
        p = w.submit_pilot(IHEP, CE1, when=second)
        w.set_pilot_status(p, "Done", when=second)
    fresh = w.submit_pilot(IHEP, CE1)
    w.set_pilot_status(fresh, "Running")
    w.set_pilot_status(scheduled, "Deleted")
    s = exp.scrape()
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Done") == 3
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Failed") == 1
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Aborted") == 1
    assert s.v("dirac_pilots_finished_total", site=UCAS, ce=CE2, status="Deleted") == 1
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Running") == 1
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Waiting") == 0
    assert s.v("dirac_pilot_oldest_waiting_seconds", site=IHEP, ce=CE1) == 0
    assert s.v("dirac_pilots", site=UCAS, ce=CE2, status="Submitted") == 0

    s = exp.scrape()  # re-reading the last newcomers counts nothing twice
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Done") == 3
    w.set_pilot_status(fresh, "Done")
    w.set_pilot_status(running, "Running")  # a counted pilot reported again, then final again:
    s = exp.scrape()
    w.set_pilot_status(running, "Done")  # each pilot once
    s = exp.scrape()
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Done") == 4
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Aborted") == 1


def test_pilot_committed_out_of_id_order_is_counted(dirac):
    w = dirac.writer
    exp = pilots_exporter(dirac)
    exp.scrape()
    late = pymysql.connect(host=dirac.conn.host, port=dirac.conn.port, user="root", password="", autocommit=False)
    try:
        with late.cursor() as cur:  # takes the lower PilotID, commits after a later insert
            other = DiracWriter(late, dirac.dbs)
            slow = other.submit_pilot(IHEP, CE1)
            fast = w.submit_pilot(IHEP, CE1)
            assert slow < fast
            s = exp.scrape()
            assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Submitted") == 1
            cur.execute(f"UPDATE `{dirac.dbs.pilotdb}`.PilotAgents SET Status='Aborted' WHERE PilotID=%s", (slow,))
        late.commit()
    finally:
        late.close()
    s = exp.scrape()
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Aborted") == 1
    s = exp.scrape()
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Aborted") == 1


def test_pilots_with_every_scraper_on(dirac):
    w = dirac.writer
    p = w.submit_pilot(IHEP, CE1)
    exp = Exporter(dirac.config())
    exp.scrape()
    w.set_pilot_status(p, "Failed")
    s = exp.scrape()
    assert s.v("dirac_exporter_collector_success", collector="pilots") == 1
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Failed") == 1
    hosts_ok = 0 if dirac.generation == "9.1" else 1
    assert s.v("dirac_exporter_collector_success", collector="hosts") == hosts_ok
    assert {cls.name for cls in SCRAPERS} >= {"hosts", "pilots"}


HISTORY_SQL = """
INSERT INTO `{db}`.PilotAgents (PilotID, PilotJobReference, DestinationSite, Queue, GridSite, GridType,
                                SubmissionTime, LastUpdateTime, Status, {extra_cols})
SELECT seq, CONCAT('htcondorce://', ELT(1 + seq % 3, 'ce01.ihep.ac.cn', 'ce02.ucas.ac.cn', 'ce03.whu.edu.cn'),
       '/', seq), ELT(1 + seq % 3, 'ce01.ihep.ac.cn', 'ce02.ucas.ac.cn', 'ce03.whu.edu.cn'), 'default',
       ELT(1 + seq % 3, 'BES.IHEP-PBS.cn', 'BES.UCAS.cn', 'BES.WHU.cn'), 'HTCondorCE',
       UTC_TIMESTAMP() - INTERVAL seq SECOND, UTC_TIMESTAMP() - INTERVAL seq SECOND,
       ELT(1 + seq % 4, 'Done', 'Failed', 'Aborted', 'Deleted'), {extra_vals}
FROM seq_1_to_{n}
"""


def rows_examined(exp: Exporter) -> int:
    return sum(int(v) for _, v in exp.collector.db.query("SHOW SESSION STATUS LIKE 'Handler_read%'"))


def test_pilot_rows_examined_independent_of_history(dirac):
    extra = ("VO", "'bes'") if dirac.generation == "9.1" else \
        ("OwnerDN, OwnerGroup", "'/DC=cn/OU=bes/CN=pilot', 'bes_pilot'")
    with dirac.conn.cursor() as cur:
        cur.execute(HISTORY_SQL.format(db=dirac.dbs.pilotdb, extra_cols=extra[0], extra_vals=extra[1], n=40_000))
        cur.execute(f"ANALYZE TABLE `{dirac.dbs.pilotdb}`.PilotAgents")
    w = dirac.writer
    active = [w.submit_pilot(IHEP, CE1) for _ in range(20)]
    exp = pilots_exporter(dirac)
    exp.scrape()
    exp.scrape()
    for p in active[:5]:
        w.set_pilot_status(p, "Done")
    for _ in range(5):
        w.set_pilot_status(w.submit_pilot(UCAS, CE2), "Aborted")
    before = rows_examined(exp)
    s = exp.scrape()
    cost = rows_examined(exp) - before
    assert s.v("dirac_pilots_finished_total", site=IHEP, ce=CE1, status="Done") == 5
    assert s.v("dirac_pilots_finished_total", site=UCAS, ce=CE2, status="Aborted") == 0  # a new CE starts at 0
    assert s.v("dirac_pilots", site=IHEP, ce=CE1, status="Submitted") == 15
    s = exp.scrape()
    assert s.v("dirac_pilots_finished_total", site=UCAS, ce=CE2, status="Aborted") == 5
    print(f"pilot scrape rows examined with 40 k pilots of history: {cost}")
    assert cost < 300, cost  # 15 active + 5 new (read twice) + 5 lookups + index probes, not 40 k
