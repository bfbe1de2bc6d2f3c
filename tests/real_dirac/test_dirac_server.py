"""Plain DIRAC on the real server: a user's job goes through DIRAC's own WMS (JobManager, optimizers,
task queue, Matcher, a pilot's JobAgent, the job wrapper, SandboxStore) and reaches Done."""

from __future__ import annotations

import json
import subprocess
import time

from real_dirac_fixtures import (
    SCRIPT,
    USER,
    USER_GROUP,
    WORKER_CE,
    WORKER_SITE,
)


def test_up_again_leaves_the_running_server_alone(real_dirac, tmp_path):
    before = json.loads((real_dirac.base / "state.json").read_text())
    started = time.monotonic()
    proc = subprocess.run([str(SCRIPT), "up", "--dir", str(real_dirac.base)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"dirac-cfg: {real_dirac.cfg}" in proc.stdout and f"proxy: {real_dirac.user_proxy}" in proc.stdout
    assert time.monotonic() - started < 60
    assert json.loads((real_dirac.base / "state.json").read_text())["processes"] == before["processes"]
    status = subprocess.run([str(SCRIPT), "status", "--dir", str(real_dirac.base)], capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0, status.stdout
    assert {"configuration", "services", "optimizers", "pilots"} <= {
        line.split(":")[0] for line in status.stdout.splitlines() if "running" in line}
    missing = subprocess.run([str(SCRIPT), "status", "--dir", str(tmp_path / "none")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 3 and "not running" in missing.stdout
    bad = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage: scripts/dirac-server.sh up|down|status" in bad.stderr


def test_plain_dirac_job_reaches_done_with_its_output_sandbox(real_dirac, tmp_path):
    result = real_dirac.client("echo", WORKER_SITE, "hello from the worker node", str(tmp_path / "out"), "180",
                               proxy=real_dirac.user_proxy)
    job_id = result.get("job_id")
    assert isinstance(job_id, int), result
    assert result["final"] == "Done", (result, real_dirac.log_tail(f"jobagent-{WORKER_SITE}"))
    # The echo's output came back through the SandboxStore, from the worker node's job wrapper.
    assert result["sandbox_ok"]
    assert "hello from the worker node" in result["files"]["Script1_echo.log"]

    job = real_dirac.job(job_id)
    assert job == {"Status": "Done", "MinorStatus": "Execution Complete", "ApplicationStatus": "echo successful",
                   "Site": WORKER_SITE, "Owner": USER, "OwnerGroup": USER_GROUP, "JobGroup": "bes",
                   "JobName": "echo-test"}
    # Each step written by the DIRAC component that does it, in DIRAC's order.
    steps = real_dirac.logging_info(job_id)
    assert steps[:5] == [("Received", "JobManager"), ("Checking", "JobPath"), ("Checking", "JobSanity"),
                         ("Waiting", "JobScheduling"), ("Matched", "Matcher")], steps
    assert ("Matched", f"JobAgent@{WORKER_SITE}") in steps
    assert ("Running", "JobWrapper") in steps and steps[-1] == ("Done", "JobWrapper"), steps

    # The pilot that ran it: registered at the site's CE, matched by the Matcher, mapped to the job.
    pilots = real_dirac.query(
        f"SELECT p.PilotJobReference, p.GridSite, p.DestinationSite, p.Status FROM"
        f" `{real_dirac.db('PilotAgentsDB')}`.PilotAgents p JOIN `{real_dirac.db('PilotAgentsDB')}`.JobToPilotMapping m"
        f" ON m.PilotID = p.PilotID WHERE m.JobID = %s", (job_id,))
    assert len(pilots) == 1, pilots
    ref, site, ce, status = pilots[0]
    assert ref.startswith(f"dirac-server://{WORKER_CE}/") and (site, ce) == (WORKER_SITE, WORKER_CE)
    assert status in ("Running", "Done"), status

    # DIRAC 9 keeps job parameters in OpenSearch, which cannot run here: reading them fails, and only that.
    assert result["parameters_error"] == "Not connected", result
