"""Each agent command pushes its own liveness group (``job=bes_probe_agent, agent=submit|reap``) after every
cycle, failed or not, to a real Pushgateway; the per-target groups and the other command's group are untouched.

DIRAC's side is the FAKE DIRAC server (no DIRAC server can run here); JobDB and the Pushgateway are real.
"""

from __future__ import annotations

import subprocess
import sys
import time

from agent_fixtures import (  # noqa: F401 - fixtures
    OWN_PROBE,
    ROOT_DIR,
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
)
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from probe_pushgateway.agent.agent import FAILURE_KINDS, Agent


def _liveness(pushgateway) -> dict[str, dict]:
    """agent command -> {"time": last cycle, "push": push_time_seconds, "failures": {kind: n}} of its group."""
    out = {}
    for g in read_pushgateway_metrics(pushgateway):
        labels = g["labels"]
        if labels.get("job") != "bes_probe_agent" or "agent" not in labels:
            continue
        assert set(labels) == {"job", "agent"}, labels  # no site/ce: not a target's group
        out[labels["agent"]] = {
            "time": float(g["dirac_probe_agent_last_cycle_timestamp_seconds"]["metrics"][0]["value"]),
            "push": float(g["push_time_seconds"]["metrics"][0]["value"]),
            "failures": {m["labels"]["kind"]: float(m["value"])
                         for m in g["dirac_probe_agent_cycle_failures"]["metrics"]}}
    return out


def test_each_command_pushes_its_own_liveness_fake_dirac_server(fake_dirac_server, dirac, pushgateway, dirac_cfg,
                                                                fake_pyz, tmp_path):
    cfg = make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url=pushgateway.url, pyz=fake_pyz,
                      database=db_section(dirac), probe=OWN_PROBE,
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
    agent = Agent(cfg)
    assert agent.cycle("submit", dry_run=True).ok
    assert _liveness(pushgateway) == {}  # a dry run is not a live submitter

    started = time.time()
    assert agent.cycle("submit").submitted == 1
    live = _liveness(pushgateway)
    assert set(live) == {"submit"}
    assert started - 1 <= live["submit"]["time"] <= time.time() + 1
    assert live["submit"]["failures"] == {k: 0.0 for k in FAILURE_KINDS}

    # The reaper's cycle adds its own group; it neither retires nor changes the submitter's.
    assert agent.cycle("reap").ok
    live2 = _liveness(pushgateway)
    assert set(live2) == {"submit", "reap"} and live2["submit"] == live["submit"]
    targets = [g["labels"] for g in read_pushgateway_metrics(pushgateway) if "site" in g["labels"]]
    assert targets == [{"job": "bes_probe_agent", "site": "BES.WHU.cn", "ce": "none"}]

    # A cycle that meets failures is still a cycle: the group is replaced, with the failures it met.
    fake_dirac_server.fail("getJobsSummary", "fake server: JobMonitoring unavailable")
    stats = agent.cycle("submit")
    assert stats.failures == {"dirac": 1}
    live3 = _liveness(pushgateway)
    assert live3["submit"]["failures"]["dirac"] == 1.0 and live3["submit"]["push"] > live["submit"]["push"]
    assert live3["reap"] == live2["reap"]


def test_liveness_push_failure_is_counted(dirac_cfg, tmp_path):
    cfg = make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url="http://127.0.0.1:9",
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
    stats = Agent(cfg).cycle("reap")
    assert stats.failures["pushgateway"] == 2  # reading the groups, then the liveness push


def test_cli_once_pushes_the_commands_liveness(pushgateway, dirac_cfg, tmp_path):
    cfg = tmp_path / "agent.yml"
    cfg.write_text(f"""
targets: [BES.WHU.cn]
pushgateway: {{url: "{pushgateway.url}", timeout: 3}}
backend: {{type: dirac, require_auth: false, config_files: ["{dirac_cfg}"]}}
state_dir: {tmp_path / 'state'}
""")
    proc = subprocess.run([sys.executable, "-m", "probe_pushgateway.agent", "--config.file", str(cfg), "reap"],
                          capture_output=True, text=True, timeout=90, cwd=ROOT_DIR)
    assert proc.returncode == 0, proc.stderr
    assert set(_liveness(pushgateway)) == {"reap"}
