"""Blame scenarios (issue #18) in DIRAC's own tables, from an accelerated run (tests/simulator/conftest.py):
``user-broken`` on liuhm from 1h (30 % of the new jobs, 70 % of them sent to BES.USTC.cn) and
``site-software`` at GRID.IHEP.cn from 1h (bes_prod's release missing)."""

from __future__ import annotations

import pytest
from sim_helpers import SMALL, Run, conn

from bes_simulator.clock import DbClock, SimClock
from bes_simulator.engine import APP_ERRORS, NO_RELEASE_APP, OPTIMIZER_CHAIN, USER_BROKEN_APP
from bes_simulator.events import EventLog
from bes_simulator.scenarios import parse_spec, resolve
from bes_simulator.topology import load_topology

OWNER, FOCUS, SITE, GROUP = "liuhm", "BES.USTC.cn", "GRID.IHEP.cn", "bes_prod"
START = 3600.0  # both faults, simulated seconds
AFTER = START + 100  # DATETIME's 1-s resolution is 100 simulated seconds at the tests' speed
# A job of liuhm already completing when the fault starts still ends Done: Uploading Output Data (<= 400 s)
# after a normal completion that may come just before its failure (<= fail_after, 300 s).
SETTLED = START + 720
OPTIMIZER_ERRORS = {("InputData optimizer", "Input data not available"),
                    ("JobScheduling optimizer", "No possible site candidates")}


@pytest.fixture
def run(runs) -> Run:
    return runs["blame"]


def _ratio(failed: int, finished: int) -> float:
    return failed / max(1, finished)


def _rss_judged_bad(run: Run, site: str) -> bool:
    """RSS's JobEfficiency policy degraded or banned the site after the faults started (recorded, not enforced)."""
    return any(a["mechanism"] == "RSS" and a.get("site") == site and a["sim"] >= START
               and a["action"] in ("JobEfficiency Degraded", "JobEfficiency Banned")
               for a in run.events["dirac_actions"])


def test_broken_owner_fails_wherever_it_runs(run):
    rows = run.query("SELECT Site, Status, MinorStatus, ApplicationStatus FROM {job}.Jobs WHERE Owner=%s AND "
                     "StartExecTime >= %s AND EndExecTime IS NOT NULL", (OWNER, run.utc(AFTER)))
    assert len(rows) >= 10
    assert {r[1:] for r in rows} == {("Failed", APP_ERRORS, USER_BROKEN_APP)}
    assert len({r[0] for r in rows}) >= 3  # not one site: every site it runs at
    # Its jobs already running when the workflow broke fail too: none ends well once those finishing are done.
    late_good = run.query("SELECT COUNT(*) FROM {job}.Jobs WHERE Owner=%s AND Status IN ('Done', 'Completed') AND "
                          "EndExecTime > %s", (OWNER, run.utc(SETTLED)))[0][0]
    assert late_good == 0
    early = run.query("SELECT COUNT(*) FROM {job}.Jobs WHERE Owner=%s AND StartExecTime < %s AND Status='Failed' "
                      "AND EndExecTime > %s", (OWNER, run.utc(START), run.utc(START)))[0][0]
    assert early >= 3


def test_other_owners_at_the_same_sites_stay_healthy(run):
    # bes_prod at GRID.IHEP.cn is the other fault's.
    rows = run.query("SELECT Site, SUM(Status='Failed'), SUM(Status IN ('Done','Completed','Failed')) FROM {job}.Jobs "
                     "WHERE Owner<>%s AND EndExecTime > %s AND NOT (Site=%s AND OwnerGroup=%s) GROUP BY Site",
                     (OWNER, run.utc(START), SITE, GROUP))
    per_site = {site: (int(failed), int(n)) for site, failed, n in rows}
    assert _ratio(*per_site[FOCUS]) <= 0.1 and per_site[FOCUS][1] >= 10
    failed, finished = (sum(v[i] for v in per_site.values()) for i in (0, 1))
    assert finished >= 50 and _ratio(failed, finished) <= 0.05


def test_a_share_fails_in_the_optimizers_before_running_as_dirac_writes_it(run):
    rows = run.query("SELECT JobID, Site, MinorStatus, ApplicationStatus, StartExecTime FROM {job}.Jobs "
                     "WHERE Owner=%s AND MinorStatus LIKE '%% optimizer'", (OWNER,))
    assert len(rows) >= 3
    assert {(r[2], r[3]) for r in rows} <= OPTIMIZER_ERRORS and all(r[4] is None for r in rows)
    for job_id, _, minor, _, _ in rows:  # never ran: no Running record; the optimizer chain as setNextOptimizer
        log = run.query("SELECT Status, MinorStatus, StatusSource FROM {log}.LoggingInfo WHERE JobID=%s "
                        "ORDER BY SeqNum", (job_id,))
        stage = minor.split()[0]
        chain = OPTIMIZER_CHAIN[:OPTIMIZER_CHAIN.index(stage) + 1]
        assert log == [("Received", "Job accepted", "JobManager"),
                       *(("Checking", nxt, src) for src, nxt in zip(chain, chain[1:])),
                       ("Failed", minor, stage)], log
    # The JDL's site stays: the focus site's share of them counts against it in DIRAC's RSS.
    assert sum(1 for r in rows if r[1] == FOCUS) >= 1
    submitted = run.query("SELECT COUNT(*) FROM {job}.Jobs WHERE Owner=%s AND SubmissionTime >= %s",
                          (OWNER, run.utc(START)))[0][0]
    assert submitted >= 20 and 0.1 <= len(rows) / submitted <= 0.55  # before_running 0.3
    rec = run.scenario("user-broken")["owner_failures"]
    assert sum(rec["before_running"].values()) == len(rows)


def test_share_and_concentration_of_the_broken_workflow(run):
    during = run.query("SELECT Owner, j.JDL LIKE %s FROM {job}.Jobs JOIN {job}.JobJDLs j USING (JobID) "
                       "WHERE SubmissionTime >= %s", (f'%Site = "{FOCUS}"%', run.utc(START + 60)))
    mine = [focused for owner, focused in during if owner == OWNER]
    assert 0.15 <= len(mine) / len(during) <= 0.45  # share 0.3
    assert sum(mine) / len(mine) >= 0.5  # concentration 0.7 by JDL


def test_user_broken_events_record_the_failures_and_dirac_reaction(run):
    sc = run.scenario("user-broken")
    assert sc["target"] == {"owner": OWNER, "owner_group": "bes_user"}
    rec = sc["owner_failures"]
    rows = dict(run.query("SELECT Site, COUNT(*) FROM {job}.Jobs WHERE Owner=%s AND Status='Failed' AND "
                          "StartExecTime IS NOT NULL AND EndExecTime >= %s GROUP BY Site", (OWNER, run.utc(START))))
    # The DB's second holding the start also holds up to 100 simulated seconds before it (one failure at most).
    assert all(0 <= rows.get(site, 0) - rec["sites"].get(site, 0) <= 1 for site in set(rows) | set(rec["sites"]))
    assert rec["after_running"] == sum(rec["sites"].values()) >= 10
    assert "owner_failed_jobs_10" in sc["milestones"]
    # RSS has no notion of owners: it degrades (or bans) the healthy site the user sent most jobs to.
    assert _rss_judged_bad(run, FOCUS) and sc["dirac_actions"]
    assert any("no notion of owners" in r for r in sc["dirac_rules"])


def test_site_software_fails_only_the_group_at_the_site(run):
    at_site = run.query("SELECT Owner, OwnerGroup, Status, MinorStatus, ApplicationStatus FROM {job}.Jobs WHERE "
                        "Site=%s AND StartExecTime >= %s AND Status IN ('Done','Completed','Failed')",
                        (SITE, run.utc(AFTER)))
    group = [r for r in at_site if r[1] == GROUP]
    assert len(group) >= 2 and {r[2:] for r in group} == {("Failed", APP_ERRORS, NO_RELEASE_APP)}
    others = [r for r in at_site if r[1] != GROUP and r[0] != OWNER]
    assert len(others) >= 5 and _ratio(sum(r[2] == "Failed" for r in others), len(others)) <= 0.15
    elsewhere = run.query("SELECT SUM(Status='Failed'), COUNT(*) FROM {job}.Jobs WHERE Site<>%s AND OwnerGroup=%s "
                          "AND EndExecTime > %s AND Status IN ('Done','Completed','Failed')",
                          (SITE, GROUP, run.utc(START)))[0]
    assert elsewhere[1] >= 10 and _ratio(int(elsewhere[0]), elsewhere[1]) <= 0.1  # 1 % background failures
    # The site's own jobs (the user-broken owner's left out) fail past the 10 % line.
    own = [r for r in at_site if r[0] != OWNER]
    assert _ratio(sum(r[2] == "Failed" for r in own), len(own)) > 0.1
    sc = run.scenario("site-software")
    assert sc["group_failures"] == {"jobs": len(group), "owners": {GROUP: len(group)}}
    assert _rss_judged_bad(run, SITE) and sc["dirac_actions"]
    assert any("no notion of owner groups" in r for r in sc["dirac_rules"])


def test_dirac_actions_go_to_the_fault_that_can_cause_them(mariadb):
    """RSS's JobEfficiency at a site goes to the user's fault where its jobs failed, unless a fault of that place
    that fails jobs is there too; never to a fault that fails none (probe-only cvmfs-broken)."""
    topo = load_topology(SMALL)
    ub, cvmfs, hole = (resolve(parse_spec(f"{name}@1h"), topo) for name in ("user-broken", "cvmfs-broken",
                                                                             "black-hole-host"))
    c = conn()
    try:
        log = EventLog(None, SimClock(DbClock(c), 100), {}, [ub, cvmfs, hole])
    finally:
        c.close()
    for sc in (ub, cvmfs, hole):
        sc.active = True
        log.scenario_started(sc, START)
    ub.record["owner_failures"]["sites"].update({"BES.SJTU.cn": 2, "BES.USTC.cn": 1})
    log.action(START + 400, "RSS", "JobEfficiency Degraded", site="BES.SJTU.cn")  # cvmfs-broken's site
    log.action(START + 400, "RSS", "JobEfficiency Banned", site="BES.USTC.cn")  # the black hole's site
    log.action(START + 400, "RSS", "JobEfficiency Degraded", site="BES.UCAS.cn")  # no fault there
    assert list(ub.record["dirac_actions"]) == ["RSS:JobEfficiency Degraded"]
    assert ub.record["dirac_actions"]["RSS:JobEfficiency Degraded"]["site"] == "BES.SJTU.cn"
    assert not cvmfs.record["dirac_actions"] and list(hole.record["dirac_actions"]) == ["RSS:JobEfficiency Banned"]
