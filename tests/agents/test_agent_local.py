"""The ``local`` back-end: the real bes-probe.pyz through DIRAC's real job wrapper, to a real Pushgateway.

``Dirac().submitJob(job, mode="local")`` runs ``dirac-jobexec`` on this machine, offline, with the
generated minimal DIRAC configuration; no fake anywhere.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from agent_fixtures import (
    ROOT_DIR,
    dirac_cfg_fixture,  # noqa: F401 - fixtures
    make_config,
)
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from probe_pushgateway.agent.agent import Agent

TARGET = {"site": "GRID.LOCAL.cn", "ces": ["ce.local.test"]}


@pytest.fixture(scope="session")
def probe_pyz(tmp_path_factory):
    """bes-probe.pyz built by the project's own builder."""
    out = tmp_path_factory.mktemp("pyz") / "bes-probe.pyz"
    subprocess.run([sys.executable, "-m", "probe_pushgateway.build", str(out)], check=True, timeout=120,
                   cwd=ROOT_DIR, capture_output=True)
    return out


def _probe_group(pgw, site: str, ce: str) -> dict | None:
    for g in read_pushgateway_metrics(pgw):
        if g["labels"] == {"job": "bes_probe", "site": site, "ce": ce}:
            return g
    return None


def _wait(predicate, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    return None


def _local_config(tmp_path, pushgateway, probe_pyz):
    probe_conf = tmp_path / "probe.yml"
    probe_conf.write_text("checks: [environment, tcp, clock]\n")
    return make_config(tmp_path, targets=[TARGET], pushgateway_url=pushgateway.url, pyz=probe_pyz,
                       backend={"type": "local"}, probe={"config": str(probe_conf), "args": ["--timeout", "60"]})


def test_local_backend_runs_the_real_probe_through_dirac_jobexec(dirac_cfg, pushgateway, probe_pyz, tmp_path):
    agent = Agent(_local_config(tmp_path, pushgateway, probe_pyz))
    first = agent.submit_cycle()
    assert (first.submitted, first.ok) == (1, True), first.failures
    second = agent.submit_cycle()  # the local run has only just started: still pending
    assert (second.submitted, second.pending) == (0, 1)

    group = _wait(lambda: _probe_group(pushgateway, "GRID.LOCAL.cn", "ce.local.test"))
    workdir = tmp_path / "state" / "local"
    assert group is not None, (workdir / "job_1" / "run.log").read_text()[-3000:]
    success = {m["labels"]["check"]: float(m["value"]) for m in group["dirac_probe_success"]["metrics"]}
    assert success["all"] == 1.0, success

    # DIRAC's job wrapper ran it: its workflow log and the probe's output are in the local job directory.
    job_id = agent.state.read()["pending"]["GRID.LOCAL.cn|ce.local.test"]["job_id"]
    backend = agent.backend([])
    assert _wait(lambda: backend.status([job_id])[job_id].status == "Done", 60), \
        (workdir / "job_1" / "run.log").read_text()[-3000:]
    log = (workdir / "job_1" / "run.log").read_text()
    assert "dirac-jobexec" in log and "bes-probe: site=GRID.LOCAL.cn ce=ce.local.test" in log

    stats = agent.reap_cycle()
    assert stats.ok, stats.failures
    agent_group = [g for g in read_pushgateway_metrics(pushgateway) if g["labels"].get("job") == "bes_probe_agent"]
    assert len(agent_group) == 1 and agent_group[0]["labels"]["ce"] == "ce.local.test"
    on = [m["labels"]["status"] for m in agent_group[0]["dirac_probe_status"]["metrics"] if float(m["value"])]
    assert on == ["ok"]
    assert agent.state.read()["pending"] == {}


def test_local_backend_kill_stops_the_run(dirac_cfg, pushgateway, probe_pyz, tmp_path):
    agent = Agent(_local_config(tmp_path, pushgateway, probe_pyz))
    assert agent.submit_cycle().submitted == 1
    job_id = agent.state.read()["pending"]["GRID.LOCAL.cn|ce.local.test"]["job_id"]
    backend = agent.backend([])
    assert backend.status([job_id])[job_id].status == "Running"
    started = time.monotonic()
    backend.kill(job_id)
    assert time.monotonic() - started < 10
    assert backend.status([job_id])[job_id].status == "Unknown"
    assert not (tmp_path / "state" / "local" / "job_1").exists()
