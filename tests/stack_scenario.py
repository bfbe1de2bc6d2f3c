"""The e2e scenario and the dashboards' panel queries, shared by tests/e2e and tests/topology.

``write_scenario`` writes, through DIRAC's schema, a healthy site and one of each fault (failing,
black-hole node, heartbeat cut, not matching) with their CEs' pilots, and one user's workflow failing at two
sites and in the optimizers; ``run_probe`` and
``push_agent_states`` fill the Pushgateway as the probe and the agents do. ``panel_queries`` expands every
panel query of grafana/dashboards/ as Grafana would, resolving the template variables with ``query``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from dirac_instance import DiracInstance, make_instance
from prometheus_client import CollectorRegistry, Gauge

from bes_demo.stack import ROOT
from bes_simulator.writer import utcnow
from probe_pushgateway.agent.pushgw import Pushgateway

Query = Callable[[str], list]

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


def scenario_instance() -> tuple[DiracInstance, Callable[[float], dt.datetime]]:
    """A DIRAC 8.0 instance (per-host metrics) with the scenario's sites Active, and ``ago(s)``: s seconds
    before now, the scenario's clock."""
    inst = make_instance("8.0")
    now = utcnow()
    for site in SITES:
        inst.writer.set_site_status(site, "Active")
    return inst, lambda seconds: now - dt.timedelta(seconds=seconds)


def write_scenario(w, ago) -> None:
    """Healthy, failing (and rescheduling), black-hole, heartbeat-cut and not-matching sites, and their CEs'
    pilots; one owner's workflow failing at the black-hole and the heartbeat-cut sites (too few jobs there to
    judge those sites by) and in the optimizers."""
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
    for _ in range(2):  # the JobWrapper could not fetch the input sandbox: rescheduled (the JDL names the site)
        j = w.submit(site=FAIL_SITE)
        w.optimize(j)
        w.match(j, FAIL_SITE)
        w.set_status(j, "Running", "Application", "Running")
        w.wrapper_reschedule(j, "Downloading InputSandbox")
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


def fill(w, ago: Callable, pushgateway_url: str, tmp: Path) -> None:
    """The whole scenario: ``write_scenario``, a probe run per site (cvmfs broken at FAIL_SITE), the agents'
    states. Call it after the exporter's first scrape (counters count only what ends after it)."""
    write_scenario(w, ago)
    good, bad = tmp / "cvmfs-ok", tmp / "cvmfs-missing"
    good.mkdir()
    (good / "README").write_text("ok")
    for site in SITES:
        run_probe(site, pushgateway_url, bad if site == FAIL_SITE else good, tmp)
    push_agent_states(pushgateway_url)


def substitute(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", "20s").replace("$__range", "10m")
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(f"${{{name}:queryparam}}", "").replace(f"${name}", value)
    return expr


def variable_values(query: Query, dash: dict, values: dict[str, str]) -> dict[str, str]:
    """Resolve each label_values() variable against Prometheus, as Grafana does: all values, joined ("" when
    there is none, e.g. dirac_instance with one unnamed instance: the panels then match every series)."""
    out = dict(values)
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["definition"])
        metric, label = m.group(1), m.group(2)
        found = {s["metric"].get(label) for s in query(f"group by ({label}) ({substitute(metric, out)})")}
        found.discard(None)
        # as Grafana does for Prometheus: regex-escaped, then escaped again inside the PromQL string
        out[var["name"]] = "|".join(sorted(re.escape(v).replace("\\", "\\\\") for v in found))
    return out


def panel_queries(query: Query) -> list[tuple[str, str]]:
    """(dashboard / panel / refId, PromQL) of every panel target, variables resolved through ``query``."""
    out = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        values = variable_values(query, dash, {})
        for p in dash["panels"]:
            for t in p.get("targets", []):
                out.append((f"{path.name} / {p['title']} / {t['refId']}", substitute(t["expr"], values)))
    return out
