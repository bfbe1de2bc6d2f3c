"""End to end on real parts: DIRAC's schema in MariaDB (v8 generation, so hosts exist) → our exporter →
Prometheus with our recording and alerting rules → Alertmanager; probe results pushed by the real
bes-probe to a real Pushgateway, and the agents' state set pushed by the agents' own Pushgateway client.

One stack serves the module: a failing site must reach Alertmanager while a healthy one stays quiet,
every panel query of every dashboard must return data, and a central failure must inhibit per-site
alerts through Alertmanager. Rules are rendered from alerts/src with every ``for:`` shortened; the
expressions and thresholds are the shipped ones."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dirac_instance import drop_instance, make_instance
from prometheus_client import CollectorRegistry, Gauge

from bes_demo.stack import ROOT, Stack
from bes_simulator.writer import utcnow
from probe_pushgateway.agent.pushgw import Pushgateway

OK_SITE, FAIL_SITE, BH_SITE, HB_SITE, NM_SITE = (
    "BES.IHEP-PBS.cn", "BES.WHU.cn", "BES.USTC.cn", "BES.UCAS.cn", "BES.JINR.ru")
SITES = (OK_SITE, FAIL_SITE, BH_SITE, HB_SITE, NM_SITE)
CE = {s: f"ce.{s.split('.')[1].lower()}.test" for s in SITES}
DIRAC_INSTANCE = "bes3"  # the exporter's `instance`: every exporter series and rule carries dirac_instance
BROKEN_OWNER = "bes_broken"  # a user whose workflow fails wherever it runs, and before running


def fast_rules(out: Path) -> Path:
    """alerts/src rendered with alerts/thresholds.yml, every `for:` shortened to 3 s."""
    spec = importlib.util.spec_from_file_location("alerts_build", ROOT / "alerts" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    values = build.load_thresholds()
    values.update({k: "3s" for k in values if k.endswith("_for")})
    out.mkdir(parents=True, exist_ok=True)
    for name, text in build.render_all(values).items():
        (out / name).write_text(text)
    return out


def write_scenario(w, ago) -> None:
    """Healthy, failing, black-hole, heartbeat-cut and not-matching sites, and their CEs' pilots; one owner's
    workflow failing at the black-hole and the heartbeat-cut sites (too few jobs there to judge those sites by)
    and in the optimizers."""
    for i in range(15):
        j = w.submit()
        w.run_to(j, OK_SITE, "Done", "Execution Complete", host=f"wn{i % 5:02d}.ihep.test")
    for _ in range(4):  # running with fresh heartbeats
        j = w.submit()
        w.optimize(j)
        w.match(j, OK_SITE)
        w.set_status(j, "Running", "Application", "Running", when=ago(300))
        w.set_host(j, "wn01.ihep.test")
        w.heartbeat(j)
    for i in range(15):
        j = w.submit(when=ago(900))
        w.run_to(j, FAIL_SITE, "Failed", "Application Finished With Errors", host=f"wn{i % 3:02d}.whu.test")
    w.run_to(w.submit(), FAIL_SITE, "Done", host="wn00.whu.test")
    for _ in range(8):  # a black hole: fails in seconds
        w.run_to(w.submit(), BH_SITE, "Failed", "Job has insufficient disk space to continue", host="bh01.ustc.test")
    for i in range(14):
        w.run_to(w.submit(), BH_SITE, "Done", host=f"wn{i % 4:02d}.ustc.test")
    for _ in range(6):  # heartbeats stopped 2000 s ago, and some already Stalled
        j = w.submit()
        w.optimize(j)
        w.match(j, HB_SITE)
        w.set_status(j, "Running", "Application", "Running", when=ago(3000))
        w.heartbeat(j, when=ago(2000))
        s = w.submit()
        w.optimize(s)
        w.match(s, HB_SITE)
        w.stall(s)
    for site, host in ((BH_SITE, "wn{:02d}.ustc.test"), (HB_SITE, "wn{:02d}.ucas.test")):
        for i in range(6):  # the user's own failures, at two sites (few per node: no black hole)
            j = w.submit(owner=BROKEN_OWNER, owner_group="bes_user")
            w.run_to(j, site, "Failed", "Application Finished With Errors", host=host.format(i % 3))
    for stage, app in (("InputData", "Input data not available"), ("JobScheduling", "No candidate sites available")):
        for _ in range(3):  # failed by DIRAC's optimizers before running (OptimizerExecutor's statuses)
            j = w.submit(owner=BROKEN_OWNER, owner_group="bes_user")
            w.set_status(j, "Failed", f"{stage} optimizer", app, source=stage)
    for _ in range(12):  # waiting for a site where nothing runs
        j = w.submit()
        w.optimize(j)
        w.set_attributes(j, Site=NM_SITE)
    for site in SITES:
        for k in range(12):
            p = w.submit_pilot(site, CE[site])
            w.set_pilot_status(p, "Aborted" if site == HB_SITE or k % 6 == 0 else "Done", "pilot ended")
    for _ in range(6):
        w.submit_pilot(NM_SITE, CE[NM_SITE], when=ago(3 * 3600), status="Waiting")


def run_probe(site: str, pgw_url: str, cvmfs: Path, tmp: Path) -> int:
    cfg = tmp / f"probe-{site}.yml"
    # the load limit is lifted: a busy test machine is not the fault under test (cvmfs is)
    cfg.write_text(json.dumps({"checks": {"environment": {"max_load_per_core": 1000}, "clock": {},
                                          "cvmfs": {"repositories": [str(cvmfs)]}}}))
    done = subprocess.run([sys.executable, "-m", "probe_pushgateway", "--config.file", str(cfg), "--site", site,
                           "--ce", CE[site], "--pushgateway", pgw_url, "--job-id", "42", "--workdir", str(tmp)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode


def push_agent_states(pgw_url: str) -> None:
    """The agents' state set per target (their Pushgateway client, as `reap` pushes it)."""
    client = Pushgateway(pgw_url)
    states = {OK_SITE: "ok", FAIL_SITE: "failed", BH_SITE: "busy", HB_SITE: "unknown", NM_SITE: "bad"}
    for site, state in states.items():
        reg = CollectorRegistry()
        g = Gauge("dirac_probe_status", "probe state", ["status"], registry=reg)
        for s in ("ok", "failed", "bad", "busy", "unknown"):
            g.labels(s).set(1 if s == state else 0)
        Gauge("dirac_site_downtime", "downtime", registry=reg).set(0)
        Gauge("dirac_probe_submitted_timestamp_seconds", "submitted", registry=reg).set(time.time() - 60)
        client.pushadd("bes_probe_agent", {"site": site, "ce": CE[site]}, reg)


@pytest.fixture(scope="module")
def live(tmp_path_factory, mariadb):
    tmp = tmp_path_factory.mktemp("stack")
    inst = make_instance("8.0")
    w = inst.writer
    now = utcnow()

    def ago(seconds: float) -> dt.datetime:
        return now - dt.timedelta(seconds=seconds)

    for site in SITES:
        w.set_site_status(site, "Active")
    stack = Stack(tmp, inst.config(instance=DIRAC_INSTANCE), rules_dir=fast_rules(tmp / "rules"))
    try:
        stack.start()
        stack.wait_for(lambda: stack.query("dirac_up == 1"), 60, message="the exporter's first scrape")
        time.sleep(2)  # a couple of zero samples before anything happens
        write_scenario(w, ago)
        good, bad = tmp / "cvmfs-ok", tmp / "cvmfs-missing"
        good.mkdir()
        (good / "README").write_text("ok")
        for site in SITES:
            run_probe(site, stack.pushgateway.url, bad if site == FAIL_SITE else good, tmp)
        push_agent_states(stack.pushgateway.url)
        stack.wait_for(lambda: stack.query(f'site:dirac_jobs_failed:ratio_rate30m{{site="{FAIL_SITE}"}} > 0.5'),
                       90, message="the failure ratio recording rule")
        stack.wait_for(lambda: stack.query("site:dirac_probe_availability:ratio1d"), 60, message="availability")
        yield stack, inst, ago
    finally:
        stack.stop()
        drop_instance(inst)


def am_alerts(stack: Stack, name: str, **labels) -> list[dict]:
    return [a for a in stack.alerts(active=False) if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def test_failing_site_alert_reaches_alertmanager_and_healthy_site_stays_quiet(live):
    stack, _, _ = live
    alert = stack.wait_for(lambda: am_alerts(stack, "DiracSiteJobFailureRatioCritical", site=FAIL_SITE), 90,
                           message="DiracSiteJobFailureRatioCritical at Alertmanager")[0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"].endswith("#diracsitejobfailureratiocritical")
    assert "application_error" in alert["annotations"]["description"]
    stack.wait_for(lambda: am_alerts(stack, "DiracBlackHoleHost", site=BH_SITE, host="bh01.ustc.test"), 90,
                   message="DiracBlackHoleHost for bh01")
    stack.wait_for(lambda: am_alerts(stack, "DiracHeartbeatLagRising", site=HB_SITE), 90,
                   message="DiracHeartbeatLagRising")
    quiet = [a["labels"] for a in stack.alerts(active=False) if a["labels"].get("site") == OK_SITE]
    assert quiet == [], quiet


def substitute(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", "20s").replace("$__range", "10m")
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(f"${{{name}:queryparam}}", "").replace(f"${name}", value)
    return expr


def variable_values(stack: Stack, dash: dict) -> tuple[dict[str, str], list[str]]:
    """Resolve each label_values() variable against Prometheus, as Grafana does: all values, joined; and the
    variables without values (resolved to "", as Grafana does)."""
    out: dict[str, str] = {}
    missing = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["definition"])
        metric, label = m.group(1), m.group(2)
        found = {s["metric"].get(label) for s in stack.query(f"group by ({label}) ({substitute(metric, out)})")}
        found.discard(None)
        if not found:
            missing.append(f"{dash['uid']}: variable ${var['name']} has no values ({var['definition']})")
        # as Grafana does for Prometheus: regex-escaped, then escaped again inside the PromQL string
        out[var["name"]] = "|".join(sorted(re.escape(v).replace("\\", "\\\\") for v in found))
    return out, missing


def test_every_dashboard_panel_query_returns_data(live):
    stack, _, _ = live
    stack.wait_for(lambda: stack.query('ALERTS{alertstate="firing"}'), 90, message="a firing alert")
    empty = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        values, missing = variable_values(stack, dash)
        empty += missing
        for p in dash["panels"]:
            for t in p.get("targets", []):
                expr = substitute(t["expr"], values)
                if not stack.query(expr):
                    empty.append(f"{path.name} / {p['title']} / {t['refId']}: {expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


def test_central_failure_is_one_page_and_comes_first(live):
    stack, inst, _ = live
    w = inst.writer
    site_alerts = 'ALERTS{alertname=~"DiracSiteJobFailureRatio.*", alertstate="firing"}'
    # what the earlier faults already raised (pending or firing) is not the central failure's
    before = {(a["metric"]["alertname"], a["metric"]["site"])
              for a in stack.query(site_alerts.replace('alertstate="firing"', 'alertstate=~"pending|firing"'))}
    t0 = time.monotonic()
    for site in (OK_SITE, BH_SITE, HB_SITE, NM_SITE):
        for k in range(15):  # many owners: one owner's workflow is never a central failure
            w.run_to(w.submit(owner=f"bes_user{k % 3}"), site, "Failed", "Exception During Execution")
    central = stack.wait_for(lambda: am_alerts(stack, "DiracCentralFailure", signal="jobs"), 120,
                             message="DiracCentralFailure at Alertmanager")[0]
    assert central["labels"]["severity"] == "critical" and central["labels"]["blame"] == "central"
    assert central["labels"]["dirac_instance"] == DIRAC_INSTANCE

    # The site job alerts are held by the rules while the central condition holds: no site that failed with
    # it got a page of its own (so none before the central one); the ones already firing resolve.
    window = int(time.monotonic() - t0) + 5
    fired = {(a["metric"]["alertname"], a["metric"]["site"])
             for a in stack.query(f"max_over_time({site_alerts}[{window}s])")}
    assert fired <= before, f"site pages during the central failure: {sorted(fired - before)}"
    stack.wait_for(lambda: not stack.query(site_alerts), 30, message="site job alerts held during the central failure")

    # Alertmanager inhibits the instance's other job-failure pages (black hole, the user's own), not the
    # alerts with other causes (a heartbeat cut).
    names = ("DiracBlackHoleHost", "DiracUserJobsFailing", "DiracHeartbeatLagRising")

    def states() -> dict | None:
        got = {a["labels"]["alertname"]: a["status"]["state"] for a in stack.alerts(active=False)
               if a["labels"]["alertname"] in names}
        held = all(v == "suppressed" for k, v in got.items() if k != "DiracHeartbeatLagRising")
        return got if got.get("DiracHeartbeatLagRising") == "active" and held else None

    stack.wait_for(states, 60, message="job alerts inhibited, the heartbeat alert still active")
