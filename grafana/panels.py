"""Building blocks of grafana/build.py: Grafana JSON for targets, panels, variables and the layout, the
selectors every dashboard shares, thresholds and runbook links read from alerts/thresholds.yml.

Exporter series are selected by $instance (the scrape target) and $dirac_instance; recording rules keep
only dirac_instance, so panels on them follow $dirac_instance. Probe series carry neither (one probe result
per site and CE).
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
T = yaml.safe_load((HERE.parent / "alerts" / "thresholds.yml").read_text())
RUNBOOK = T["runbook_url"]
DS = {"type": "prometheus", "uid": "${datasource}"}
EXPORTER, PROBE, AGENT = T["exporter_job"], T["probe_job"], T["agent_job"]
TARGET = f'job="{EXPORTER}", instance=~"$instance"'
EXP = 'instance=~"$instance", dirac_instance=~"$dirac_instance"'
DI = 'dirac_instance=~"$dirac_instance"'
SITE = 'site=~"$site"'
RS = f"{DI}, {SITE}"
INSTANCE_LINK = "${instance:queryparam}&${dirac_instance:queryparam}"

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
    """A panel; ``custom``, ``decimals``, ``mappings``, ``noValue`` and ``thresholds`` go to its field defaults,
    ``w``/``h`` to the layout; anything else (``options``, ``overrides``, ``transformations``) as given."""
    defaults = {"unit": unit, **{k: extra.pop(k) for k in ("custom", "decimals", "mappings", "noValue", "thresholds")
                                 if k in extra}}
    if "thresholds" in defaults:
        defaults["color"] = {"mode": "thresholds"}
    p = {"type": kind, "title": title, "description": desc, "datasource": DS, "targets": targets,
         "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
         "options": extra.pop("options", {}), "_w": extra.pop("w", 12), "_h": extra.pop("h", 8)}
    p.update(extra)
    return p


def var_datasource() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def var_query(name: str, query: str, label: str, multi: bool = True, all_option: bool = True) -> dict:
    every = multi and all_option
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"var-{name}"}, "definition": query, "refresh": 2,
            "includeAll": every, "multi": multi, "sort": 1, "current": {}, "hide": 0, "options": [], "regex": "",
            **({"allValue": ".*"} if every else {})}


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


# From `up`, so a dead exporter stays selectable (dirac_up vanishes with it).
INSTANCE = var_query("instance", f'label_values(up{{job="{EXPORTER}"}}, instance)', "Exporter")
# One DIRAC instance at a time, never merged; no value (the label is unset with one instance) matches all.
DIRAC_INSTANCE = var_query("dirac_instance", 'label_values(dirac_up{instance=~"$instance"}, dirac_instance)',
                           "DIRAC instance", multi=False)
SITES = var_query("site", f"label_values(dirac_jobs_finished_total{{{EXP}}}, site)", "Site")
VARS = [INSTANCE, DIRAC_INSTANCE]


def byname(col: str, **props) -> dict:
    """A field override by column name; ``custom__x`` sets ``custom.x``."""
    return {"matcher": {"id": "byName", "options": col},
            "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()]}


def table_of(names: dict[str, str], overrides: list[dict], **extra) -> dict:
    """Options of a table whose instant queries merge into one row per key, columns renamed."""
    return {"overrides": overrides, "transformations": [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names}}], **extra}


def link(title: str, url: str) -> list[dict]:
    return [{"title": title, "url": url}]


USER_LINK = link("User view", "/d/dirac-user/dirac-user?var-owner=${__value.raw}&" + INSTANCE_LINK)
CELL = {"custom__cellOptions": {"type": "color-background"}}
TEXT = {"custom__cellOptions": {"type": "color-text"}}
# 0: Prometheus cannot scrape it (dead exporter: up == 0; or no such target, as DiracExporterDown), 1: scraped
# but JobDB silent, 2: both fine.
EXPORTER_STATES = {"0": ("DOWN", "red"), "1": ("NO JOBDB", "orange"), "2": ("UP", "green")}
EXPORTER_STATE = f"(min(up{{{TARGET}}}) or vector(0)) * (1 + (min(dirac_up{{{EXP}}}) or vector(0)))"
