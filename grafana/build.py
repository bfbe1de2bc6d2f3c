#!/usr/bin/env python3
"""Render grafana/dashboards/*.json (Grafana >= 10) from the panel lists below.

    .venv/bin/python grafana/build.py           # write the JSON files
    .venv/bin/python grafana/build.py --check   # exit 1 if the committed JSON is not what this renders

Queries use only metrics of docs/metrics.md and recording rules of alerts/rules; thresholds match
alerts/thresholds.yml (read from it), runbook links use its runbook_url.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
T = yaml.safe_load((HERE.parent / "alerts" / "thresholds.yml").read_text())
RUNBOOK = T["runbook_url"]
DS = {"type": "prometheus", "uid": "${datasource}"}
EXP = 'instance=~"$instance"'
SITE = 'site=~"$site"'
PROBE, AGENT = T["probe_job"], T["agent_job"]

PROBE_STATES = {"5": ("OK", "green"), "4": ("CRITICAL", "red"), "3": ("UNKNOWN", "orange"),
                "2": ("DOWNTIME", "blue"), "1": ("MISSING", "purple")}


def runbook(alert: str, text: str) -> str:
    return f"{text} Runbook: [{alert}]({RUNBOOK}#{alert.lower()})."


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> dict:
    t = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant}
    if table:
        t["format"] = "table"
    return t


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def state_mappings(states: dict[str, tuple[str, str]]) -> list[dict]:
    return [{"type": "value", "options": {k: {"text": t, "color": c, "index": i}
                                          for i, (k, (t, c)) in enumerate(states.items())}}]


def panel(kind: str, title: str, desc: str, targets: list[dict], unit: str = "short", **extra) -> dict:
    p = {"type": kind, "title": title, "description": desc, "datasource": DS, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": extra.pop("overrides", [])},
         "options": extra.pop("options", {})}
    if "thresholds" in extra:
        p["fieldConfig"]["defaults"]["thresholds"] = extra.pop("thresholds")
        p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    if "custom" in extra:
        p["fieldConfig"]["defaults"]["custom"] = extra.pop("custom")
    if "mappings" in extra:
        p["fieldConfig"]["defaults"]["mappings"] = extra.pop("mappings")
    if "w" in extra:
        p["_w"], p["_h"] = extra.pop("w"), extra.pop("h", 8)
    p.update(extra)
    return p


def var_datasource() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def var_query(name: str, query: str, label: str, multi: bool = True) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"var-{name}"}, "definition": query, "refresh": 2,
            "includeAll": multi, "multi": multi, "allValue": ".*" if multi else None, "sort": 1,
            "current": {}, "hide": 0, "options": [], "regex": ""}


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right in rows of width 24; ids in order."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w", 12), p.pop("_h", 8)
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = i
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_h = max(row_h, h)
    return panels


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict]) -> dict:
    return {"uid": uid, "title": title, "description": description, "tags": ["dirac", "bes-monitoring"],
            "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "1m",
            "time": {"from": "now-6h", "to": "now"}, "graphTooltip": 1,
            "annotations": {"list": []}, "links": [
                {"title": "DIRAC dashboards", "type": "dashboards", "tags": ["dirac"], "asDropdown": True}],
            "templating": {"list": [var_datasource(), *variables]}, "panels": layout(panels)}


def ratio_thresholds() -> dict:
    return thresholds((None, "green"), (T["site_failure_ratio_warning"], "orange"),
                      (T["site_failure_ratio_critical"], "red"))


INSTANCE = var_query("instance", "label_values(dirac_up, instance)", "Exporter")
SITES = var_query("site", f"label_values(dirac_jobs_finished_total{{{EXP}}}, site)", "Site")


def overview() -> dict:
    site_table = [
        target(f"max by (site) (site:dirac_probe_state:code{{{SITE}}})", ref="A", instant=True, table=True),
        target(f"max by (site) (site:dirac_probe_availability:ratio1d{{{SITE}}})", ref="B", instant=True, table=True),
        target(f"max by (site) (site:dirac_probe_availability:ratio7d{{{SITE}}})", ref="C", instant=True, table=True),
        target(f"max by (site) (site:dirac_jobs_failed:ratio_rate30m{{{SITE}}})", ref="D", instant=True, table=True),
        *[target(f'sum by (site) (dirac_jobs{{{EXP}, {SITE}, status="{s}"}})', ref=r, instant=True, table=True)
          for r, s in (("E", "Running"), ("F", "Waiting"), ("G", "Stalled"))],
        target(f"max by (site) (site_ce:dirac_pilots_failed:ratio_rate1h{{{SITE}}})", ref="H", instant=True,
               table=True),
        target(f'count by (site) (ALERTS{{alertstate="firing", {SITE}}})'
               f" or on (site) (0 * group by (site) (dirac_jobs{{{EXP}, {SITE}}}))", ref="I", instant=True,
               table=True),
    ]
    names = {"Value #A": "Probe", "Value #B": "Availability 24h", "Value #C": "Availability 7d",
             "Value #D": "Failure ratio 30m", "Value #E": "Running", "Value #F": "Waiting",
             "Value #G": "Stalled", "Value #H": "Pilot failure ratio 1h", "Value #I": "Firing alerts"}

    def override(col: str, **props) -> dict:
        return {"matcher": {"id": "byName", "options": col},
                "properties": [{"id": k, "value": v} for k, v in props.items()]}

    cell = {"custom.cellOptions": {"type": "color-background"}}
    overrides = [
        override("Probe", mappings=state_mappings(PROBE_STATES), **cell),
        override("Availability 24h", unit="percentunit", thresholds=thresholds((None, "red"), (0.8, "orange"),
                                                                                (0.95, "green")), **cell),
        override("Availability 7d", unit="percentunit", thresholds=thresholds((None, "red"), (0.8, "orange"),
                                                                               (0.95, "green")), **cell),
        override("Failure ratio 30m", unit="percentunit", thresholds=ratio_thresholds(), **cell),
        override("Pilot failure ratio 1h", unit="percentunit",
                 thresholds=thresholds((None, "green"), (T["pilot_rising_min_ratio"], "orange"),
                                       (T["pilot_failure_ratio"], "red")), **cell),
        override("Firing alerts", thresholds=thresholds((None, "green"), (1, "red")), **cell),
        override("site", links=[{"title": "Site detail",
                                 "url": "/d/dirac-site/dirac-site?var-site=${__value.raw}&${instance:queryparam}"}]),
    ]
    panels = [
        panel("stat", "Exporter up", "1 when every exporter reached DIRAC's JobDB in its last scrape. "
              + runbook("DiracJobDBUnreachable", "0 means no job metric is current."),
              [target(f"min(dirac_up{{{EXP}}})", instant=True)], w=4, h=4,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("stat", "Sites with firing alerts", "Sites that have at least one firing alert now.",
              [target(f'count(count by (site) (ALERTS{{alertstate="firing", {SITE}}})) or vector(0)', instant=True)],
              w=4, h=4, thresholds=thresholds((None, "green"), (1, "red"))),
        *[panel("stat", f"{s} jobs", f"Jobs in status {s} at the selected sites (probe jobs excluded).",
                [target(f'sum(dirac_jobs{{{EXP}, {SITE}, status="{s}"}})', instant=True)], w=4, h=4)
          for s in ("Running", "Waiting", "Stalled")],
        panel("stat", "Mean probe availability 24h", "ARGO availability from the probes, averaged over sites.",
              [target(f"avg(site:dirac_probe_availability:ratio1d{{{SITE}}})", instant=True)], unit="percentunit",
              w=4, h=4, thresholds=thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))),
        panel("table", "Sites", "One row per site: probe state (ARGO), availability, job failure ratio (RSS "
              "efficiency line: warning 0.1, ban 0.5), job counts, worst CE pilot failure ratio and firing "
              "alerts. Click a site for its detail. "
              + runbook("DiracSiteJobFailureRatioHigh", "Colours follow the alert thresholds."),
              site_table, w=24, h=12, overrides=overrides,
              transformations=[{"id": "merge", "options": {}},
                               {"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": names}}]),
        panel("timeseries", "Job failure ratio by site (30 min)", runbook(
              "DiracSiteJobFailureRatioHigh", "Failed / finished over 30 min (1 − RSS efficiency)."),
              [target(f"site:dirac_jobs_failed:ratio_rate30m{{{SITE}}}", "{{site}}")], unit="percentunit",
              thresholds=ratio_thresholds(),
              options={"legend": {"displayMode": "table", "placement": "right"}}),
        panel("timeseries", "Finished jobs per minute by site", "Jobs reaching a final state, per minute.",
              [target(f"60 * sum by (site) (rate(dirac_jobs_finished_total{{{EXP}, {SITE}}}[$__rate_interval]))",
                      "{{site}}")]),
        panel("table", "Top fail reasons", "Most frequent reasons of failed jobs over the dashboard's range "
              "(DIRAC's MinorStatus, normalised).",
              [target(f"topk(15, sum by (site, reason) (increase(dirac_jobs_failed_total{{{EXP}, {SITE}}}"
                      "[$__range])) > 0)", instant=True, table=True)], w=24,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value": "Failed jobs"}}}]),
    ]
    return dashboard("dirac-overview", "DIRAC sites overview",
                     "What is wrong where: one row per site with probes, failures, jobs, pilots and alerts.",
                     [INSTANCE, SITES], panels)


def site_detail() -> dict:
    ce = var_query("ce", f"label_values(dirac_pilots_finished_total{{{EXP}, {SITE}}}, ce)", "CE")
    sel = f"{EXP}, {SITE}"
    host_link = ("/d/dirac-host/dirac-worker-node?var-site=${__data.fields.site}"
                 "&var-host=${__data.fields.host}&${instance:queryparam}")
    panels = [
        panel("timeseries", "Jobs by status", "Jobs currently in each non-final status (probe jobs excluded).",
              [target(f"sum by (status) (dirac_jobs{{{sel}}})", "{{status}}")],
              custom={"stacking": {"mode": "normal"}}),
        panel("timeseries", "Finished jobs per minute by status", "Job lives ending in each final status.",
              [target(f"60 * sum by (status) (rate(dirac_jobs_finished_total{{{sel}}}[$__rate_interval]))",
                      "{{status}}")]),
        panel("timeseries", "Fail reasons per minute", runbook("DiracSiteJobFailureRatioHigh",
              "Failed jobs by normalised MinorStatus."),
              [target(f"60 * sum by (reason) (rate(dirac_jobs_failed_total{{{sel}}}[$__rate_interval])) > 0",
                      "{{reason}}")]),
        panel("timeseries", "Queue wait percentiles", "Submission to start of execution of jobs that started.",
              [target(f"histogram_quantile({q}, sum by (le) (rate(dirac_job_wait_seconds_bucket{{{sel}}}"
                      "[$__rate_interval])))", f"p{int(q * 100)}", ref=r)
               for r, q in (("A", 0.5), ("B", 0.9), ("C", 0.99))], unit="s"),
        panel("bargauge", "Heartbeat age of running jobs", runbook("DiracHeartbeatLagRising",
              "Running/Completing jobs by seconds since their last heartbeat; DIRAC stalls them at 4500 s."),
              [target(f"sum by (le) (dirac_running_jobs_heartbeat_age_seconds_bucket{{{sel}}})", "≤ {{le}} s",
                      instant=True)],
              options={"displayMode": "gradient", "orientation": "horizontal"}),
        panel("timeseries", "Jobs without heartbeat, and stalled", runbook("DiracJobsStalled",
              "Running jobs past the heartbeat lag line, and jobs DIRAC already marked Stalled."),
              [target(f"site:dirac_running_jobs_heartbeat_lagging:sum{{{SITE}}}", "lagging {{site}}"),
               target(f'sum by (site) (dirac_jobs{{{sel}, status="Stalled"}})', "stalled {{site}}", ref="B")]),
        panel("timeseries", "Pilots per CE by status", runbook("DiracPilotsStuckWaiting",
              "Pilots not yet finished, per CE and status."),
              [target(f'sum by (ce, status) (dirac_pilots{{{sel}, ce=~"$ce"}})', "{{ce}} {{status}}")]),
        panel("timeseries", "Pilot failure ratio per CE (1 h)", runbook("DiracPilotsFailing",
              "(Failed + Aborted) / finished pilots at the CE over 1 h."),
              [target(f'site_ce:dirac_pilots_failed:ratio_rate1h{{{SITE}, ce=~"$ce"}}', "{{ce}}")],
              unit="percentunit", thresholds=thresholds((None, "green"), (T["pilot_failure_ratio"], "red"))),
        panel("stat", "Oldest waiting pilot", runbook("DiracPilotsStuckWaiting",
              "Age of the oldest Submitted/Waiting pilot per CE."),
              [target(f'max by (ce) (dirac_pilot_oldest_waiting_seconds{{{sel}, ce=~"$ce"}})', "{{ce}}",
                      instant=True)], unit="s",
              thresholds=thresholds((None, "green"), (T["pilot_waiting_seconds"], "red"))),
        panel("table", "Worst hosts (1 h)", runbook("DiracBlackHoleHost",
              "Worker nodes with the most fast failures; click a host for its view."),
              [target(f"topk(20, site_host:dirac_host_job_failures_fast:increase1h{{{SITE}}})", ref="A",
                      instant=True, table=True),
               target(f"site_host:dirac_host_jobs_failed:ratio_rate1h{{{SITE}}}", ref="B", instant=True,
                      table=True)],
              transformations=[{"id": "merge", "options": {}},
                               {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
                                   "Value #A": "Fast failures", "Value #B": "Failure ratio"}}}],
              overrides=[{"matcher": {"id": "byName", "options": "host"},
                          "properties": [{"id": "links", "value": [{"title": "Host view", "url": host_link}]}]},
                         {"matcher": {"id": "byName", "options": "Failure ratio"},
                          "properties": [{"id": "unit", "value": "percentunit"}]}]),
    ]
    return dashboard("dirac-site", "DIRAC site", "One site in depth: jobs, failures, heartbeats, pilots, hosts.",
                     [INSTANCE, SITES, ce], panels)


def host() -> dict:
    hosts = var_query("host", f"label_values(dirac_host_jobs_finished_total{{{EXP}, {SITE}}}, host)", "Host")
    sel = f'{EXP}, {SITE}, host=~"$host"'
    panels = [
        panel("timeseries", "Finished jobs per minute by status", "Jobs that ended on this worker node.",
              [target(f"60 * sum by (host, status) (rate(dirac_host_jobs_finished_total{{{sel}}}"
                      "[$__rate_interval]))", "{{host}} {{status}}")]),
        panel("timeseries", "Fast failures per hour", runbook("DiracBlackHoleHost",
              f"Failed jobs that ran less than {T.get('fast_failure_seconds', 300)} s: the black-hole signature."),
              [target(f"sum by (host) (increase(dirac_host_job_failures_fast_total{{{sel}}}[1h]))", "{{host}}")]),
        panel("timeseries", "Failure ratio: host vs rest of site (1 h)", runbook("DiracBlackHoleHost",
              "A black hole fails most of its jobs while the rest of the site does not."),
              [target(f'site_host:dirac_host_jobs_failed:ratio_rate1h{{{SITE}, host=~"$host"}}', "{{host}}"),
               target(f'site_host:dirac_host_jobs_failed:rest_of_site_ratio_rate1h{{{SITE}, host=~"$host"}}',
                      "rest of {{site}}", ref="B")], unit="percentunit"),
        panel("stat", "Since the last job ended", "Seconds since the node's latest job finished.",
              [target(f"time() - max by (host) (dirac_host_last_job_end_timestamp_seconds{{{sel}}})", "{{host}}",
                      instant=True)], unit="s"),
    ]
    return dashboard("dirac-host", "DIRAC worker node", "One worker node: its jobs and its fast failures.",
                     [INSTANCE, SITES, hosts], panels)


def probes() -> dict:
    psite = var_query("site", f'label_values(dirac_probe_success{{job="{PROBE}"}}, site)', "Site")
    pce = var_query("ce", f'label_values(dirac_probe_success{{job="{PROBE}", {SITE}}}, ce)', "CE")
    check = var_query("check", f'label_values(dirac_probe_success{{job="{PROBE}"}}, check)', "Check")
    psel = f'job="{PROBE}", {SITE}, ce=~"$ce"'
    ok = {"1": ("OK", "green"), "0": ("FAILED", "red")}
    argo = ("sum without (state) (avg_over_time(site:dirac_probe_state:bool{{state=~\"{num}\", {s}}}[$__range]))"
            " / (sum without (state) (avg_over_time(site:dirac_probe_state:bool{{state=~\"{den}\", {s}}}"
            "[$__range])) > 0)")
    panels = [
        panel("state-timeline", "Probe results per site, CE and check", runbook(
              "DiracProbeFailing", "Each probe run's pass/fail per check, as pushed by the probe."),
              [target(f'dirac_probe_success{{{psel}, check=~"$check"}}', "{{site}} {{ce}} {{check}}")],
              mappings=state_mappings(ok), w=24, h=10),
        panel("state-timeline", "Site state (ARGO)", runbook("DiracProbeResultMissing",
              "OK, CRITICAL, UNKNOWN (probe job timed out: busy/unknown), DOWNTIME, MISSING (no result)."),
              [target(f"site:dirac_probe_state:code{{{SITE}}}", "{{site}}")], mappings=state_mappings(PROBE_STATES),
              w=24),
        panel("timeseries", "Check durations", "How long each check took on the worker node.",
              [target(f'dirac_probe_duration_seconds{{{psel}, check=~"$check"}}', "{{site}} {{check}}")], unit="s"),
        panel("table", "Failed checks and reasons", runbook("DiracProbeFailing",
              "Checks that failed in the latest run, with their bounded reason code."),
              [target(f'dirac_probe_check_info{{{psel}, reason!="ok"}} == 1', instant=True, table=True)],
              transformations=[{"id": "organize", "options": {"excludeByName": {
                  "Time": True, "Value": True, "__name__": True, "instance": True}}}]),
        panel("timeseries", "Age of the latest probe result", runbook("DiracProbeResultMissing",
              f"Seconds since the probe last pushed; MISSING past {T['probe_missing_seconds']} s."),
              [target(f"time() - dirac_probe_last_run_timestamp_seconds{{{psel}}}", "{{site}} {{ce}}")], unit="s",
              thresholds=thresholds((None, "green"), (T["probe_missing_seconds"], "red"))),
        panel("state-timeline", "Probe job timeouts", runbook("DiracProbeTimingOut",
              "The agents' classification of probe jobs that never ran or never finished (BES3's rule)."),
              [target(f'dirac_probe_status{{job="{AGENT}", {SITE}, status=~"bad|busy|unknown"}} == 1',
                      "{{site}} {{ce}} {{status}}")]),
        panel("table", "Availability and reliability over the range", "ARGO: availability = UP / (T − UNKNOWN − "
              "MISSING), reliability also excludes DOWNTIME; computed over the dashboard's time range.",
              [target(argo.format(num="up", den="up|critical|downtime", s=SITE), ref="A", instant=True, table=True),
               target(argo.format(num="up", den="up|critical", s=SITE), ref="B", instant=True, table=True)],
              w=24, transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                  "excludeByName": {"Time": True},
                  "renameByName": {"Value #A": "Availability", "Value #B": "Reliability"}}}],
              overrides=[{"matcher": {"id": "byRegexp", "options": "Availability|Reliability"},
                          "properties": [{"id": "unit", "value": "percentunit"}]}]),
    ]
    return dashboard("dirac-probes", "DIRAC probes (SAM)", "Worker-node probe results, timeouts and ARGO numbers.",
                     [psite, pce, check], panels)


def exporter_health() -> dict:
    pgw = T["pushgateway_job"]
    panels = [
        panel("stat", "JobDB reachable", runbook("DiracJobDBUnreachable", "dirac_up per exporter."),
              [target(f"dirac_up{{{EXP}}}", "{{instance}}", instant=True)], w=8, h=4,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("stat", "Failed pushes", runbook("DiracPushFailing",
              "Pushgateway groups whose last push failed after their last success."),
              [target("count(push_failure_time_seconds > push_time_seconds) or vector(0)", instant=True)], w=8,
              h=4, thresholds=thresholds((None, "green"), (1, "red"))),
        panel("stat", "Pushgateway up", runbook("DiracPushgatewayDown", "Prometheus's scrape of the Pushgateway."),
              [target(f'up{{job="{pgw}"}}', "{{instance}}", instant=True)], w=8, h=4,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("state-timeline", "Collector success", runbook("DiracExporterCollectorFailing",
              "Each scraper of the exporter: 1 succeeded, 0 failed in that scrape."),
              [target(f"dirac_exporter_collector_success{{{EXP}}}", "{{instance}} {{collector}}")],
              mappings=state_mappings({"1": ("OK", "green"), "0": ("FAILED", "red")}), w=24),
        panel("timeseries", "Collector duration", "Seconds each scraper took per scrape.",
              [target(f"dirac_exporter_collector_duration_seconds{{{EXP}}}", "{{instance}} {{collector}}")], unit="s"),
        panel("timeseries", "Scrape duration", "Whole scrape as Prometheus saw it.",
              [target(f"scrape_duration_seconds and on (job, instance) dirac_exporter_build_info{{{EXP}}}",
                      "{{instance}}")], unit="s"),
        panel("timeseries", "Age of the last push per Pushgateway group", runbook("DiracProbeResultMissing",
              "Seconds since each probe/agent group last pushed (an agent command's liveness: `agent`)."),
              [target(f'time() - push_time_seconds{{job=~"{PROBE}|{AGENT}"}}', "{{job}} {{agent}}{{site}} {{ce}}")],
              unit="s", w=24),
    ]
    return dashboard("dirac-exporter", "DIRAC monitoring health", "Is the monitoring itself working?",
                     [INSTANCE], panels)


DASHBOARDS = {"dirac-overview.json": overview, "dirac-site.json": site_detail, "dirac-host.json": host,
              "dirac-probes.json": probes, "dirac-exporter.json": exporter_health}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    rendered = render()
    if argv == ["--check"]:
        stale = [n for n, text in rendered.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        if stale:
            print(f"grafana/build.py: {', '.join(stale)} out of date; run .venv/bin/python grafana/build.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(rendered)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
