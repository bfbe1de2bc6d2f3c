#!/usr/bin/env python3
"""Render grafana/dashboards/*.json (Grafana >= 10) from the panel lists below (building blocks: panels.py).

    .venv/bin/python grafana/build.py           # write the JSON files
    .venv/bin/python grafana/build.py --check   # exit 1 if the committed JSON is not what this renders

Queries use only metrics of docs/metrics.md and recording rules of alerts/rules; thresholds match
alerts/thresholds.yml (read from it), runbook links use its runbook_url.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from panels import (
    AGENT,
    CELL,
    DI,
    EXP,
    EXPORTER_STATE,
    EXPORTER_STATES,
    INSTANCE_LINK,
    PROBE,
    PROBE_STATES,
    RS,
    SITE,
    SITES,
    TARGET,
    TEXT,
    USER_LINK,
    VARS,
    T,
    byname,
    dashboard,
    link,
    panel,
    ratio_thresholds,
    runbook,
    state_mappings,
    table_of,
    target,
    thresholds,
    var_query,
)

OUT = Path(__file__).resolve().parent / "dashboards"


def exporter_state(w: int, h: int) -> dict:
    return panel("stat", "Exporter", runbook("DiracExporterDown", "The worst of the selected exporters: DOWN when "
                 "Prometheus cannot scrape it (up == 0: no job metric is current), NO JOBDB when it answers but "
                 "DIRAC's JobDB does not (dirac_up == 0), else UP."),
                 [target(EXPORTER_STATE, instant=True)], w=w, h=h, mappings=state_mappings(EXPORTER_STATES),
                 thresholds=thresholds((None, "red"), (1, "orange"), (2, "green")))


def overview() -> dict:
    cols = [  # (column, expression): one instant query each, merged on `site`
        ("Probe", f"max by (site) (site:dirac_probe_state:code{{{SITE}}})"),
        ("Availability 24h", f"max by (site) (site:dirac_probe_availability:ratio1d{{{SITE}}})"),
        ("Availability 7d", f"max by (site) (site:dirac_probe_availability:ratio7d{{{SITE}}})"),
        ("Failure ratio 30m, all jobs", f"max by (site) (site:dirac_jobs_failed:ratio_rate30m{{{RS}}})"),
        ("Site's own failure ratio 30m", f"max by (site) (site:dirac_jobs_failed_site:ratio_rate30m{{{RS}}})"),
        ("Left out: users' failures", f"sum by (site) (site:dirac_jobs_failed_user:increase30m{{{RS}}})"),
        ("Left out: black-hole nodes' failures", f"sum by (site) (site:dirac_jobs_failed_host:increase30m{{{RS}}})"),
        *[(s, f'sum by (site) (dirac_jobs{{{EXP}, {SITE}, status="{s}"}})') for s in ("Running", "Waiting", "Stalled")],
        ("Pilot failure ratio 1h", f"max by (site) (site_ce:dirac_pilots_failed:ratio_rate1h{{{RS}}})"),
        ("Firing alerts", f'count by (site) (ALERTS{{alertstate="firing", {SITE}}})'
                          f" or on (site) (0 * group by (site) (dirac_jobs{{{EXP}, {SITE}}}))"),
    ]
    refs = [chr(ord("A") + i) for i in range(len(cols))]
    avail = thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))
    pct = {"unit": "percentunit"}
    overrides = [
        byname("Probe", mappings=state_mappings(PROBE_STATES), **CELL),
        byname("Availability 24h", thresholds=avail, **pct, **CELL),
        byname("Availability 7d", thresholds=avail, **pct, **CELL),
        byname("Failure ratio 30m, all jobs", thresholds=ratio_thresholds(), **pct, **TEXT),
        byname("Site's own failure ratio 30m", thresholds=ratio_thresholds(), **pct, **CELL),
        byname("Left out: users' failures", noValue="0", decimals=0, links=link(
            "Users' failures", "/d/dirac-site/dirac-site?var-site=${__data.fields.site}&" + INSTANCE_LINK)),
        byname("Left out: black-hole nodes' failures", noValue="0", decimals=0),
        byname("Pilot failure ratio 1h", **pct, **CELL, thresholds=thresholds(
            (None, "green"), (T["pilot_rising_min_ratio"], "orange"), (T["pilot_failure_ratio"], "red"))),
        byname("Firing alerts", thresholds=thresholds((None, "green"), (1, "red")), **CELL),
        byname("site", links=link("Site detail", "/d/dirac-site/dirac-site?var-site=${__value.raw}&" + INSTANCE_LINK)),
    ]
    panels = [
        exporter_state(w=4, h=4),
        panel("stat", "Sites with firing alerts", "Sites that have at least one firing alert now.",
              [target(f'count(count by (site) (ALERTS{{alertstate="firing", {SITE}}})) or vector(0)', instant=True)],
              w=4, h=4, thresholds=thresholds((None, "green"), (1, "red"))),
        *[panel("stat", f"{s} jobs", f"Jobs in status {s} at the selected sites (probe jobs excluded).",
                [target(f'sum(dirac_jobs{{{EXP}, {SITE}, status="{s}"}})', instant=True)], w=4, h=4)
          for s in ("Running", "Waiting", "Stalled")],
        panel("stat", "Mean probe availability 24h", "ARGO availability from the probes, averaged over sites.",
              [target(f"avg(site:dirac_probe_availability:ratio1d{{{SITE}}})", instant=True)], unit="percentunit",
              w=4, h=4, thresholds=thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))),
        panel("table", "Sites", "One row per site: probe state (ARGO), availability, job failure ratio of all jobs "
              "(what DIRAC's RSS and a shifter banning by hand see) next to the site's own (the failures of users "
              "whose jobs fail wherever they run and of black-hole nodes left out: what the site alerts use; the "
              "next two columns count what was left out), job counts, worst CE pilot failure ratio and firing "
              "alerts. Click a site for its detail. "
              + runbook("DiracSiteJobFailureRatioHigh", "Colours follow the alert thresholds."),
              [target(e, ref=r, instant=True, table=True) for r, (_, e) in zip(refs, cols)], w=24, h=12,
              **table_of({f"Value #{r}": c for r, (c, _) in zip(refs, cols)}, overrides)),
        panel("timeseries", "Job failure ratio by site: all jobs and the site's own (30 min)", runbook(
              "DiracSiteJobFailureRatioHigh", "Failed / finished over 30 min (1 − RSS efficiency), of all jobs and "
              "of the site's own (users' own failures and black-hole nodes' left out); the alerts use the latter."),
              [target(f"site:dirac_jobs_failed:ratio_rate30m{{{RS}}}", "{{site}} all jobs"),
               target(f"site:dirac_jobs_failed_site:ratio_rate30m{{{RS}}}", "{{site}} site's own", ref="B")],
              unit="percentunit", thresholds=ratio_thresholds(),
              options={"legend": {"displayMode": "table", "placement": "right"}}),
        panel("timeseries", "Failures left out of the sites' ratios (30 min)", runbook(
              "DiracBlackHoleHost", "Failed jobs per site over 30 min that are not the site's: those of owners "
              "whose jobs fail wherever they run (DiracUserJobsFailing) and those on black-hole nodes."),
              [target(f"site:dirac_jobs_failed_user:increase30m{{{RS}}}", "{{site}} users' own"),
               target(f"site:dirac_jobs_failed_host:increase30m{{{RS}}}", "{{site}} black-hole nodes", ref="B")]),
        panel("timeseries", "Finished jobs per minute by site", "Jobs reaching a final state, per minute.",
              [target(f"60 * sum by (site) (rate(dirac_jobs_finished_total{{{EXP}, {SITE}}}[$__rate_interval]))",
                      "{{site}}")]),
        panel("table", "Users' own failures (30 min)", "Owners whose jobs fail wherever they run (their failures "
              "are left out of every site's ratio and go to user support as DiracUserJobsFailing), and owners "
              "whose jobs DIRAC's optimizers failed before they ran (never a site's fault). Click an owner.",
              [target(f"sum by (owner, owner_group) (owner:dirac_jobs_failed_user:increase30m{{{DI}}})",
                      instant=True, table=True),
               target(f'sum by (owner, owner_group) (owner:dirac_jobs_failed_before_running:increase30m{{{DI}, '
                      f'owner!="other"}}) > 0', ref="B", instant=True, table=True)],
              decimals=0, **table_of({"Value #A": "Failed where they ran", "Value #B": "Failed before running"},
                                     [byname("owner", links=USER_LINK)])),
        panel("table", "Top fail reasons", "Most frequent reasons of failed jobs over the dashboard's range "
              "(DIRAC's MinorStatus, normalised).",
              [target(f"topk(15, sum by (site, reason) (increase(dirac_jobs_failed_total{{{EXP}, {SITE}}}"
                      "[$__range])) > 0)", instant=True, table=True)], w=24,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value": "Failed jobs"}}}]),
    ]
    return dashboard("dirac-overview", "DIRAC sites overview",
                     "What is wrong where: one row per site with probes, failures (and whose), jobs, pilots and "
                     "alerts.",
                     [*VARS, SITES], panels)


def site_detail() -> dict:
    ce = var_query("ce", f"label_values(dirac_pilots_finished_total{{{EXP}, {SITE}}}, ce)", "CE")
    sel = f"{EXP}, {SITE}"
    host_link = ("/d/dirac-host/dirac-worker-node?var-site=${__data.fields.site}"
                 "&var-host=${__data.fields.host}&" + INSTANCE_LINK)

    def owners(rule: str) -> str:
        return f"sum by (owner, owner_group) ({rule}{{{RS}}})"

    counts = [byname(c, decimals=0) for c in ("Finished", "Failed")]  # increase() extrapolates
    panels = [
        panel("timeseries", "Jobs by status", "Jobs currently in each non-final status (probe jobs excluded).",
              [target(f"sum by (status) (dirac_jobs{{{sel}}})", "{{status}}")],
              custom={"stacking": {"mode": "normal"}}),
        panel("timeseries", "Finished jobs per minute by status", "Job lives ending in each final status.",
              [target(f"60 * sum by (status) (rate(dirac_jobs_finished_total{{{sel}}}[$__rate_interval]))",
                      "{{status}}")]),
        panel("timeseries", "Failure ratio: all jobs and the site's own (30 min)", runbook(
              "DiracSiteJobFailureRatioHigh", "All jobs' failure ratio (what DIRAC's RSS and a shifter banning by "
              "hand see) next to the site's own (users' own failures and black-hole nodes' left out), which the "
              "site alerts use."),
              [target(f"site:dirac_jobs_failed:ratio_rate30m{{{RS}}}", "{{site}} all jobs"),
               target(f"site:dirac_jobs_failed_site:ratio_rate30m{{{RS}}}", "{{site}} site's own", ref="B")],
              unit="percentunit", thresholds=ratio_thresholds()),
        panel("timeseries", "Fail reasons per minute", runbook("DiracSiteJobFailureRatioHigh",
              "Failed jobs by normalised MinorStatus."),
              [target(f"60 * sum by (reason) (rate(dirac_jobs_failed_total{{{sel}}}[$__rate_interval])) > 0",
                      "{{reason}}")]),
        panel("timeseries", "Failed jobs by owner (30 min)", "Failed jobs at the site over 30 min per owner (DIRAC "
              "user) and group: one owner's broken workflow shows as one line.",
              [target(owners("site_owner:dirac_jobs_failed:increase30m") + " > 0",
                      "{{owner}} ({{owner_group}})")]),
        panel("timeseries", "Failed jobs by owner group (30 min)", runbook("DiracSiteJobFailureRatioHigh",
              "Failed jobs per owner group over 30 min, all and the site's own (users at fault left out): a "
              "software release missing at the site fails one group's jobs."),
              [target(f"sum by (owner_group) (site_owner:dirac_jobs_failed:increase30m{{{RS}}})",
                      "{{owner_group}} all"),
               target(f"sum by (owner_group) (site_owner_group:dirac_jobs_failed_site:increase30m{{{RS}}})",
                      "{{owner_group}} site's own", ref="B")]),
        panel("table", "Owners at the site (30 min)", "Finished and failed jobs per owner over 30 min; the "
              "failure ratio of owners with enough jobs to judge, and whether the owner's failures are its own "
              "(its jobs fail wherever they run: left out of the site's ratio). Click an owner for the user view.",
              [target(owners("site_owner:dirac_jobs_finished:increase30m"), instant=True, table=True),
               target(owners("site_owner:dirac_jobs_failed:increase30m"), ref="B", instant=True, table=True),
               target(f"max by (owner, owner_group) (site_owner:dirac_jobs_failed:ratio_rate30m{{{RS}}})", ref="C",
                      instant=True, table=True),
               target(f"max by (owner, owner_group) (owner:dirac_jobs_user_fault:bool{{{DI}}})"
                      f" and on (owner, owner_group) {owners('site_owner:dirac_jobs_finished:increase30m')}",
                      ref="D", instant=True, table=True)], w=24,
              **table_of({"Value #A": "Finished", "Value #B": "Failed", "Value #C": "Failure ratio",
                          "Value #D": "User's own fault"},
                         [byname("owner", links=USER_LINK), *counts, byname("Failure ratio", unit="percentunit",
                                                                   thresholds=ratio_thresholds(), **TEXT),
                          byname("User's own fault", noValue="no",
                                 mappings=state_mappings({"1": ("yes", "orange")}), **TEXT)])),
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
              [target(f"site:dirac_running_jobs_heartbeat_lagging:sum{{{RS}}}", "lagging {{site}}"),
               target(f'sum by (site) (dirac_jobs{{{sel}, status="Stalled"}})', "stalled {{site}}", ref="B")]),
        panel("timeseries", "Jobs rescheduled by DIRAC (30 min)", runbook("DiracSiteJobsRescheduling",
              "Job lives DIRAC rescheduled for a failed worker-node step, by step: DIRAC retries them and fails "
              "them at the fourth reschedule, so these come before the site's failures."),
              [target(f"site_reason:dirac_jobs_rescheduled:increase30m{{{RS}}}", "{{site}} {{reason}}")],
              decimals=0),
        panel("timeseries", "Pilots per CE by status", runbook("DiracPilotsStuckWaiting",
              "Pilots not yet finished, per CE and status."),
              [target(f'sum by (ce, status) (dirac_pilots{{{sel}, ce=~"$ce"}})', "{{ce}} {{status}}")]),
        panel("timeseries", "Pilot failure ratio per CE (1 h)", runbook("DiracPilotsFailing",
              "(Failed + Aborted) / finished pilots at the CE over 1 h."),
              [target(f'site_ce:dirac_pilots_failed:ratio_rate1h{{{RS}, ce=~"$ce"}}', "{{ce}}")],
              unit="percentunit", thresholds=thresholds((None, "green"), (T["pilot_failure_ratio"], "red"))),
        panel("stat", "Oldest waiting pilot", runbook("DiracPilotsStuckWaiting",
              "Age of the oldest Submitted/Waiting pilot per CE."),
              [target(f'max by (ce) (dirac_pilot_oldest_waiting_seconds{{{sel}, ce=~"$ce"}})', "{{ce}}",
                      instant=True)], unit="s",
              thresholds=thresholds((None, "green"), (T["pilot_waiting_seconds"], "red"))),
        panel("table", "Worst hosts (1 h)", runbook("DiracBlackHoleHost",
              "Worker nodes with the most fast failures; click a host for its view."),
              [target(f"topk(20, site_host:dirac_host_job_failures_fast:increase1h{{{RS}}})", ref="A",
                      instant=True, table=True),
               target(f"site_host:dirac_host_jobs_failed:ratio_rate1h{{{RS}}}", ref="B", instant=True,
                      table=True)],
              **table_of({"Value #A": "Fast failures", "Value #B": "Failure ratio"},
                         [byname("host", links=link("Host view", host_link)),
                          byname("Failure ratio", unit="percentunit")])),
    ]
    return dashboard("dirac-site", "DIRAC site", "One site in depth: jobs, failures and whose, heartbeats, pilots, "
                     "hosts.", [*VARS, SITES, ce], panels)


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
              [target(f'site_host:dirac_host_jobs_failed:ratio_rate1h{{{RS}, host=~"$host"}}', "{{host}}"),
               target(f'site_host:dirac_host_jobs_failed:rest_of_site_ratio_rate1h{{{RS}, host=~"$host"}}',
                      "rest of {{site}}", ref="B")], unit="percentunit"),
        panel("stat", "Since the last job ended", "Seconds since the node's latest job finished.",
              [target(f"time() - max by (host) (dirac_host_last_job_end_timestamp_seconds{{{sel}}})", "{{host}}",
                      instant=True)], unit="s"),
    ]
    return dashboard("dirac-host", "DIRAC worker node", "One worker node: its jobs and its fast failures.",
                     [*VARS, SITES, hosts], panels)


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
              "Seconds since the Pushgateway last received the probe's result (its push_time_seconds: the clock "
              f"of the MISSING alert, not the worker node's); MISSING past {T['probe_missing_seconds']} s."),
              [target(f"time() - max by (site, ce) (push_time_seconds{{{psel}}})", "{{site}} {{ce}}")], unit="s",
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
    updown = state_mappings({"0": ("DOWN", "red"), "1": ("UP", "green")})
    panels = [
        panel("stat", "Exporter scraped", runbook("DiracExporterDown", "Prometheus's scrape of each exporter "
              "(up): DOWN when the exporter is dead or unreachable, and then every job metric is stale."),
              [target(f"up{{{TARGET}}}", "{{instance}}", instant=True)], w=6, h=4, mappings=updown,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("stat", "JobDB reachable", runbook("DiracJobDBUnreachable", "dirac_up per exporter."),
              [target(f"dirac_up{{{EXP}}}", "{{instance}}", instant=True)], w=6, h=4,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("stat", "Failed pushes", runbook("DiracPushFailing",
              "Pushgateway groups whose last push failed after their last success."),
              [target("count(push_failure_time_seconds > push_time_seconds) or vector(0)", instant=True)], w=6,
              h=4, thresholds=thresholds((None, "green"), (1, "red"))),
        panel("stat", "Pushgateway up", runbook("DiracPushgatewayDown", "Prometheus's scrape of the Pushgateway."),
              [target(f'up{{job="{pgw}"}}', "{{instance}}", instant=True)], w=6, h=4, mappings=updown,
              thresholds=thresholds((None, "red"), (1, "green"))),
        panel("state-timeline", "Collector success", runbook("DiracExporterCollectorFailing",
              "Each scraper of the exporter: 1 succeeded, 0 failed in that scrape."),
              [target(f"dirac_exporter_collector_success{{{EXP}}}", "{{instance}} {{collector}}")],
              mappings=state_mappings({"1": ("OK", "green"), "0": ("FAILED", "red")}), w=24),
        panel("timeseries", "Collector duration", "Seconds each scraper took per scrape.",
              [target(f"dirac_exporter_collector_duration_seconds{{{EXP}}}", "{{instance}} {{collector}}")], unit="s"),
        panel("timeseries", "Scrape duration", "Whole scrape of each exporter as Prometheus saw it.",
              [target(f"scrape_duration_seconds{{{TARGET}}}", "{{instance}}")], unit="s"),
        panel("timeseries", "Age of the last push per Pushgateway group", runbook("DiracProbeResultMissing",
              "Seconds since each probe/agent group last pushed (an agent command's liveness: `agent`)."),
              [target(f'time() - push_time_seconds{{job=~"{PROBE}|{AGENT}"}}', "{{job}} {{agent}}{{site}} {{ce}}")],
              unit="s", w=24),
    ]
    return dashboard("dirac-exporter", "DIRAC monitoring health", "Is the monitoring itself working?",
                     VARS, panels)


def user() -> dict:
    # also the owners whose jobs all failed before running
    owners = "dirac_owner_jobs_finished_total|dirac_jobs_failed_before_running_total"
    owner = var_query("owner", f'label_values({{__name__=~"{owners}", {EXP}}}, owner)', "Owner", all_option=False)
    us = f'{DI}, owner=~"$owner"'
    counts = [byname(c, decimals=0) for c in ("Finished", "Failed")]  # increase() extrapolates

    def sites(rule: str) -> str:
        return f"sum by (site) ({rule}{{{us}}})"

    panels = [
        panel("stat", "Failures are the user's own", "yes while the owner's jobs fail wherever they run (at least "
              f"{T['user_min_sites']} sites, or its only site while the other owners succeed there): they are "
              "left out of the sites' ratios and raise DiracUserJobsFailing for user support, not the sites.",
              [target(f"max(owner:dirac_jobs_user_fault:bool{{{us}}})", instant=True)], w=6, h=4, noValue="no",
              mappings=state_mappings({"1": ("yes", "orange")})),
        panel("stat", "Failed after running (30 min)", "The owner's jobs that ran and failed, at all sites.",
              [target(f"sum(site_owner:dirac_jobs_failed:increase30m{{{us}}})", instant=True)], w=6, h=4,
              decimals=0),
        panel("stat", "Failure ratio (30 min)", "Failed / finished jobs of the owner over 30 min, at all sites.",
              [target(f"sum(site_owner:dirac_jobs_failed:increase30m{{{us}}})"
                      f" / sum(site_owner:dirac_jobs_finished:increase30m{{{us}}})", instant=True)],
              unit="percentunit", w=6, h=4, thresholds=ratio_thresholds()),
        panel("stat", "Failed before running (30 min)", "The owner's jobs that DIRAC's optimizers failed before "
              "they reached a site (input data, JDL, no candidate site): the user's or DIRAC's, never a site's.",
              [target(f"sum(owner:dirac_jobs_failed_before_running:increase30m{{{us}}})", instant=True)], w=6, h=4,
              decimals=0),
        panel("table", "Where the jobs fail (30 min)", "Per site: the owner's finished and failed jobs, its failure "
              "ratio there (sites with enough of its jobs to judge) and the other owners' failure ratio at the "
              "same site: high for the owner and low for the others is the user's workflow, not the site.",
              [target(sites("site_owner:dirac_jobs_finished:increase30m"), instant=True, table=True),
               target(sites("site_owner:dirac_jobs_failed:increase30m"), ref="B", instant=True, table=True),
               target(f"max by (site) (site_owner:dirac_jobs_failed:ratio_rate30m{{{us}}})", ref="C", instant=True,
                      table=True),
               target(f"max by (site) (site_owner:dirac_jobs_others_failed:ratio_rate30m{{{us}}})", ref="D",
                      instant=True, table=True)], w=24,
              **table_of({"Value #A": "Finished", "Value #B": "Failed", "Value #C": "Owner's failure ratio",
                          "Value #D": "Other owners' failure ratio"},
                         [byname("site", links=link("Site detail", "/d/dirac-site/dirac-site?var-site=${__value.raw}&"
                                                    + INSTANCE_LINK)), *counts,
                          *[byname(c, unit="percentunit", thresholds=ratio_thresholds(), **TEXT)
                            for c in ("Owner's failure ratio", "Other owners' failure ratio")]])),
        panel("timeseries", "Failed jobs per minute by site", "The owner's jobs ending Failed, per site.",
              [target(f'60 * sum by (site) (rate(dirac_owner_jobs_finished_total{{{EXP}, owner=~"$owner", '
                      'status="Failed"}[$__rate_interval]))', "{{site}}")]),
        panel("table", "Fail reasons (30 min)", "Why the owner's jobs failed after running: DIRAC's MinorStatus, "
              "normalised (docs/metrics.md).",
              [target(f"sum by (reason) (owner_reason:dirac_owner_jobs_failed:increase30m{{{us}}}) > 0", instant=True,
                      table=True)],
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value": "Failed jobs"}}}]),
        panel("table", "Failed before running, by optimizer (30 min)", "Jobs DIRAC's optimizers failed before they "
              "ran, by optimizer (stage) and the optimizer's reason.",
              [target(f"sum by (stage, reason) (owner_stage_reason:dirac_jobs_failed_before_running:increase30m"
                      f"{{{us}}}) > 0", instant=True, table=True)],
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value": "Failed jobs"}}}]),
        panel("timeseries", "Failed before running per minute, by optimizer", "The owner's jobs failed by each "
              "optimizer before running, per minute.",
              [target(f'60 * sum by (stage) (rate(dirac_jobs_failed_before_running_total{{{EXP}, owner=~"$owner"}}'
                      '[$__rate_interval]))', "{{stage}}")]),
    ]
    return dashboard("dirac-user", "DIRAC user", "One DIRAC user (job owner): where its jobs fail and why, and "
                     "whether the failures are its own.", [*VARS, owner], panels)


DASHBOARDS = {"dirac-overview.json": overview, "dirac-site.json": site_detail, "dirac-host.json": host,
              "dirac-probes.json": probes, "dirac-exporter.json": exporter_health, "dirac-user.json": user}


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
