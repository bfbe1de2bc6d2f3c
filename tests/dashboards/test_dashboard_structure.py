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
        for name in re.findall(r"(?<![\w\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr):
            if "dirac" in name or name in BUILTIN:
                assert name in known, f"{path.name}: {name} is exported by nothing ({expr})"
    runbook = (ROOT / "alerts" / "runbook.md").read_text().lower()
    anchors = set(re.findall(r"^#+\s+(\S+)", runbook, re.M))
    for p in all_panels(dash):
        for anchor in re.findall(r"runbook\.md#([a-z0-9]+)", p["description"]):
            assert anchor in anchors, f"{path.name}: {p['title']!r} links a missing runbook section #{anchor}"
