"""The alert rules (alerts/rules), their unit tests, runbook and Alertmanager config, checked with
Debian's promtool and amtool and a real Alertmanager on a free loopback port."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bes_demo import services

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULE_FILES = sorted((ALERTS / "rules").glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
RUNBOOK = ALERTS / "runbook.md"
PROMTOOL, AMTOOL = "/usr/bin/promtool", "/usr/bin/amtool"
SEVERITIES = {"critical", "warning", "info"}
BLAMES = {"site", "host", "user", "central", "monitoring"}  # whose fault: decides who is told
# Series the rules may use besides docs/metrics.md: Prometheus' own and the Pushgateway's.
EXTRA_METRICS = {"up", "push_time_seconds", "push_failure_time_seconds", "ALERTS"}


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def load_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                rules.append({**rule, "_file": path.name, "_group": group["name"]})
    return rules


RULES = load_rules()
ALERT_RULES = [r for r in RULES if "alert" in r]
ALERT_NAMES = sorted({r["alert"] for r in ALERT_RULES})
RECORDED = {r["record"] for r in RULES if "record" in r}


def runbook_anchors() -> dict[str, str]:
    """GitHub-style anchor -> heading text of every '## ' section of the runbook."""
    anchors = {}
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
            anchors[anchor] = title
    return anchors


def contract() -> tuple[set[str], set[str]]:
    """Metric names and label names of docs/metrics.md's tables."""
    metrics, labels, column = set(), {"dirac_instance"}, None
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and "labels" in cells:
            column = cells.index("labels")
        elif line.startswith("| `") and column is not None:
            metrics.add(cells[0].strip("`"))
            labels.update(re.findall(r"[a-z_]+", cells[column]))
    return metrics, labels


def test_rendered_rules_are_up_to_date():
    """alerts/rules/ is exactly what alerts/build.py renders from alerts/src/ and thresholds.yml."""
    run([sys.executable, str(ALERTS / "build.py"), "--check"])


def test_promtool_check_rules():
    assert RULE_FILES
    run([PROMTOOL, "check", "rules", *map(str, RULE_FILES)])


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file):
    run([PROMTOOL, "test", "rules", str(test_file)], timeout=120)


def test_amtool_check_config():
    run([AMTOOL, "check-config", str(ALERTS / "alertmanager.yml")])


def test_names_labels_and_annotations():
    anchors = runbook_anchors()
    base = yaml.safe_load((ALERTS / "thresholds.yml").read_text())["runbook_url"]
    assert base.endswith("alerts/runbook.md")
    for rule in RULES:
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*", rule["record"]), rule["record"]
            continue
        name = rule["alert"]
        assert re.fullmatch(r"Dirac[A-Z][A-Za-z0-9]+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"].get("blame") in BLAMES, f"{name}: blame label must be one of {sorted(BLAMES)}"
        ann = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(ann), name
        url, _, anchor = ann["runbook_url"].partition("#")
        assert url == base and anchor == name.lower(), f"{name}: {ann['runbook_url']}"
        assert anchor in anchors, f"{name}: no '## {name}' section in alerts/runbook.md"
    # ... and no runbook section for an alert that does not exist.
    assert sorted(t for t in anchors.values() if t.startswith("Dirac")) == ALERT_NAMES


def test_failure_alerts_name_the_top_fail_reason():
    for rule in ALERT_RULES:
        if rule["alert"] in ("DiracSiteJobFailureRatioHigh", "DiracSiteJobFailureRatioCritical",
                             "DiracBlackHoleHost") or rule.get("labels", {}).get("signal") == "jobs":
            assert "reason" in rule["annotations"]["description"], rule["alert"]


def test_rules_use_only_contract_metrics():
    metrics, labels = contract()
    suffixes = ("", "_bucket", "_count", "_sum", "_gcount", "_gsum")
    allowed = {m + s for m in metrics for s in suffixes} | EXTRA_METRICS
    for rule in RULES:
        text = rule["expr"] + " " + " ".join(rule.get("annotations", {}).values())
        # level:metric:operation names must be recorded here.
        for ref in re.findall(r"(?<![\w:])[a-z_]+:[a-z0-9_]+:[a-z0-9_]+(?![\w:])", text):
            assert ref in RECORDED, f"{rule.get('alert') or rule['record']}: {ref} is not recorded"
        plain = re.sub(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", " ", text)
        for token in set(re.findall(r"(?<![\w:.$])(?:dirac_[a-z0-9_]+|push_[a-z_]+|up|ALERTS)(?![\w:])", plain)):
            if token in labels:
                continue
            assert token in allowed, f"{rule.get('alert') or rule['record']}: {token} is not in docs/metrics.md"


def test_every_alert_has_a_firing_and_a_quiet_test():
    firing, quiet = set(), set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                exp = t.get("exp_alerts") or []
                if not exp:
                    quiet.add(t["alertname"])
                elif all({"summary", "description", "runbook_url"} <= set(a.get("exp_annotations", {}))
                         for a in exp):
                    firing.add(t["alertname"])
    assert not set(ALERT_NAMES) - firing, f"no firing test with full annotations: {set(ALERT_NAMES) - firing}"
    assert not set(ALERT_NAMES) - quiet, f"no test where it must not fire: {set(ALERT_NAMES) - quiet}"


def test_unit_tests_fix_the_group_order():
    """promtool evaluates groups in random order unless told: recording groups must come first."""
    groups_of = {p.name: [g["name"] for g in yaml.safe_load(p.read_text())["groups"]] for p in RULE_FILES}
    for path in TEST_FILES:
        spec = yaml.safe_load(path.read_text())
        groups = [g for f in spec["rule_files"] for g in groups_of[Path(f).name]]
        if len(groups) > 1:
            order = spec.get("group_eval_order", [])
            assert sorted(order) == sorted(groups), f"{path.name}: group_eval_order must list {groups}"
            last_rules = max(i for i, g in enumerate(order) if g.endswith(".rules"))
            first_alerts = min(i for i, g in enumerate(order) if g.endswith(".alerts"))
            assert last_rules < first_alerts, f"{path.name}: recording groups first"


# --- A real Alertmanager with alerts/alertmanager.yml ---------------------------------------------

def _post_alerts(url: str, alerts: list[dict]) -> None:
    req = urllib.request.Request(url + "/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def _states(url: str) -> dict[str, dict]:
    """alertname + site/host/ce -> the alert's status as Alertmanager reports it."""
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as resp:
        alerts = json.load(resp)
    return {"/".join(a["labels"].get(k, "") for k in ("alertname", "dirac_instance", "site", "host", "ce", "owner"))
            .rstrip("/"): a["status"] for a in alerts}


def _wait_for(url: str, expected: dict[str, str], timeout: float = 20.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    states: dict[str, dict] = {}
    while time.monotonic() < deadline:
        states = _states(url)
        if all(states.get(k, {}).get("state") == v for k, v in expected.items()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"Alertmanager states {states} never matched {expected}")


def _alert(labels: dict, ends: datetime) -> dict:
    now = datetime.now(timezone.utc)
    return {"labels": {**labels}, "annotations": {"summary": "test"},
            "startsAt": (now - timedelta(minutes=10)).isoformat(), "endsAt": ends.isoformat()}


def test_alertmanager_central_failure_inhibits_its_instance_job_alerts_only(tmp_path):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    central = {"alertname": "DiracCentralFailure", "severity": "critical", "signal": "jobs", "blame": "central",
               "dirac_instance": "bes"}
    site = {"alertname": "DiracSiteJobFailureRatioCritical", "severity": "critical", "blame": "site",
            "dirac_instance": "bes", "site": "BES.UCAS.cn"}
    ce = {"alertname": "DiracPilotsFailing", "severity": "warning", "blame": "site", "dirac_instance": "bes",
          "site": "BES.UCAS.cn", "ce": "ce.ucas.ac.cn"}
    host = {"alertname": "DiracBlackHoleHost", "severity": "warning", "blame": "host", "dirac_instance": "bes",
            "site": "BES.WHU.cn", "host": "wn001.whu.edu.cn"}
    user = {"alertname": "DiracUserJobsFailing", "severity": "warning", "blame": "user", "dirac_instance": "bes",
            "owner": "liuhm", "owner_group": "bes_user"}
    heartbeat = {"alertname": "DiracHeartbeatLagRising", "severity": "warning", "blame": "site",
                 "dirac_instance": "bes", "site": "BES.JINR.ru"}
    other_instance = {"alertname": "DiracSiteJobFailureRatioCritical", "severity": "critical", "blame": "site",
                      "dirac_instance": "juno", "site": "BES.UCAS.cn"}
    other = {"alertname": "DiracExporterCollectorFailing", "severity": "warning", "blame": "monitoring",
             "collector": "pilots", "instance": "exporter:9810"}
    am = services.start_alertmanager(ALERTS / "alertmanager.yml", tmp_path / "alertmanager")
    try:
        _post_alerts(am.url, [_alert(x, later) for x in (central, site, ce, host, user, heartbeat, other_instance,
                                                          other)])
        states = _wait_for(am.url, {
            "DiracCentralFailure/bes": "active",
            "DiracSiteJobFailureRatioCritical/bes/BES.UCAS.cn": "suppressed",
            "DiracBlackHoleHost/bes/BES.WHU.cn/wn001.whu.edu.cn": "suppressed",
            "DiracUserJobsFailing/bes////liuhm": "suppressed",
            # other causes, another DIRAC instance, the monitoring itself: not inhibited
            "DiracHeartbeatLagRising/bes/BES.JINR.ru": "active",
            "DiracSiteJobFailureRatioCritical/juno/BES.UCAS.cn": "active",
            "DiracExporterCollectorFailing": "active",
            # the critical site alert covers its site's CE alert
            "DiracPilotsFailing/bes/BES.UCAS.cn//ce.ucas.ac.cn": "suppressed",
        })
        assert states["DiracSiteJobFailureRatioCritical/bes/BES.UCAS.cn"]["inhibitedBy"]

        # Central failure over: the site alert pages again and still covers its CE alert, but never a host
        # alert (a black-hole node at a site with a critical site alert stays visible).
        host_same_site = {**host, "site": "BES.UCAS.cn", "host": "wn007.ucas.ac.cn"}
        _post_alerts(am.url, [_alert(central, datetime.now(timezone.utc) - timedelta(seconds=1)),
                              _alert(host_same_site, later)])
        _wait_for(am.url, {
            "DiracSiteJobFailureRatioCritical/bes/BES.UCAS.cn": "active",
            "DiracPilotsFailing/bes/BES.UCAS.cn//ce.ucas.ac.cn": "suppressed",
            "DiracBlackHoleHost/bes/BES.WHU.cn/wn001.whu.edu.cn": "active",
            "DiracBlackHoleHost/bes/BES.UCAS.cn/wn007.ucas.ac.cn": "active",
            "DiracUserJobsFailing/bes////liuhm": "active",
        })
    finally:
        am.stop()


@pytest.mark.parametrize(("labels", "receivers"), [
    ("alertname=DiracUserJobsFailing blame=user severity=warning owner=liuhm", "user-support"),
    ("alertname=DiracCentralFailure blame=central severity=critical signal=jobs", "dirac-team,shifter"),
    ("alertname=DiracSiteJobFailureRatioCritical blame=site severity=critical site=BES.UCAS.cn", "shifter"),
    ("alertname=DiracSiteJobFailureRatioHigh blame=site severity=warning site=BES.UCAS.cn", "site-admins"),
    ("alertname=DiracBlackHoleHost blame=host severity=warning site=BES.UCAS.cn host=wn1", "site-admins"),
    ("alertname=DiracExporterDown blame=monitoring severity=critical", "dirac-team"),
])
def test_routing_follows_blame(labels, receivers):
    """A user's fault reaches user support and never a site's shifter or admins; central goes to the DIRAC team."""
    done = run(["amtool", "config", "routes", "test", f"--config.file={ALERTS / 'alertmanager.yml'}",
                *labels.split()])
    assert done.stdout.strip() == receivers, done.stdout + done.stderr


def test_build_refuses_a_heartbeat_lag_the_exporter_has_no_bucket_for(tmp_path):
    """The heartbeat rule reads the bucket le=heartbeat_lag_seconds: a value without one would silence it."""
    text = (ALERTS / "thresholds.yml").read_text().replace("heartbeat_lag_seconds: 1800", "heartbeat_lag_seconds: 1700")
    (tmp_path / "thresholds.yml").write_text(text)
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import build; from"
                           " pathlib import Path; build.load_thresholds(Path(sys.argv[2]))", str(ALERTS),
                           str(tmp_path / "thresholds.yml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "heartbeat_lag_seconds 1700 is not a bucket bound" in done.stderr


def test_build_refuses_probe_windows_that_disagree(tmp_path):
    """DiracProbeFailing reads the last success over probe_last_success_lookback: shorter than
    probe_missing_seconds + probe_failing_min_seconds, one failed run could page as two; probe_missing_window
    is probe_missing_seconds as a range."""
    text = (ALERTS / "thresholds.yml").read_text()
    for old, new, message in (
            ("probe_last_success_lookback: 4h ", "probe_last_success_lookback: 3h ",
             "is shorter than probe_missing_seconds + probe_failing_min_seconds (12600 s)"),
            ("probe_last_success_lookback: 4h ", "probe_last_success_lookback: 4 hours ",
             "is not a Prometheus duration"),
            ("probe_missing_window: 2h ", "probe_missing_window: 3h ",
             "probe_missing_window 3h is not probe_missing_seconds")):
        assert old in text
        (tmp_path / "thresholds.yml").write_text(text.replace(old, new))
        done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import build; from"
                               " pathlib import Path; build.load_thresholds(Path(sys.argv[2]))", str(ALERTS),
                               str(tmp_path / "thresholds.yml")], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr


def test_alertmanager_silent_agent_inhibits_what_it_causes(tmp_path):
    """A silent reaper covers its frozen verdicts (probe jobs ending without a result) but not the probe's own
    failures; a silent agent covers the missing results and the submitter's unsent targets; a Pushgateway that
    is down covers the agents' silence it causes."""
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    reap = {"alertname": "DiracProbeAgentStale", "severity": "warning", "blame": "monitoring", "agent": "reap"}
    frozen = {"alertname": "DiracProbeFailing", "severity": "warning", "blame": "site", "source": "agent",
              "site": "BES.WHU.cn", "ce": "none"}
    own = {"alertname": "DiracProbeFailing", "severity": "warning", "blame": "site", "site": "BES.USTC.cn",
           "ce": "none"}
    missing = {"alertname": "DiracProbeResultMissing", "severity": "warning", "blame": "site",
               "site": "BES.JINR.ru", "ce": "none"}
    unsent = {"alertname": "DiracProbeNotSubmitted", "severity": "warning", "blame": "monitoring",
              "agent": "submit"}
    am = services.start_alertmanager(ALERTS / "alertmanager.yml", tmp_path / "alertmanager")
    try:
        _post_alerts(am.url, [_alert(x, later) for x in (reap, frozen, own, missing, unsent)])
        _wait_for(am.url, {
            "DiracProbeAgentStale": "active",
            "DiracProbeFailing//BES.WHU.cn//none": "suppressed",
            "DiracProbeFailing//BES.USTC.cn//none": "active",
            "DiracProbeResultMissing//BES.JINR.ru//none": "suppressed",
            "DiracProbeNotSubmitted": "suppressed",
        })
        pgw_down = {"alertname": "DiracPushgatewayDown", "severity": "warning", "blame": "monitoring",
                    "instance": "pgw:9091"}
        _post_alerts(am.url, [_alert(pgw_down, later)])
        _wait_for(am.url, {"DiracPushgatewayDown": "active", "DiracProbeAgentStale": "suppressed"})
    finally:
        am.stop()
