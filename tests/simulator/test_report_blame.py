"""The lead-time report's wrong-place column (issue #18) on a synthetic events file and alert list: which pages
blamed the wrong party for each fault, and which another fault explains."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sim_helpers import run_cli

from bes_simulator import report

ORIGIN, SPEED = 1_700_000_000.0, 60.0
FOCUS, SPREAD, USTC = "CLUSTER.USTC.cn", "BES.WHU.cn", "BES.USTC.cn"
CLOUD, PKU = "CLOUD.IHEP-OPENSTACK.cn", "BES.PKU.cn"


def _iso(sim: float) -> str:
    return dt.datetime.fromtimestamp(ORIGIN + sim / SPEED, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f123Z")


def _sc(name: str, start: float, end: float | None, target: dict, params: dict | None = None, **extra) -> dict:
    return {"name": name, "target": target, "params": params or {}, "started": {"sim": start},
            "ended": {"sim": end} if end is not None else None, "dirac_expected": {}, "dirac_actions": {}, **extra}


DOC = {"clock": {"origin_epoch": ORIGIN, "speed": SPEED}, "scenarios": [
    _sc("user-broken", 5400, 14700, {"owner": "zhaojy", "owner_group": "bes_user"},
        {"site": FOCUS, "concentration": 0.8, "share": 0.15},
        owner_failures={"before_running": {"InputData": 9}, "after_running": 45,
                        "sites": {FOCUS: 40, SPREAD: 2, USTC: 1, "BES.SJTU.cn": 2}}),
    _sc("black-hole-host", 5400, 14700, {"site": USTC, "host": "wn017.ustc.edu.cn"}),
    _sc("site-software", 5400, 14700, {"site": CLOUD}, {"group": "bes_prod"}),
    _sc("central-failure", 15300, 18900, {}),
    _sc("no-matching", 20000, None, {"site": "GRID.IHEP.cn"}),
    _sc("cvmfs-broken", 5400, 14700, {"site": "BES.SJTU.cn"}),
]}


def _alert(sim: float, name: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, **labels}, "startsAt": _iso(sim)}


ALERTS = [
    _alert(5000, "DiracSiteJobFailureRatioHigh", site=FOCUS, blame="site"),  # before every fault
    _alert(6300, "DiracUserJobsFailing", owner="zhaojy", owner_group="bes_user", blame="user"),
    _alert(6000, "DiracBlackHoleHost", site=USTC, host="wn017.ustc.edu.cn", blame="host"),
    _alert(7000, "DiracSiteJobFailureRatioHigh", site=FOCUS, blame="site"),  # the user's focus site paged
    _alert(7000, "DiracPushFailing", site=FOCUS, blame="monitoring"),
    _alert(7500, "DiracSiteJobFailureRatioCritical", site=CLOUD, blame="site"),
    _alert(7800, "DiracBlackHoleHost", site=CLOUD, host="vm-bes-0007.cloud.ihep.ac.cn", blame="host"),  # a node
    _alert(8000, "DiracSiteJobFailureRatioHigh", site=SPREAD, blame="site"),  # a site the user's jobs failed at
    _alert(8000, "DiracSiteJobFailureRatioHigh", site=USTC, blame="site"),  # the black hole's site paged
    _alert(9000, "DiracUserJobsFailing", owner="bes_prod", owner_group="bes_prod", blame="user"),
    _alert(10000, "DiracCentralFailure", blame="central"),  # no central fault: one owner's workflow
    _alert(13000, "DiracSiteJobFailureRatioHigh", site=SPREAD),  # no blame label: a site's alert
    _alert(14000, "DiracProbeFailing", site="BES.SJTU.cn", blame="site"),  # cvmfs-broken's own
    _alert(14100, "DiracSiteJobFailureRatioHigh", site="BES.SJTU.cn", blame="site"),  # not a probe-only fault's
    _alert(16000, "DiracCentralFailure", blame="central"),
    _alert(16500, "DiracSiteJobFailureRatioHigh", site=PKU, blame="site"),  # a site paged for DIRAC's fault
    _alert(21000, "DiracCentralFailure", blame="central"),  # a central failure declared for a site's fault
]


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    return {r["scenario"]: r for r in report.build(DOC, ALERTS)}


def _wrong(row: dict) -> list[tuple]:
    return [(w["alert"], w.get("site") or w.get("owner"), round(w["after"])) for w in row["wrong_place"]]


def test_user_broken_pages_to_sites_and_central_are_wrong(rows):
    row = rows["user-broken"]
    assert row["alert"] == "DiracUserJobsFailing" and row["alert_after"] == pytest.approx(900, abs=1)
    assert row["target"] == f"zhaojy (bes_user, 80% to {FOCUS})"
    # The black hole's site alert is the black hole's; the monitoring alert blames nobody; 5000 is too early;
    # the probe alert at BES.SJTU.cn is cvmfs-broken's, its job-failure alert is not (cvmfs-broken fails no job).
    assert _wrong(row) == [("DiracSiteJobFailureRatioHigh", FOCUS, 1600),
                           ("DiracSiteJobFailureRatioHigh", SPREAD, 2600),
                           ("DiracCentralFailure", None, 4600), ("DiracSiteJobFailureRatioHigh", SPREAD, 7600),
                           ("DiracSiteJobFailureRatioHigh", "BES.SJTU.cn", 8700)]


def test_site_software_blaming_a_user_of_the_group_is_wrong_a_node_of_the_site_is_not(rows):
    row = rows["site-software"]
    assert row["alert"] == "DiracSiteJobFailureRatioCritical" and row["target"] == f"{CLOUD} (bes_prod jobs)"
    # the node alert goes to the same party (the site's admins): imprecise, not the wrong place
    assert _wrong(row) == [("DiracUserJobsFailing", "bes_prod", 3600), ("DiracCentralFailure", None, 4600)]


def test_black_hole_site_paged_is_wrong_and_other_faults_explain_theirs(rows):
    row = rows["black-hole-host"]
    assert row["alert"] == "DiracBlackHoleHost"
    # bes_prod's user alert is site-software's (its group): not counted again here.
    assert _wrong(row) == [("DiracSiteJobFailureRatioHigh", USTC, 2600), ("DiracCentralFailure", None, 4600)]


def test_central_failure_sites_paged_are_wrong_and_it_explains_everything_else(rows):
    assert _wrong(rows["central-failure"]) == [("DiracSiteJobFailureRatioHigh", PKU, 1200)]
    assert rows["central-failure"]["alert"] == "DiracCentralFailure"
    # The faults that ended at 14700 still own 30 min of pages, but the central failure explains these.
    assert all(w["after"] < 15300 - 5400 for r in ("user-broken", "site-software") for w in rows[r]["wrong_place"])
    assert _wrong(rows["no-matching"]) == [("DiracCentralFailure", None, 1000)]


def test_blame_inferred_without_the_label():
    assert report.blame({"alertname": "DiracUserJobsFailing", "owner": "x"}) == "user"
    assert report.blame({"alertname": "DiracCentralFailure"}) == "central"
    assert report.blame({"alertname": "DiracBlackHoleHost", "site": USTC, "host": "wn1"}) == "host"
    assert report.blame({"alertname": "DiracSiteNotMatching", "site": USTC}) == "site"
    assert report.blame({"alertname": "DiracExporterDown"}) == "monitoring"
    assert report.blame({"alertname": "DiracSiteNotMatching", "site": USTC, "blame": "monitoring"}) == "monitoring"


def test_table_and_json_show_the_column(tmp_path, rows, capsys):
    table = report.render(list(rows.values()))
    assert "wrong place" in table.splitlines()[0] and "goal 0" in table
    line = next(x for x in table.splitlines() if x.startswith("user-broken"))
    assert line.endswith(f"5: DiracCentralFailure, DiracSiteJobFailureRatioHigh BES.SJTU.cn, "
                         f"DiracSiteJobFailureRatioHigh {SPREAD}, DiracSiteJobFailureRatioHigh {FOCUS}")
    (tmp_path / "events.json").write_text(json.dumps(DOC))
    (tmp_path / "alerts.json").write_text(json.dumps(ALERTS))
    rc, err = run_cli("--report", "--json", "--events", str(tmp_path / "events.json"), "--alerts",
                      str(tmp_path / "alerts.json"))
    assert rc == 0, err
    out = {r["scenario"]: r for r in json.loads(capsys.readouterr().out)}
    assert out["site-software"]["wrong_place"] == rows["site-software"]["wrong_place"]
    assert out["site-software"]["wrong_place"][0] == {"alert": "DiracUserJobsFailing", "blame": "user",
                                                      "owner": "bes_prod", "after": pytest.approx(3600)}


def test_campaign_window_and_false_alarms():
    """With ``linger`` (bench/alerts: the same place is hit again later) an alert or DIRAC action long after a
    fault's end is not its; ``unexplained`` keeps the alerts no fault accounts for (the false alarms)."""
    doc = {"clock": {"origin_epoch": ORIGIN, "speed": SPEED}, "scenarios": [
        _sc("heartbeat-loss", 6000, 9000, {"site": USTC},
            dirac_actions={"StalledJobAgent:Stalled": {"sim": 40000}}),
        _sc("black-hole-host", 20000, 24000, {"site": PKU, "host": "wn01.pku.edu.cn"}),
    ]}
    alerts = [
        _alert(30000, "DiracHeartbeatLagRising", site=USTC, blame="site"),  # 6 h after the cut: a new event
        _alert(21000, "DiracBlackHoleHost", site=PKU, host="wn01.pku.edu.cn", blame="host"),
        _alert(21500, "DiracSiteJobFailureRatioHigh", site=PKU, blame="site"),  # the node's site: wrong place
        _alert(26000, "DiracBlackHoleHost", site=PKU, host="wn02.pku.edu.cn", blame="host"),  # within the hour
        # after, at the same site: explained
        _alert(3000, "DiracSiteNotMatching", site=CLOUD, blame="site"),  # in the warm-up: not counted
        _alert(12000, "DiracSiteNotMatching", site=CLOUD, blame="site"),  # nothing there: a false alarm
    ]
    rows = {r["scenario"]: r for r in report.build(doc, alerts, linger=3600)}
    assert rows["heartbeat-loss"]["alert"] is None and rows["heartbeat-loss"]["dirac_reacts"] == "none"
    assert report.build(doc, alerts)[0]["alert_after"] == 24000  # without linger: the demo's report, unchanged
    assert rows["black-hole-host"]["alert_after"] == 1000 and len(rows["black-hole-host"]["wrong_place"]) == 1
    false = report.unexplained(doc, alerts, since=5000, linger=3600)
    assert [(a["alert"], a.get("site"), round(a["at"])) for a in false] == [
        ("DiracSiteNotMatching", CLOUD, 12000), ("DiracHeartbeatLagRising", USTC, 30000)]
