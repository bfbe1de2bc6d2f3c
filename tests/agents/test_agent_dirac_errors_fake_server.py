"""The ``dirac`` back-end's ERROR paths: DIRAC's real ``Dirac`` API against a FAKE DIRAC server.

Only what the real server (tests/real_dirac) cannot be made to produce on demand: an S_ERROR or an
exception from one chosen call (submit, sandbox upload, status, kill+delete, sandbox listing). The
working paths (submit, status, kill+delete, output sandbox, pending detection) run on the real server.
"""

from __future__ import annotations

import time

import pytest
from agent_fixtures import (  # noqa: F401 - fixtures
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
)
from services_fixtures import pushgateway_fixture  # noqa: F401

from probe_pushgateway.agent.agent import Agent
from probe_pushgateway.agent.backends import BackendError, DiracBackend, NoOutput
from probe_pushgateway.agent.diracjob import build_probe_job
from probe_pushgateway.agent.targets import Target

PROBE = {"config": None, "python": "python3", "args": [], "job_group": "bes_probe", "cpu_time": 900}


def _backend(dirac_cfg) -> DiracBackend:
    return DiracBackend([str(dirac_cfg)], require_auth=False)


def _job(target: Target, pyz) -> object:
    return build_probe_job(target, {**PROBE, "pyz": str(pyz)}, "http://127.0.0.1:9091")


@pytest.mark.parametrize("call, operation", [
    ("submitJob", "submit"), ("sendFile", "submit"), ("getJobsSummary", "status"),
    ("getJobsStatus", "kill"), ("deleteJob", "kill"),
])
def test_every_s_error_becomes_one_line_fake_dirac_server(fake_dirac_server, dirac_cfg, fake_pyz, call, operation):
    backend = _backend(dirac_cfg)
    target = Target("BES.USTC.cn")
    job_id = backend.submit(_job(target, fake_pyz), target)
    fake_dirac_server.fail(call, "fake server: Connection refused\n(second line)")
    with pytest.raises(BackendError) as err:
        if operation == "submit":
            backend.submit(_job(target, fake_pyz), target)
        elif operation == "status":
            backend.status([job_id])
        else:
            backend.kill(job_id)
    message = str(err.value)
    assert "fake server: Connection refused (second line)" in message
    assert "\n" not in message


def test_exception_inside_dirac_client_is_a_backend_error_fake_dirac_server(fake_dirac_server, dirac_cfg, fake_pyz):
    backend = _backend(dirac_cfg)
    fake_dirac_server.explode("getJobsSummary", ConnectionResetError("peer reset"))
    with pytest.raises(BackendError, match="DIRAC raised ConnectionResetError: peer reset"):
        backend.status(["1"])


def _config(tmp_path, dirac, pushgateway, dirac_cfg, pyz, **kw):
    return make_config(tmp_path, targets=kw.pop("targets", ["BES.WHU.cn", {"site": "BES.IHEP-PBS.cn",
                                                                          "ces": ["ce02.ihep.ac.cn"]}]),
                       pushgateway_url=pushgateway.url, pyz=pyz, database=db_section(dirac),
                       backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]},
                       probe={"period": 1, **kw.pop("probe", {})}, **kw)


def test_submit_cycle_counts_s_errors_and_holds_back_fake_dirac_server(fake_dirac_server, dirac, pushgateway,
                                                                       dirac_cfg, fake_pyz, tmp_path):
    agent = Agent(_config(tmp_path, dirac, pushgateway, dirac_cfg, fake_pyz))
    fake_dirac_server.fail("submitJob", "fake server: JobManager unavailable")
    stats = agent.submit_cycle()
    assert stats.submitted == 0 and stats.failures["dirac"] == 2
    fake_dirac_server.fail("submitJob", None)
    assert agent.submit_cycle().submitted == 2
    time.sleep(1.1)
    # Status unknown (S_ERROR) and JobDB down: a recorded job is presumed pending, nothing is resubmitted.
    fake_dirac_server.fail("getJobsSummary", "fake server: JobMonitoring unavailable")
    agent.jobdb.cfg = {**agent.jobdb.cfg, "port": 1}
    agent.jobdb.close()
    stats = agent.submit_cycle()
    assert stats.submitted == 0 and stats.pending == 2
    assert stats.failures == {"dirac": 1, "db": 1}


def test_read_output_with_failing_sandbox_service_fake_dirac_server(fake_dirac_server, dirac_cfg, fake_pyz):
    """A failing SandboxStore service is a DIRAC error (not NoOutput, which the real server's "No Output
    sandbox found" is: tests/real_dirac)."""
    backend = _backend(dirac_cfg)
    job_id = backend.submit(_job(Target("BES.WHU.cn"), fake_pyz), Target("BES.WHU.cn"))
    fake_dirac_server.fail("getSandboxesAssignedToEntity")
    with pytest.raises(BackendError, match="service unavailable") as exc:
        backend.read_output(job_id, "bes-probe.log", 1 << 20)
    assert not isinstance(exc.value, NoOutput) and "\n" not in str(exc.value)
