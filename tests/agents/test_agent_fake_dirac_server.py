"""The ``dirac`` back-end: DIRAC's real ``Dirac`` API against a FAKE DIRAC server (none can run here).

The fake stands in for the JobManager/JobMonitoring/SandboxStore services only and writes the real
MariaDB JobDB the way DIRAC does; every S_ERROR path of submit / status / kill+delete is exercised.
"""

from __future__ import annotations

import time

import pytest
from agent_fixtures import (  # noqa: F401 - fixtures
    OWN_PROBE,
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
)
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from probe_pushgateway.agent.agent import Agent
from probe_pushgateway.agent.backends import BackendError, DiracBackend, NoOutput
from probe_pushgateway.agent.diracjob import build_probe_job
from probe_pushgateway.agent.targets import Target

PROBE = {"config": None, "python": "python3", "args": [], "job_group": "bes_probe", "cpu_time": 900}


def _backend(dirac_cfg) -> DiracBackend:
    return DiracBackend([str(dirac_cfg)], require_auth=False)


def _job(target: Target, pyz) -> object:
    return build_probe_job(target, {**PROBE, "pyz": str(pyz)}, "http://127.0.0.1:9091")


def test_submit_status_kill_delete_fake_dirac_server(fake_dirac_server, dirac_cfg, fake_pyz, dirac):
    backend = _backend(dirac_cfg)
    target = Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
    job_id = backend.submit(_job(target, fake_pyz), target)
    row = dirac.query(f"SELECT JobName, JobGroup, Site, Status FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s",
                      (int(job_id),))[0]
    assert row == ("bes_probe@BES.IHEP-PBS.cn@ce01.ihep.ac.cn", "bes_probe", "BES.IHEP-PBS.cn", "Received")
    # DIRAC's real WMSClient packed the input sandbox: the probe and the workflow description.
    assert fake_dirac_server.sandboxes == [["bes-probe.pyz", "jobDescription.xml"]]

    state = backend.status([job_id])[job_id]
    assert (state.status, state.site) == ("Received", "BES.IHEP-PBS.cn")
    assert state.submitted and abs(state.submitted - time.time()) < 120
    assert backend.status(["999999"])["999999"].status == "Unknown"

    backend.kill(job_id)
    assert dirac.query(f"SELECT Status FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s", (int(job_id),))[0][0] == \
        "Deleted"
    # Dirac.killJob/deleteJob first ask the job states twice (may it become Killed? Deleted?)
    assert fake_dirac_server.calls[-6:] == ["getJobsStatus"] * 2 + ["killJob"] + ["getJobsStatus"] * 2 + ["deleteJob"]


@pytest.mark.parametrize("call, operation", [
    ("submitJob", "submit"), ("sendFile", "submit"), ("getJobsSummary", "status"),
    ("getJobsStatus", "kill"), ("killJob", "kill"), ("deleteJob", "kill"),
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


def test_never_two_pending_probes_per_target_fake_dirac_server(fake_dirac_server, dirac, pushgateway, dirac_cfg,
                                                               fake_pyz, tmp_path):
    agent = Agent(_config(tmp_path, dirac, pushgateway, dirac_cfg, fake_pyz, probe=OWN_PROBE))
    first = agent.submit_cycle()
    assert (first.submitted, first.ok) == (2, True)
    time.sleep(1.1)  # past the 1 s period: only the pending jobs hold the next submissions back
    second = agent.submit_cycle()
    assert (second.submitted, second.pending, second.ok) == (0, 2, True)

    # Without the state file the pending jobs are still found in JobDB (by job group, owner and name).
    (tmp_path / "state" / "state.json").unlink()
    third = agent.submit_cycle()
    assert (third.submitted, third.pending) == (0, 2)

    ids = [r[0] for r in dirac.query(f"SELECT JobID FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobName LIKE %s",
                                     ("bes_probe@BES.WHU.cn@%",))]
    dirac.writer.run_to(ids[0], "BES.WHU.cn")  # the WHU probe ran and finished
    fourth = agent.submit_cycle()
    assert (fourth.submitted, fourth.pending) == (1, 1)
    assert dirac.query(f"SELECT COUNT(*) FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobGroup='bes_probe'")[0][0] == 3

    groups = {(g["labels"]["site"], g["labels"]["ce"]): g for g in read_pushgateway_metrics(pushgateway)}
    assert set(groups) == {("BES.WHU.cn", "none"), ("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn")}
    value = float(groups[("BES.WHU.cn", "none")]["dirac_probe_submitted_timestamp_seconds"]["metrics"][0]["value"])
    assert abs(value - time.time()) < 60
    assert groups[("BES.WHU.cn", "none")]["labels"]["job"] == "bes_probe_agent"


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


def test_read_output_without_sandbox_or_service_fake_dirac_server(fake_dirac_server, dirac_cfg, fake_pyz):
    """The reaper's harvest reads bes-probe.log through DIRAC's real SandboxStoreClient: a job without an
    output sandbox is NoOutput (one line, counted ``missing``), a failing SandboxStore service a DIRAC error."""
    backend = _backend(dirac_cfg)
    job_id = backend.submit(_job(Target("BES.WHU.cn"), fake_pyz), Target("BES.WHU.cn"))
    with pytest.raises(NoOutput, match=f"No Output sandbox found for job {job_id}"):
        backend.read_output(job_id, "bes-probe.log", 1 << 20)
    fake_dirac_server.fail("getSandboxesAssignedToEntity")
    with pytest.raises(BackendError, match="service unavailable") as exc:
        backend.read_output(job_id, "bes-probe.log", 1 << 20)
    assert not isinstance(exc.value, NoOutput) and "\n" not in str(exc.value)
