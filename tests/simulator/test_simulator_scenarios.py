"""A short accelerated run of bes-simulate on the real MariaDB: the state distribution DIRAC would show,
and each fault's signature in DIRAC's own tables."""

from __future__ import annotations

import datetime as dt
import json
import os
import random

import pytest
from sim_helpers import SMALL, SPEED, Run, run_cli

from bes_simulator import report
from bes_simulator.engine import Engine
from bes_simulator.scenarios import Scenario, parse_spec
from bes_simulator.topology import load_topology

USTC, JINR, UCAS, WHU, SJTU, IHEP = ("BES.USTC.cn", "BES.JINR.ru", "BES.UCAS.cn", "BES.WHU.cn", "BES.SJTU.cn",
                                     "GRID.IHEP.cn")
BLACK_HOLE = "wn03.ustc.edu.cn"


@pytest.fixture
def old(runs) -> Run:
    return runs["old"]


@pytest.fixture
def new(runs) -> Run:
    return runs["new"]


def _one(run: Run, sql: str, args=()):
    return run.query(sql, args)[0][0]


def test_state_distribution_of_a_healthy_site(old):
    by_status = dict(old.query("SELECT Status, COUNT(*) FROM {job}.Jobs WHERE Site=%s GROUP BY Status", (IHEP,)))
    finished = by_status.get("Done", 0) + by_status.get("Completed", 0)
    assert finished >= 30 and by_status.get("Running", 0) >= 10
    assert by_status.get("Failed", 0) <= 0.1 * (finished + by_status.get("Failed", 0))
    assert "Stalled" not in by_status
    waiting = _one(old, "SELECT COUNT(*) FROM {job}.Jobs WHERE Status='Waiting'")
    assert waiting > 0
    pilots = dict(old.query("SELECT Status, COUNT(*) FROM {pilot}.PilotAgents WHERE GridSite=%s GROUP BY 1", (IHEP,)))
    assert pilots.get("Running", 0) >= 20 and pilots.get("Done", 0) > 0
    # Every started job has its worker node (old schema), heartbeats and a LoggingInfo history.
    missing_host = _one(old, "SELECT COUNT(*) FROM {job}.Jobs j LEFT JOIN {job}.JobParameters p ON p.JobID=j.JobID"
                             " AND p.Name='HostName' WHERE j.StartExecTime IS NOT NULL AND p.Value IS NULL")
    assert missing_host == 0
    names = {r[0] for r in old.query("SELECT DISTINCT Name FROM {job}.HeartBeatLoggingInfo")}
    assert names == {"LoadAverage", "MemoryUsed", "Vsize", "AvailableDiskSpace", "CPUConsumed", "WallClockTime"}
    done = old.query("SELECT JobID, MinorStatus, ApplicationStatus, StartExecTime <= EndExecTime FROM {job}.Jobs "
                     "WHERE Status='Done' LIMIT 20")
    assert all(r[1:] == ("Execution Complete", "Job Finished Successfully", 1) for r in done)
    steps = [r[0] for r in old.query("SELECT Status FROM {log}.LoggingInfo WHERE JobID=%s ORDER BY SeqNum",
                                     (done[0][0],))]
    assert steps[:5] == ["Received", "Checking", "Waiting", "Matched", "Running"] and steps[-1] == "Done"


def test_nothing_is_written_in_the_future_of_the_database_clock(old):
    row = old.query("SELECT UTC_TIMESTAMP(), MAX(SubmissionTime), MAX(LastUpdateTime), MAX(HeartBeatTime),"
                    " MAX(EndExecTime) FROM {job}.Jobs")[0]
    assert all(t <= row[0] for t in row[1:])
    assert _one(old, "SELECT MAX(LastUpdateTime) <= UTC_TIMESTAMP() FROM {pilot}.PilotAgents") == 1
    assert _one(old, "SELECT MAX(StatusTime) <= UTC_TIMESTAMP() FROM {log}.LoggingInfo") == 1
    # 7 simulated hours at 100x span about 252 s of database time.
    span = _one(old, "SELECT TIMESTAMPDIFF(SECOND, MIN(SubmissionTime), MAX(LastUpdateTime)) FROM {job}.Jobs")
    assert 230 <= span <= 260


def test_black_hole_host_fails_jobs_within_seconds(old):
    rows = old.query("SELECT j.Status, j.MinorStatus, TIMESTAMPDIFF(SECOND, j.StartExecTime, j.EndExecTime)"
                     " FROM {job}.Jobs j JOIN {job}.JobParameters p ON p.JobID=j.JobID AND p.Name='HostName'"
                     " WHERE p.Value=%s AND j.StartExecTime >= %s", (BLACK_HOLE, old.utc(3600)))
    failed = [r for r in rows if r[0] == "Failed"]
    assert len(failed) >= 5 and len(failed) == len([r for r in rows if r[0] in ("Done", "Failed")])
    assert all(r[1] == "Application Finished With Errors" for r in failed)
    assert all(r[2] <= 120 / SPEED + 1 for r in failed)  # fails within fail_after (<= 60 s) + Completing
    others = _one(old, "SELECT AVG(j.Status='Failed') FROM {job}.Jobs j JOIN {job}.JobParameters p ON "
                       "p.JobID=j.JobID AND p.Name='HostName' WHERE j.Site=%s AND p.Value<>%s AND "
                       "j.Status IN ('Done', 'Failed')", (USTC, BLACK_HOLE))
    assert others <= 0.1
    sc = old.scenario("black-hole-host")
    assert sc["milestones"]["host_failed_jobs_1"]["host"] == BLACK_HOLE
    assert len(sc["host_failures_sim"]) == len(failed)


def test_heartbeat_loss_stalls_then_fails_jobs_per_stalled_job_agent(old):
    sc = old.scenario("heartbeat-loss")
    cut = old.utc(sc["started"]["sim"])
    jobs = old.query("SELECT JobID, Status, MinorStatus, HeartBeatTime FROM {job}.Jobs WHERE Site=%s AND "
                     "StartExecTime < %s AND (EndExecTime IS NULL OR EndExecTime > %s)", (JINR, cut, cut))
    assert len(jobs) >= 8
    for job_id, status, minor, hb in jobs:
        assert hb <= cut  # HeartBeatTime stopped advancing at the cut
        assert (status, minor) == ("Failed", "Stalling for more than 11700 sec")
        log = old.query("SELECT Status, StatusTime FROM {log}.LoggingInfo WHERE JobID=%s ORDER BY SeqNum", (job_id,))
        stalled = next(t for s, t in log if s == "Stalled")
        failed = next(t for s, t in log if s == "Failed")
        last_sign = max(hb, max(t for s, t in log if s not in ("Stalled", "Failed")))
        assert (stalled - last_sign).total_seconds() >= 4500 / SPEED - 1
        assert (failed - stalled).total_seconds() >= 11700 / SPEED - 1
    assert _one(old, "SELECT COUNT(*) FROM {job}.Jobs WHERE Site=%s AND Status IN ('Running','Stalled')", (JINR,)) == 0
    # Jobs for the site pile up and its pilots look Running forever (PilotAgentsDB cannot be updated).
    assert _one(old, "SELECT COUNT(*) FROM {job}.Jobs WHERE Site=%s AND Status='Waiting'", (JINR,)) > 0
    assert _one(old, "SELECT MAX(LastUpdateTime) FROM {pilot}.PilotAgents WHERE GridSite=%s", (JINR,)) <= cut
    expected, acted = sc["dirac_expected"], sc["dirac_actions"]
    assert expected["StalledJobAgent:Stalled"]["sim"] - sc["started"]["sim"] <= 4500
    assert acted["StalledJobAgent:Stalled"]["sim"] >= expected["StalledJobAgent:Stalled"]["sim"]
    assert acted["StalledJobAgent:Failed"]["sim"] >= acted["StalledJobAgent:Stalled"]["sim"] + 11700


def test_no_matching_site_stops_starting_jobs(old):
    start = old.utc(old.scenario("no-matching")["started"]["sim"])
    matched_after = _one(old, "SELECT COUNT(*) FROM {log}.LoggingInfo l JOIN {job}.Jobs j ON j.JobID=l.JobID WHERE "
                              "j.Site=%s AND l.Status='Matched' AND l.StatusTime > %s", (UCAS, start))
    assert matched_after == 0
    assert _one(old, "SELECT COUNT(*) FROM {job}.Jobs WHERE Site=%s AND Status='Waiting'", (UCAS,)) >= 3
    # Its pilots keep coming, match nothing and finish: empty pilots.
    empty = _one(old, "SELECT COUNT(*) FROM {pilot}.PilotAgents WHERE GridSite=%s AND SubmissionTime > %s AND "
                      "CurrentJobID=0 AND Status='Done'", (UCAS, start))
    assert empty >= 10


def test_pilot_abort_ramps_up_on_one_ce(old):
    sc = old.scenario("pilot-abort")
    start, end = sc["started"]["sim"], 7 * 3600

    def share(a: float, b: float) -> float:
        rows = old.query("SELECT Status FROM {pilot}.PilotAgents WHERE DestinationSite=%s AND SubmissionTime >= %s"
                         " AND SubmissionTime < %s", ("ce01.whu.edu.cn", old.utc(a), old.utc(b)))
        return sum(1 for (s,) in rows if s == "Aborted") / max(1, len(rows))

    assert share(0, start) < 0.1
    assert share(start + 2 * 3600, end - 3600) > 0.9  # the ramp (2 h) has reached 100 %
    assert any(k.startswith("RSS:PilotEfficiency") for k in sc["dirac_actions"])
    # The other sites' CEs keep their pilots.
    assert _one(old, "SELECT AVG(Status='Aborted') FROM {pilot}.PilotAgents WHERE DestinationSite<>%s",
                ("ce01.whu.edu.cn",)) < 0.05


def test_pilot_abort_ratio_ramps_linearly():
    topo = load_topology(SMALL)
    engine = Engine(topo, None, None, random.Random(1), None, [])
    ce = topo.ce("ce01.whu.edu.cn")
    engine.aborting[ce] = Scenario(parse_spec("pilot-abort@1h"), site=ce.site, ce=ce)
    base = topo.pilots["abort_rate"]
    ratios = []
    for t in (3600, 3600 + 3600, 3600 + 7200, 3600 + 20000):
        engine.now = t
        ratios.append(engine._abort_ratio(ce))
    assert ratios == pytest.approx([base, base + (1 - base) / 2, 1.0, 1.0])
    assert engine._abort_ratio(topo.ce("ce01.ihep.ac.cn")) == base


def test_cvmfs_broken_is_probe_only(old):
    sc = old.scenario("cvmfs-broken")
    start = old.utc(sc["started"]["sim"])
    rows = dict(old.query("SELECT Status, COUNT(*) FROM {job}.Jobs WHERE Site=%s AND EndExecTime > %s GROUP BY 1",
                          (SJTU, start)))
    assert rows.get("Done", 0) >= 5 and rows.get("Failed", 0) <= 0.1 * sum(rows.values())
    root = old.state / "cvmfs"
    assert json.loads((root / "status.json").read_text())[SJTU] == "broken"
    with pytest.raises(OSError):
        os.listdir(root / SJTU / "boss.cern.ch")
    assert "README" in os.listdir(root / IHEP / "boss.cern.ch")
    assert sc["dirac_rules"] == ["none: no DIRAC mechanism reacts to this fault"] and not sc["dirac_actions"]


def test_site_mask_rows_old_schema(old):
    mask = dict(old.query("SELECT Site, Status FROM {job}.SiteMask"))
    assert set(mask) == {USTC, JINR, UCAS, WHU, SJTU, IHEP}
    # RSS JobEfficiency is off by default (stock DIRAC never feeds its job cache): every job at JINR failed and
    # the black hole failed many at USTC, yet no site is banned.
    assert set(mask.values()) == {"Active"}
    assert _one(old, "SELECT COUNT(*) FROM {job}.SiteMaskLogging WHERE Status='Banned'") == 0
    assert not [a for a in old.events["dirac_actions"] if a["action"].startswith("JobEfficiency")]
    assert any("CacheFeederAgent never feeds" in r for r in old.scenario("heartbeat-loss")["dirac_rules"])


def test_central_failure_fails_every_site_then_recovers(new):
    sc = new.scenario("central-failure")
    start, end = new.utc(sc["started"]["sim"]), new.utc(sc["ended"]["sim"])
    failing = new.query("SELECT Site, COUNT(*) FROM {job}.Jobs WHERE Status='Failed' AND EndExecTime BETWEEN %s AND %s"
                        " AND MinorStatus IN ('Failed Downloading InputSandbox', 'Failed sending requests')"
                        " GROUP BY Site", (start, end))
    assert len(failing) == 6
    banned = {a["site"] for a in new.events["dirac_actions"] if a["action"] == "JobEfficiency Banned"}
    assert len(banned) >= 3 and banned <= {a["site"] for a in sc["dirac_actions"].values()} | banned
    assert any(e["event"] == "operator re-activated site" for e in new.events["log"])
    after = dict(new.query("SELECT Status, COUNT(*) FROM {job}.Jobs WHERE StartExecTime > %s GROUP BY 1",
                           (new.utc(sc["ended"]["sim"] + 600),)))
    assert after.get("Failed", 0) <= 0.1 * max(1, sum(after.values()))
    assert after.get("Running", 0) + after.get("Done", 0) > 10


def test_new_schema_rows(new):
    tables = {r[0] for r in new.query("SHOW TABLES FROM {job}")}
    assert "JobParameters" not in tables and "SiteMask" not in tables
    status = dict(new.query("SELECT Name, Status FROM {rss}.SiteStatus WHERE StatusType='all'"))
    assert len(status) == 6 and set(status.values()) <= {"Active", "Degraded", "Probing", "Banned"}
    assert {r[0] for r in new.query("SELECT DISTINCT VO FROM {job}.Jobs")} == {"bes"}
    assert _one(new, "SELECT COUNT(*) FROM {pilot}.JobToPilotMapping") > 50


def test_report_compares_alerts_with_dirac(old, tmp_path):
    jinr = old.scenario("heartbeat-loss")
    bh = old.scenario("black-hole-host")
    clock = old.events["clock"]

    def iso(sim: float) -> str:
        t = dt.datetime.fromtimestamp(clock["origin_epoch"] + sim / clock["speed"], dt.timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f123Z")

    alerts = [
        {"labels": {"alertname": "DiracHeartbeatLagHigh", "site": JINR},
         "startsAt": iso(jinr["started"]["sim"] + 2700)},
        {"labels": {"alertname": "DiracBlackHoleHost", "site": USTC, "host": BLACK_HOLE},
         "startsAt": iso(bh["host_failures_sim"][2] + 1)},
        {"labels": {"alertname": "Unrelated", "site": IHEP}, "startsAt": iso(100)},
        {"labels": {"alertname": "DiracSiteJobFailureRatioHigh", "site": USTC},
         "startsAt": iso(bh["host_failures_sim"][0] + 1)},  # site-level: not the host's alert
    ]
    (tmp_path / "alerts.json").write_text(json.dumps(alerts))
    (tmp_path / "events.json").write_text(json.dumps(old.events))
    rc, _ = run_cli("--report", "--json", "--events", str(tmp_path / "events.json"), "--alerts",
                    str(tmp_path / "alerts.json"))
    assert rc == 0
    rows = {r["scenario"]: r for r in report.build(old.events, alerts)}
    hb = rows["heartbeat-loss"]
    assert hb["alert"] == "DiracHeartbeatLagHigh" and abs(hb["alert_after"] - 2700) < 2
    assert hb["dirac_reacts"] == "StalledJobAgent:Stalled (threshold)"
    assert 0 < hb["dirac_reacts_lead"] <= 4500 - 2700 + 1
    assert hb["dirac_decides"] == "StalledJobAgent:Failed (threshold)"
    assert hb["dirac_decides_lead"] == pytest.approx(hb["dirac_reacts_lead"] + 11700, abs=1)
    assert rows["black-hole-host"]["alert"] == "DiracBlackHoleHost"
    assert rows["black-hole-host"]["host_failures_before_alert"] == 3
    assert rows["no-matching"]["alert"] is None and rows["no-matching"]["dirac_reacts"] == "none"
    table = report.render(report.build(old.events, alerts))
    assert "heartbeat-loss" in table and "DIRAC fails jobs / bans" in table


def test_input_fetch_jobs_are_rescheduled_then_failed_at_max_rescheduling(new):
    """JobWrapperUtilities.rescheduleFailedJob as DIRAC writes it: the JobWrapper's records, JobManager's
    reschedule (Site back to the JDL's), JobScheduling's hold, and Failed once RescheduleCounter is 3."""
    sc = new.scenario("input-fetch")
    rec = sc["reschedules"]
    assert rec["rescheduled"] >= 6 and rec["failed"] >= 2
    assert sc["dirac_actions"]["JobWrapper:Rescheduled"]["minor"] == "Downloading InputSandbox"
    failed = new.query("SELECT JobID, Site, ApplicationStatus, RescheduleCounter FROM {job}.Jobs WHERE "
                       "MinorStatus='Maximum of reschedulings reached'")
    assert len(failed) == rec["failed"]
    assert {r[1:] for r in failed} == {(WHU, "Failed Downloading InputSandbox ", 3)}
    log = new.query("SELECT Status, MinorStatus, ApplicationStatus, StatusSource FROM {log}.LoggingInfo "
                    "WHERE JobID=%s ORDER BY SeqNum", (failed[0][0],))
    wrapper = [("idem", "Downloading InputSandbox", "idem", "JobWrapper"),
               ("idem", "Failed Downloading InputSandbox", "idem", "JobWrapper"),
               ("idem", "idem", "Failed Downloading InputSandbox ", "JobWrapper"),
               ("Rescheduled", "Downloading InputSandbox", "idem", "JobWrapper")]
    starts = [i for i, r in enumerate(log) if r == wrapper[0]]
    assert len(starts) == 4 and all(log[i:i + 4] == wrapper for i in starts)
    for n, i in enumerate(starts[:3], 1):  # rescheduled, held, Waiting, matched again
        assert log[i + 4] == ("Received", "Job Rescheduled", "Unknown", "JobManager")
        assert log[i + 6] == ("idem", "idem", f"On Hold: after rescheduling {n}", "JobScheduling")
        assert log[i + 7][:2] == ("Waiting", "Pilot Agent Submission")
    assert log[-1] == wrapper[-1]  # the 4th failure: JobDB fails the job without a LoggingInfo record
    # A rescheduled job sent to ANY site gets its JDL's Site back (until matched again), and runs elsewhere.
    anywhere = new.query("SELECT j.Site, j.Status FROM {job}.Jobs j JOIN {job}.JobJDLs d USING (JobID) WHERE "
                         "j.RescheduleCounter > 0 AND d.OriginalJDL LIKE '%%Site = \"ANY\"%%'")
    assert {site for site, _ in anywhere} - {WHU, "ANY"}
    assert all(site == "ANY" for site, status in anywhere if status in ("Received", "Checking", "Waiting"))
