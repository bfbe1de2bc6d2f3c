"""A dead exporter shows red on the dashboards, not "No data": our exporter on DIRAC's schema in MariaDB,
scraped by a real Prometheus; the panels on `up{job=<exporter_job>}` are queried (variables resolved as
Grafana does) and their value read through the panel's own value mappings while the exporter is up, while
its JobDB is gone, and once the process is dead."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from dirac_instance import drop_instance, make_instance

from bes_demo import services
from bes_demo.stack import EXPORTER_JOB, ROOT, Stack

DASHBOARDS = ROOT / "grafana" / "dashboards"


def exporter_panels() -> dict[str, dict]:
    """'dashboard / title' -> panel, for every panel that queries the exporter's `up`."""
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            if any(f'up{{job="{EXPORTER_JOB}"' in t["expr"] for t in p.get("targets", [])):
                found[f"{dash['uid']} / {p['title']}"] = p
    return found


def shown(panel: dict, value: float) -> tuple[str, str]:
    """(text, colour) Grafana shows for ``value``: the panel's value mapping, else its threshold colour."""
    defaults = panel["fieldConfig"]["defaults"]
    for mapping in defaults.get("mappings", []):
        hit = mapping["options"].get(f"{value:g}")
        if hit:
            return hit["text"], hit["color"]
    steps = defaults["thresholds"]["steps"]
    return f"{value:g}", [s["color"] for s in steps if s["value"] is None or value >= s["value"]][-1]


def displayed(stack: Stack, panels: dict[str, dict]) -> dict[str, list[tuple[str, str]]]:
    """What each panel shows now: ``$instance`` is this exporter (regex-escaped as Grafana does for a multi
    variable), ``$dirac_instance`` has no value (the exporter sets no dirac_instance: Grafana then uses "")."""
    instance = re.escape(stack.exporter.address).replace("\\", "\\\\")
    out = {}
    for name, p in panels.items():
        expr = p["targets"][0]["expr"].replace("$instance", instance).replace("$dirac_instance", "")
        out[name] = [shown(p, float(s["value"][1])) for s in stack.query(expr)]
    return out


@pytest.fixture
def stack(tmp_path, mariadb):
    inst = make_instance("9.1")
    stack = Stack(tmp_path, inst.config(), alertmanager_config=None)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        drop_instance(inst)


def test_dead_exporter_is_red_not_no_data(stack):
    panels = exporter_panels()
    assert {name.split(" / ")[0] for name in panels} == {"dirac-overview", "dirac-exporter"}, sorted(panels)
    up = {name: [("UP", "green")] for name in panels}
    stack.wait_for(lambda: displayed(stack, panels) == up, 60, message=f"{up}")

    config = stack.exporter.data_dir / "exporter.yml"
    cfg = yaml.safe_load(config.read_text())
    cfg["database"]["port"] = services.free_port()  # JobDB gone, the exporter alive
    config.write_text(yaml.safe_dump(cfg))
    stack.exporter.restart()
    no_jobdb = {name: [("NO JOBDB", "orange")] if name.startswith("dirac-overview") else [("UP", "green")]
                for name in panels}
    stack.wait_for(lambda: displayed(stack, panels) == no_jobdb, 60, message=f"{no_jobdb}")

    stack.exporter.stop()
    down = {name: [("DOWN", "red")] for name in panels}
    stack.wait_for(lambda: displayed(stack, panels) == down, 60, message=f"{down}")

