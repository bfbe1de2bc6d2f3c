"""Reaping and classification against a real MariaDB JobDB and a real Pushgateway.

Kill/delete go through DIRAC's real ``Dirac`` API to the FAKE DIRAC server, which writes the same JobDB
in both schema generations and with jobs hours old (what the real DIRAC 9.1 server of tests/real_dirac
cannot); the pushed state set is read back from the Pushgateway.
"""

from __future__ import annotations

import datetime as dt
import time

from agent_fixtures import (  # noqa: F401 - fixtures
    OWN_PROBE,
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
    probe_job,
)
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from bes_simulator.writer import utcnow
from probe_pushgateway.agent.agent import Agent
from probe_pushgateway.agent.targets import Target

HOURS_AGO = utcnow() - dt.timedelta(hours=3)


def _user_job(inst, site: str, final: str | None = None) -> int:
    """Another user's job at the site: Running now, or finished just now."""
    jid = inst.writer.submit(site=site)
    inst.writer.optimize(jid)
    inst.writer.match(jid, site)
    inst.writer.set_status(jid, "Running", "Application", "Running")
    if final:
        inst.writer.set_status(jid, final, "Execution Complete", "Finished")
    return jid


def _probe_push(pgw, target: Target, success: bool, when: float) -> None:
    """What bes-probe pushes at the end of its run (the parts the reaper reads)."""
    reg = CollectorRegistry()
    Gauge("dirac_probe_success", "probe", ["check"], registry=reg).labels("all").set(1 if success else 0)
    Gauge("dirac_probe_last_run_timestamp_seconds", "last run", registry=reg).set(when)
    pushadd_to_gateway(pgw.address, job="bes_probe", registry=reg,
                       grouping_key={"site": target.site, "ce": target.ce_label})


def _states(pgw) -> dict:
    """(site, ce) -> (the one status at 1, downtime) of the agent's groups."""
    out = {}
    for g in read_pushgateway_metrics(pgw):
        if g["labels"].get("job") != "bes_probe_agent":
            continue
        on = [m["labels"]["status"] for m in g["dirac_probe_status"]["metrics"] if float(m["value"]) == 1]
        assert len(on) == 1, g  # one-hot
        down = float(g["dirac_site_downtime"]["metrics"][0]["value"])
        out[(g["labels"]["site"], g["labels"]["ce"])] = (on[0], down)
    return out


def _status(inst, jid: int) -> str:
    return inst.query(f"SELECT Status FROM `{inst.dbs.jobdb}`.Jobs WHERE JobID=%s", (jid,))[0][0]


BUSY, BAD, UNKNOWN = Target("BES.USTC.cn"), Target("BES.WHU.cn"), Target("BES.JINR.ru")
STUCK = Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
OK, FAILED = Target("CLUSTER.UCAS.cn"), Target("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn")
YOUNG = Target("GRID.LOCAL.cn", "ce.local.test")


def test_reap_classifies_kills_pushes_and_retires_fake_dirac_server(fake_dirac_server, dirac, pushgateway,
                                                                    dirac_cfg, tmp_path):
    busy = probe_job(dirac, BUSY, when=HOURS_AGO)
    _user_job(dirac, BUSY.site)                       # the site runs other jobs -> busy
    bad = probe_job(dirac, BAD, when=HOURS_AGO)      # nothing runs, nothing finished -> bad
    unknown = probe_job(dirac, UNKNOWN, when=HOURS_AGO)
    _user_job(dirac, UNKNOWN.site, final="Done")      # nothing runs but jobs finish -> unknown
    stuck = probe_job(dirac, STUCK, when=HOURS_AGO, running=True)  # reached a node, never ended
    young = probe_job(dirac, YOUNG, when=utcnow())  # within its waiting timeout: left alone
    other_group = dirac.writer.submit(site=BAD.site, when=HOURS_AGO)  # not a probe job
    now = time.time()
    _probe_push(pushgateway, OK, True, now - 60)
    _probe_push(pushgateway, FAILED, False, now - 60)
    _probe_push(pushgateway, Target("BES.OLD.cn"), True, now - 60)  # a retired target's leftovers
    reg = CollectorRegistry()
    Gauge("dirac_probe_submitted_timestamp_seconds", "x", registry=reg).set(now - 7200)
    pushadd_to_gateway(pushgateway.address, job="bes_probe_agent", registry=reg,
                       grouping_key={"site": "BES.OLD.cn", "ce": "none"})

    targets = ["BES.USTC.cn", "BES.WHU.cn", "BES.JINR.ru", "CLUSTER.UCAS.cn",
               {"site": "BES.IHEP-PBS.cn", "ces": ["ce01.ihep.ac.cn", "ce02.ihep.ac.cn"]},
               {"site": "GRID.LOCAL.cn", "ces": ["ce.local.test"]}]
    downtime = {"site": "BES.WHU.cn", "start": "2020-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z"}
    cfg = make_config(tmp_path, targets=targets, pushgateway_url=pushgateway.url, database=db_section(dirac),
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]},
                      downtimes=[downtime], probe=OWN_PROBE)
    stats = Agent(cfg).reap_cycle()
    assert stats.ok, stats.failures
    assert (stats.reaped, stats.pushed, stats.deleted_groups) == (4, 7, 2)

    assert _states(pushgateway) == {
        ("BES.USTC.cn", "none"): ("busy", 0.0),
        ("BES.WHU.cn", "none"): ("bad", 1.0),
        ("BES.JINR.ru", "none"): ("unknown", 0.0),
        ("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn"): ("unknown", 0.0),
        ("CLUSTER.UCAS.cn", "none"): ("ok", 0.0),
        ("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn"): ("failed", 0.0),
        ("GRID.LOCAL.cn", "ce.local.test"): ("unknown", 0.0),
    }
    # The harvest counter is pushed without prometheus_client's spurious <name>_created series.
    families = {name for g in read_pushgateway_metrics(pushgateway) if g["labels"].get("job") == "bes_probe_agent"
                for name in g if name.startswith("dirac_")}
    assert "dirac_probe_harvests_total" in families and not {f for f in families if f.endswith("_created")}
    assert [_status(dirac, j) for j in (busy, bad, unknown, stuck)] == ["Deleted"] * 4
    assert _status(dirac, young) == "Waiting"
    assert _status(dirac, other_group) == "Received"
    assert not [g for g in read_pushgateway_metrics(pushgateway) if g["labels"].get("site") == "BES.OLD.cn"]

    # The next cycle keeps the classes (fresh events), and has nothing left to reap.
    again = Agent(cfg).reap_cycle()
    assert (again.reaped, again.ok) == (0, True)
    assert _states(pushgateway)[("BES.WHU.cn", "none")] == ("bad", 1.0)


def test_probe_job_ending_without_result_is_failed_fake_dirac_server(fake_dirac_server, dirac, pushgateway,
                                                                     dirac_cfg, fake_pyz, tmp_path):
    cfg = make_config(tmp_path, targets=["BES.WHU.cn", "BES.USTC.cn"], pushgateway_url=pushgateway.url,
                      pyz=fake_pyz, database=db_section(dirac),
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
    agent = Agent(cfg)
    assert agent.submit_cycle().submitted == 2
    ids = dict(dirac.query(f"SELECT Site, JobID FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobGroup='bes_probe'"))
    dirac.writer.run_to(ids["BES.WHU.cn"], "BES.WHU.cn", final="Failed", minor="Input Sandbox Download")
    dirac.writer.run_to(ids["BES.USTC.cn"], "BES.USTC.cn")
    _probe_push(pushgateway, Target("BES.USTC.cn"), True, time.time())
    stats = agent.reap_cycle()
    assert stats.ok and stats.reaped == 0
    assert _states(pushgateway) == {("BES.WHU.cn", "none"): ("failed", 0.0), ("BES.USTC.cn", "none"): ("ok", 0.0)}
    assert agent.state.read()["pending"] == {}


def _held_probe_job(inst, target: Target, status: str, minor: str) -> int:
    """A probe job DIRAC still holds, as JobScheduling or an optimizer backlog leaves it, since 3 h."""
    jid = inst.writer.submit(site=target.site, job_group="bes_probe", job_name=target.job_name, owner="bes_probe",
                             owner_group="bes_prod", when=HOURS_AGO)
    if status != "Received":
        inst.writer.set_attributes(jid, Status=status, MinorStatus=minor, when=HOURS_AGO)
    return jid


def test_only_a_waiting_probe_job_at_an_idle_site_is_bad_fake_dirac_server(fake_dirac_server, dirac, pushgateway,
                                                                           dirac_cfg, tmp_path):
    """BES3's rule (BESDIRAC CEBaseTest.getTestResult): Waiting, and the site has no Running and no Done job in
    the last day (EndExecTime, as DIRAC's getSiteSummaryWeb counts it) -> bad. A job DIRAC holds (Checking for
    a banned site, Received in an optimizer backlog) or one a pilot took (Matched) is never bad."""
    banned, backlog = Target("BES.WHU.cn"), Target("BES.USTC.cn")
    idle, done_today = Target("BES.JINR.ru"), Target("CLUSTER.UCAS.cn")
    done_long_ago, matched = Target("GRID.LOCAL.cn", "ce.local.test"), Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
    _held_probe_job(dirac, banned, "Checking", f"Requested site(s) {banned.site} are inactive")
    _held_probe_job(dirac, backlog, "Received", "Job accepted")
    probe_job(dirac, idle, when=HOURS_AGO)
    probe_job(dirac, done_today, when=HOURS_AGO)
    ended = dirac.writer.submit(site=done_today.site, when=utcnow() - dt.timedelta(hours=6))
    dirac.writer.run_to(ended, done_today.site, when=utcnow() - dt.timedelta(hours=5))  # Done 5 h ago: within 24 h
    probe_job(dirac, done_long_ago, when=HOURS_AGO)
    old = dirac.writer.submit(site=done_long_ago.site, when=utcnow() - dt.timedelta(days=3))
    dirac.writer.run_to(old, done_long_ago.site, when=utcnow() - dt.timedelta(days=2))
    dirac.writer.set_attributes(old, ApplicationStatus="Output uploaded")  # touched now, ended 2 days ago
    jid = probe_job(dirac, matched, when=HOURS_AGO)
    dirac.writer.match(jid, matched.site, when=HOURS_AGO)

    targets = [banned.site, backlog.site, idle.site, done_today.site, {"site": done_long_ago.site,
               "ces": [done_long_ago.ce]}, {"site": matched.site, "ces": [matched.ce]}]
    cfg = make_config(tmp_path, targets=targets, pushgateway_url=pushgateway.url, database=db_section(dirac),
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]},
                      probe=OWN_PROBE)
    stats = Agent(cfg).reap_cycle()
    assert (stats.ok, stats.reaped) == (True, 6), stats.failures
    assert {k: v[0] for k, v in _states(pushgateway).items()} == {
        banned.key: "unknown", backlog.key: "unknown", idle.key: "bad", done_today.key: "unknown",
        done_long_ago.key: "bad", matched.key: "unknown"}
