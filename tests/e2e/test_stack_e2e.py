"""End to end on real parts: DIRAC's schema in MariaDB (v8 generation, so hosts exist) → our exporter →
Prometheus with our recording and alerting rules → Alertmanager; probe results pushed by the real
bes-probe to a real Pushgateway, and the agents' state set pushed by the agents' own Pushgateway client.

One stack serves the module: a failing site must reach Alertmanager while a healthy one stays quiet,
every panel query of every dashboard must return data, and a central failure must be one page that comes
first (the site job alerts held, the instance's other job pages inhibited through Alertmanager). Rules are
rendered from alerts/src with every ``for:`` shortened; the expressions and thresholds are the shipped ones."""

from __future__ import annotations

import re
import time

import pytest
from dirac_instance import drop_instance
from stack_scenario import (
    BH_SITE,
    BROKEN_OWNER,
    DIRAC_INSTANCE,
    FAIL_SITE,
    HB_SITE,
    NM_SITE,
    OK_SITE,
    fast_rules,
    fill,
    panel_queries,
    scenario_instance,
)

from bes_demo.stack import Stack


@pytest.fixture(scope="module")
def live(tmp_path_factory, mariadb):
    tmp = tmp_path_factory.mktemp("stack")
    inst, ago = scenario_instance()
    w = inst.writer
    stack = Stack(tmp, inst.config(instance=DIRAC_INSTANCE), rules_dir=fast_rules(tmp / "rules"))
    try:
        stack.start()
        stack.wait_for(lambda: stack.query("dirac_up == 1"), 60, message="the exporter's first scrape")
        time.sleep(2)  # a couple of zero samples before anything happens
        fill(w, ago, stack.pushgateway.url, tmp)
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


def test_broken_workflow_is_the_users_and_pages_no_site(live):
    """BROKEN_OWNER's jobs fail at the black-hole and heartbeat-cut sites and in the optimizers: one user alert
    naming owner, group, sites and reasons; neither site gets a job-failure page for it."""
    stack, _, _ = live
    alert = stack.wait_for(lambda: am_alerts(stack, "DiracUserJobsFailing", owner=BROKEN_OWNER), 90,
                           message="DiracUserJobsFailing at Alertmanager")[0]
    assert alert["labels"]["blame"] == "user" and alert["labels"]["owner_group"] == "bes_user"
    assert "site" not in alert["labels"]
    text = alert["annotations"]["description"]
    for part in (BH_SITE, HB_SITE, "application_error", " optimizer, "):
        assert part in text, (part, text)
    assert re.search(r"\b[1-9]\d* failed before running", text), text  # 6, as increase() extrapolates it
    fired = stack.query('max_over_time(ALERTS{alertname=~"DiracSiteJobFailureRatio.*", alertstate="firing",'
                        f' site=~"{BH_SITE}|{HB_SITE}"}}[10m])'.replace(".cn", "[.]cn"))
    assert fired == [], [f["metric"] for f in fired]


def test_every_dashboard_panel_query_returns_data(live):
    stack, _, _ = live
    stack.wait_for(lambda: stack.query('ALERTS{alertstate="firing"}'), 90, message="a firing alert")
    empty = [f"{where}: {expr}" for where, expr in panel_queries(stack.query) if not stack.query(expr)]
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
