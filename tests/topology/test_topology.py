"""The production topology on loopback, real parts only (bes_demo/topology.py): two Prometheus replicas
(packaging/prometheus/prometheus.yml, replica a and b) scrape one exporter and one Pushgateway with our rules,
remote-write to one VictoriaMetrics that deduplicates, and alert two clustered Alertmanagers (the shipped
routing, each receiver a webhook that the test counts). The e2e scenario (tests/stack_scenario.py) feeds it.

The tests run in order on one stack: dashboards on VictoriaMetrics vs Prometheus, one notification per
alert, a replica stopped and restarted, an Alertmanager stopped and restarted, counters against JobDB.
Scrape and evaluation every second, rules with `for:` shortened to 3 s."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass

import pytest
from dirac_instance import DiracInstance, drop_instance
from notify_sinks import WebhookSink, render_alertmanager_config, wait_until
from stack_scenario import FAIL_SITE, OK_SITE, fast_rules, fill, panel_queries, scenario_instance, write_scenario

from bes_demo.topology import Topology, api, query
from bes_exporter.labels import FINAL_STATES, PILOT_FINAL_STATES

INTERVAL = 1.0  # seconds: scrape, evaluation, VictoriaMetrics' dedup interval
AM_ARGS = ["--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s", "--cluster.peer-timeout=2s"]
# Prometheus resends firing alerts every second, so a restarted Alertmanager learns them at once
PROM_ARGS = ["--rules.alert.resend-delay=1s"]
VM_ARGS = ["-search.latencyOffset=1s", "-search.disableCache"]


@dataclass
class HA:
    topo: Topology
    inst: DiracInstance
    hooks: WebhookSink  # every notification Alertmanager sent
    replicas_started: float  # time.time()
    filled: float  # time.monotonic() when the scenario was written


@pytest.fixture(scope="module")
def ha(tmp_path_factory, mariadb) -> HA:
    """The running topology with the e2e scenario written."""
    tmp = tmp_path_factory.mktemp("topology")
    inst, ago = scenario_instance()
    w = inst.writer
    with WebhookSink() as hooks:
        # one notification per group and receiver: nothing is re-sent within the test (group_interval 1h)
        am_cfg = render_alertmanager_config(tmp / "alertmanager.yml", "127.0.0.1:9", webhook_url=hooks.url,
                                            group_wait="1s", group_interval="1h")
        topo = Topology(tmp / "stack", inst.config(), am_cfg, rules_dir=fast_rules(tmp / "rules"),
                        interval=f"{INTERVAL:.0f}s", prometheus_args=PROM_ARGS, alertmanager_args=AM_ARGS,
                        vm_args=VM_ARGS)
        try:
            # Every counter's label set exists before the replicas start, as in production where a DIRAC
            # instance's sites, CEs and hosts predate the monitoring: a counter born inside a rule's window
            # would be seen born at a different value by each replica (PromQL ignores that first value), and
            # the replicas would disagree on what fires (docs/deployment.md, "Two replicas are not twins").
            topo.start(replicas=False)
            scrape(topo.exporter.url)  # the exporter's starting point: what ends from now on is counted
            write_scenario(w, ago)
            scrape(topo.exporter.url)
            topo.start_replicas()
            started = time.time()
            for p in topo.prometheus.values():
                wait_until(lambda p=p: query(p.url, "dirac_up == 1"), 60, "the exporter's first scrape")
            time.sleep(2)  # a couple of samples before anything happens
            fill(w, ago, topo.pushgateway.url, tmp)
            filled = time.monotonic()
            for p in (*topo.prometheus.values(), topo.vm):
                wait_until(lambda p=p: query(p.url, "site:dirac_probe_availability:ratio1d"), 90,
                           f"availability on {p.name}")
            yield HA(topo, inst, hooks, started, filled)
        finally:
            topo.stop()
            drop_instance(inst)


def scrape(exporter_url: str) -> None:
    with urllib.request.urlopen(exporter_url + "/metrics", timeout=30) as resp:
        assert b"dirac_up 1.0" in resp.read()


def values(base: str, expr: str, at: float) -> dict[str, float]:
    """Labels (JSON) -> value of an instant query; NaN results dropped (Grafana draws no point for them,
    and MetricsQL does not return them)."""
    out = {}
    for r in query(base, expr, at):
        v = float(r["value"][1])
        if not math.isnan(v):
            out[json.dumps(r["metric"], sort_keys=True)] = v
    return out


def without_increase(expr: str) -> str:
    """``increase(x[r])`` -> ``x``: what an increase can reach at most when every counter started in the window."""
    return re.sub(r"increase\(([^\[]+)\[[^\]]+\]\)", r"(\1)", expr)


def replica_spread(a: str, b: str, expr: str, at: float) -> float:
    """Sum over the recorded series in ``expr`` of their largest relative difference between the two replicas: how
    far a panel combining them can move when VictoriaMetrics keeps some series' samples from one replica and some
    from the other (a ratio of two series each off by d is off by about 2d)."""
    spread = 0.0
    for name in set(re.findall(r"\b[a-z_]+:[a-z0-9_:]+", expr)):
        va, vb = values(a, name, at), values(b, name, at)
        spread += max((abs(va[k] - vb[k]) / max(abs(va[k]), abs(vb[k]), 1e-9) for k in va.keys() & vb.keys()),
                      default=0.0)
    return spread


def test_every_panel_query_same_on_victoriametrics_as_on_the_prometheus_pair(ha):
    """Same series on VictoriaMetrics as on each replica; each value equal to one replica's (VictoriaMetrics keeps
    one of the two copies), but for MetricsQL's increase() (no extrapolation, see below) and panels over several
    recorded series (their samples can come from different replicas: within their spread between replicas)."""
    topo = ha.topo
    a, b, vm = topo.prometheus["a"].url, topo.prometheus["b"].url, topo.vm.url
    # counters still for longer than the panels' 20 s rate window: rate() is the same in PromQL and MetricsQL
    time.sleep(max(0.0, ha.filled + 25 - time.monotonic()))
    at = time.time() - 2
    queries = panel_queries(lambda e: query(a, e, at))
    assert len(queries) > 40
    # PromQL extrapolates increase() by up to 1.5 intervals beyond its samples, MetricsQL does not
    extrapolation = 2 * INTERVAL / (at - ha.replicas_started)
    wrong, differ = [], 0
    for where, expr in queries:
        pa, pb, pv = values(a, expr, at), values(b, expr, at), values(vm, expr, at)
        differ += pa != pb
        if not set(pv) == set(pa) == set(pb):
            wrong.append(f"{where}: series on VM/a/b {sorted(pv)} / {sorted(pa)} / {sorted(pb)}")
            continue
        raw_increase = "increase(" in expr
        ceiling = values(vm, without_increase(expr), at) if raw_increase else {}
        for key, v in pv.items():
            mine = [p[key] for p in (pa, pb) if key in p]
            if any(math.isclose(v, x, rel_tol=1e-6, abs_tol=1e-3) for x in mine):
                continue
            # MetricsQL's increase() also counts the value a series was born with, PromQL's does not (and
            # extrapolates): VictoriaMetrics sees at least what Prometheus sees, at most the counter's value.
            if raw_increase and max(mine) * (1 - extrapolation) <= v <= ceiling.get(key, -1) * (1 + extrapolation):
                continue
            # Deduplication keeps each series' sample from either replica: a panel combining several recorded
            # series (evaluated at slightly different times by each replica) can mix them.
            mixed = replica_spread(a, b, expr, at) if not raw_increase else 0.0
            if not raw_increase and min(mine) * (1 - mixed) - 1e-3 <= v <= max(mine) * (1 + mixed) + 1e-3:
                continue
            wrong.append(f"{where}: {key} VM {v}, Prometheus a/b {pa.get(key)}/{pb.get(key)}")
    assert not wrong, "\n".join(wrong)
    print(f"{len(queries)} panel queries, {differ} differ between the replicas")
    # the replica label never reaches VictoriaMetrics: one series per target, not two
    assert len(query(vm, 'up{job="bes_exporter"}', at)) == 1


def notified(hooks: WebhookSink) -> Counter:
    """(receiver, alert labels) -> firing notifications received."""
    seen: Counter = Counter()
    for path, body in hooks.posts:
        for alert in body["alerts"]:
            if alert["status"] == "firing":
                seen[(path.strip("/"), json.dumps(alert["labels"], sort_keys=True))] += 1
    return seen


def active_alerts(am_url: str, older_than: float) -> set[tuple[str, str]]:
    """(receiver, labels) of every alert Alertmanager would notify (not inhibited, not silenced) that started
    more than ``older_than`` seconds ago."""
    out = set()
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=older_than)
    for a in api(am_url + "/api/v2/alerts", {"active": "true", "inhibited": "false", "silenced": "false"}):
        if dt.datetime.fromisoformat(re.sub(r"\.\d+", "", a["startsAt"]).replace("Z", "+00:00")) < cutoff:
            out |= {(r["name"], json.dumps(a["labels"], sort_keys=True)) for r in a["receivers"]}
    return out


def assert_each_notified_once(hooks: WebhookSink, am_url: str) -> Counter:
    seen = notified(hooks)
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, f"notified more than once: {twice}"
    missing = active_alerts(am_url, older_than=10) - set(seen)
    assert not missing, f"never notified: {missing}"
    assert not any("replica" in labels for _, labels in seen), "the replica label reached Alertmanager"
    return seen


def alert_key(receiver: str, site: str, alertname: str = "DiracSiteJobFailureRatioCritical") -> tuple[str, str]:
    return receiver, json.dumps({"alertname": alertname, "blame": "site", "severity": "critical", "site": site},
                                sort_keys=True)


def test_clustered_alertmanagers_notify_each_alert_once(ha):
    topo, hooks = ha.topo, ha.hooks
    wait_until(lambda: alert_key("shifter", FAIL_SITE) in notified(hooks), 60, "the failing site's page")
    time.sleep(5)  # the second Alertmanager waits its peer timeout (2 s), then must see the first one's log
    seen = assert_each_notified_once(hooks, topo.alertmanagers[1].url)
    assert len(seen) >= 5, seen


def export(vm_url: str, match: str, start: float, end: float) -> list[dict]:
    """Raw samples from VictoriaMetrics (/api/v1/export): one dict per series, timestamps in ms."""
    url = vm_url + "/api/v1/export?" + urllib.parse.urlencode({"match[]": match, "start": f"{start:.3f}",
                                                                "end": f"{end:.3f}"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def max_gap(timestamps_ms: list[int]) -> float:
    ts = sorted(timestamps_ms)
    return max((b - a) / 1000 for a, b in zip(ts, ts[1:]))


def test_replica_down_leaves_no_gap_in_victoriametrics(ha):
    topo = ha.topo
    a = topo.prometheus["a"]
    begin = time.time()
    time.sleep(3)
    a.stop()
    down = time.time()
    time.sleep(8)
    a.restart(timeout=60)
    up = time.time()
    wait_until(lambda: query(a.url, f'time() - timestamp(up{{job="bes_exporter"}}) < {2 * INTERVAL}'), 30,
               "replica a scraping again")
    time.sleep(4)  # its remote write catches up
    end = time.time() - 2
    rule = f'site:dirac_jobs_failed:ratio_rate30m{{site="{FAIL_SITE}"}}'
    for match in ('up{job="bes_exporter"}', 'up{job="pushgateway"}', "dirac_up", rule):
        (series,) = export(topo.vm.url, match, begin, end)
        assert "replica" not in series["metric"], series["metric"]
        # one sample per interval, from one replica or the other: when deduplication switches from one replica's
        # scrape phase to the other's, two samples can be up to (not quite) two intervals apart; a lost scrape
        # interval makes a gap of two or more
        gap = max_gap(series["timestamps"])
        assert gap < 2 * INTERVAL, f"{match}: a gap of {gap:.2f} s in VictoriaMetrics (a scrape interval lost)"
        n = len(series["timestamps"])
        # deduplicated: one sample per interval, not one per replica
        assert n <= (end - begin) / INTERVAL + 2, f"{match}: {n} samples in {end - begin:.0f} s"
    # ... while replica a itself lost that time: the continuity came from replica b
    own = query(a.url, f'up{{job="bes_exporter"}}[{end - begin + 5:.0f}s]', end)[0]["values"]
    own_gap = max_gap([int(float(t) * 1000) for t, _ in own if float(t) >= begin])
    assert own_gap >= (up - down) - 2, f"replica a was down {up - down:.0f} s but shows a gap of {own_gap:.1f} s"


def test_alertmanager_down_every_alert_still_notified_once(ha):
    topo, inst, hooks = ha.topo, ha.inst, ha.hooks
    am1, am2 = topo.alertmanagers
    am1.stop()
    w = inst.writer
    for _ in range(20):  # a new fault while one Alertmanager is down: the healthy site starts failing
        w.run_to(w.submit(), OK_SITE, "Failed", "Application Finished With Errors")
    wait_until(lambda: alert_key("shifter", OK_SITE) in notified(hooks), 90, "the new page, from the survivor")
    am1.restart(timeout=30)
    wait_until(lambda: len(api(am1.url + "/api/v2/alerts")) >= 5, 30, "alerts resent to the restarted one")
    time.sleep(6)  # group_wait, peer timeout and the gossip of the notification log
    assert_each_notified_once(hooks, am1.url)


def db_truth(inst) -> tuple[dict, dict]:
    """Finished jobs per (site, status) and finished pilots per (site, ce, status), read from the databases. Jobs
    count at a site only if they ran there (StartExecTime set: these single-life jobs), as the exporter counts."""
    jobs = {(site, status): n for site, status, n in inst.query(
        f"SELECT Site, Status, COUNT(*) FROM `{inst.dbs.jobdb}`.Jobs WHERE Status IN %s AND StartExecTime IS NOT NULL"
        " GROUP BY Site, Status", (FINAL_STATES,))}
    pilots = {(site, ce, status): n for site, ce, status, n in inst.query(
        f"SELECT GridSite, DestinationSite, Status, COUNT(*) FROM `{inst.dbs.pilotdb}`.PilotAgents"
        " WHERE Status IN %s GROUP BY GridSite, DestinationSite, Status", (PILOT_FINAL_STATES,))}
    return jobs, pilots


def test_counters_exact_with_two_scrapers(ha):
    """Both replicas scraped the exporter throughout, during writes: each counter equals JobDB's count, on
    either replica and on VictoriaMetrics (the exporter serialises scrapes; none counts a change twice)."""
    topo, inst = ha.topo, ha.inst
    time.sleep(3)  # the last writes are scraped
    jobs, pilots = db_truth(inst)
    assert sum(jobs.values()) > 80 and sum(pilots.values()) > 50
    for name, base in (("a", topo.prometheus["a"].url), ("b", topo.prometheus["b"].url), ("vm", topo.vm.url)):
        got_jobs = {(r["metric"]["site"], r["metric"]["status"]): round(float(r["value"][1]))
                    for r in query(base, "sum by (site, status) (dirac_jobs_finished_total) > 0")}
        got_pilots = {(r["metric"]["site"], r["metric"]["ce"], r["metric"]["status"]): round(float(r["value"][1]))
                      for r in query(base, "sum by (site, ce, status) (dirac_pilots_finished_total) > 0")}
        assert got_jobs == jobs, name
        assert got_pilots == pilots, name
