"""The dashboards' JSON: up to date with grafana/build.py, well-formed for Grafana >= 10, and every
metric a query names is one something exports (docs/metrics.md) or a recording rule of alerts/rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
BUILTIN = {"up", "scrape_duration_seconds", "push_time_seconds", "push_failure_time_seconds", "ALERTS"}


def all_panels(dash: dict) -> list[dict]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in all_panels(dash) for t in p.get("targets", [])]


def known_names() -> set[str]:
    names = set(BUILTIN)
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for base in re.findall(r"`(dirac_[a-z0-9_]+)`", doc):
        names.update({base, f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_gcount", f"{base}_gsum"})
    for path in (ROOT / "alerts" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def test_committed_json_is_what_build_renders():
    done = subprocess.run([sys.executable, str(ROOT / "grafana" / "build.py"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_structure(path):
    dash = json.loads(path.read_text())
    panels = all_panels(dash)
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for p in panels:
        assert p["type"] in {"timeseries", "stat", "table", "state-timeline", "bargauge", "heatmap"}, p["type"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("description"), f"panel {p['title']!r} has no description"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}" and v["definition"].startswith("label_values(")
    used = {m for e in exprs(dash) for m in re.findall(r"\$(\w+)", e)} - {"__rate_interval", "__range"}
    assert used <= set(variables), f"undefined variables {used - set(variables)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_queries_name_only_exported_metrics_and_existing_runbook_anchors(path):
    dash = json.loads(path.read_text())
    known = known_names()
    queries = exprs(dash) + [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    for expr in queries:
        named = re.findall(r"(?<![\w\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr)
        for name in named + [n for alt in re.findall(r'__name__=~"([^"]+)"', expr) for n in alt.split("|")]:
            if "dirac" in name or name in BUILTIN:
                assert name in known, f"{path.name}: {name} is exported by nothing ({expr})"
    runbook = (ROOT / "alerts" / "runbook.md").read_text().lower()
    anchors = set(re.findall(r"^#+\s+(\S+)", runbook, re.M))
    for p in all_panels(dash):
        for anchor in re.findall(r"runbook\.md#([a-z0-9]+)", p["description"]):
            assert anchor in anchors, f"{path.name}: {p['title']!r} links a missing runbook section #{anchor}"


def exporter_metrics() -> set[str]:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    section = doc.split("## Exporter", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(dirac_[a-z0-9_]+)`", section, re.M))


def instance_keeping_rules() -> set[str]:
    """Recording rules that keep `dirac_instance`: they name it, or a rule that keeps it (to a fixpoint)."""
    rules = {r["record"]: r["expr"] for path in (ROOT / "alerts" / "rules").glob("*.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for r in group["rules"] if "record" in r}
    keep: set[str] = set()
    while True:
        more = {name for name, expr in rules.items()
                if "dirac_instance" in expr or any(k in re.findall(r"[\w:]+", expr) for k in keep)} - keep
        if not more:
            return keep
        keep |= more


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matchers) of every selector in ``expr``; matchers "" when the name has none."""
    return re.findall(r"(?<![\w:\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?", expr)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_exporter_series_and_their_rules_follow_the_instance_variables(path):
    """Two DIRAC instances never merge: exporter series select $instance and $dirac_instance, recording rules
    (which keep only dirac_instance) $dirac_instance."""
    exported, rules = exporter_metrics(), instance_keeping_rules()
    assert {"dirac_up", "dirac_owner_jobs_finished_total"} <= exported
    assert {"site:dirac_jobs_failed:ratio_rate30m", "site_owner:dirac_jobs_failed:increase30m"} <= rules
    assert "site:dirac_probe_state:code" not in rules
    wrong = []
    for expr in exprs(json.loads(path.read_text())):
        for name, matchers in selectors(expr):
            need = (['instance=~"$instance"'] if name in exported else []) + (
                ['dirac_instance=~"$dirac_instance"'] if name in exported | rules else [])
            wrong += [f"{name}{{{matchers}}} lacks {m}" for m in need if m not in matchers]
    assert not wrong, "\n".join(wrong)


def test_probe_result_age_uses_the_clock_of_the_missing_alert():
    rules = yaml.safe_load((ROOT / "alerts" / "rules" / "probes.yml").read_text())
    alert = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DiracProbeResultMissing")
    clock = re.search(r"time\(\) - max by \(site, ce\) \((\w+)\{(job=\"\w+\")", alert["expr"])
    dash = json.loads((ROOT / "grafana" / "dashboards" / "dirac-probes.json").read_text())
    [age] = [p for p in all_panels(dash) if p["title"] == "Age of the latest probe result"]
    assert clock and re.match(rf"time\(\) - max by \(site, ce\) \({clock[1]}\{{{clock[2]}", age["targets"][0]["expr"])
