"""The probe agents (``bes-probe-agent``, ``dirac`` back-end) on the real DIRAC server, end to end.

The real bes-probe.pyz goes through DIRAC's WMS to the site with a worker node and pushes to a real
Pushgateway; at the site without one it waits until the reaper classifies it (BES3's rule) and deletes
it through the JobManager; a probe whose push fails is harvested from the SandboxStore; the exporter,
reading the same databases, counts the user jobs and leaves the probe jobs out of the site statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from metrics_util import Exporter
from real_dirac_fixtures import (
    CLIENT,
    IDLE_SITE,
    PROBE_GROUP,
    PROBE_USER,
    ROOT,
    WORKER_CE,
    WORKER_SITE,
    wait_for,
)
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

WAITING_TIMEOUT = 20  # seconds a probe may wait at a site before the reaper classifies it
JOB_TIMEOUT = 180     # a job at the worker site reaches a final state within this


@pytest.fixture(scope="module")
def probe_pyz(tmp_path_factory):
    """bes-probe.pyz built by the project's own builder (world-readable)."""
    out = tmp_path_factory.mktemp("pyz") / "bes-probe.pyz"
    subprocess.run([sys.executable, "-m", "probe_pushgateway.build", str(out)], check=True, timeout=120, cwd=ROOT,
                   capture_output=True)
    return out


def agent_config(tmp_path, real_dirac, pushgateway, probe_pyz, targets, **push) -> str:
    """A probe-agent YAML file for the real server (state in tmp_path/state)."""
    probe_conf = tmp_path / "probe.yml"
    probe_conf.write_text("checks: [environment, tcp, clock]\n")
    data = {
        "targets": targets,
        "probe": {"pyz": str(probe_pyz), "config": str(probe_conf), "args": ["--timeout", "60"], "period": 1,
                  "waiting_timeout": WAITING_TIMEOUT, "running_timeout": 600,
                  "owner": PROBE_USER, "owner_group": PROBE_GROUP},  # who its probe jobs belong to in JobDB
        "pushgateway": {"url": pushgateway.url, "timeout": 5, **push},
        "backend": {"type": "dirac", "config_files": [str(real_dirac.cfg)]},
        "database": {"host": real_dirac.state["db_host"], "port": real_dirac.state["db_port"],
                     "user": real_dirac.state["db_user"], "password": "", "jobdb": real_dirac.db("JobDB")},
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "agent.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_agent(real_dirac, config: str, command: str) -> str:
    """``bes-probe-agent -c CONFIG COMMAND`` with the probe agents' proxy; its log (stderr)."""
    proc = subprocess.run([sys.executable, "-m", "probe_pushgateway.agent", "-c", config, command],
                          env=real_dirac.env(real_dirac.probe_proxy), capture_output=True, text=True, timeout=180,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def probe_jobs(real_dirac, since: int) -> dict[str, dict]:
    """The probe agents' jobs after job ``since``, by site."""
    rows = real_dirac.query(f"SELECT JobID, Site FROM `{real_dirac.db('JobDB')}`.Jobs WHERE JobID > %s"
                            " AND Owner = %s AND JobGroup = 'bes_probe'", (since, PROBE_USER))
    return {site: {"id": jid, **real_dirac.job(jid)} for jid, site in rows}


def last_job(real_dirac) -> int:
    return real_dirac.query(f"SELECT COALESCE(MAX(JobID), 0) FROM `{real_dirac.db('JobDB')}`.Jobs")[0][0]


def groups(pushgateway) -> dict[tuple[str, str, str], dict]:
    """Per-target groups (the agents' own liveness groups, without site and ce, left out)."""
    return {(g["labels"]["job"], g["labels"]["site"], g["labels"]["ce"]): g
            for g in read_pushgateway_metrics(pushgateway) if "site" in g["labels"]}


def status_on(group: dict) -> list[str]:
    return [m["labels"]["status"] for m in group["dirac_probe_status"]["metrics"] if float(m["value"])]


def final(real_dirac, job_id: int):
    status = real_dirac.job(job_id).get("Status")
    return status if status in ("Done", "Failed", "Killed", "Deleted") else None


def test_agents_probe_two_sites_through_the_real_wms(real_dirac, pushgateway, probe_pyz, tmp_path):
    exporter = Exporter(real_dirac.exporter_config())
    exporter.scrape()  # the baseline: jobs ending from now on are counted
    since = last_job(real_dirac)
    # A user's job at the worker site, meanwhile (the exporter must count it, and only it).
    user = subprocess.Popen([sys.executable, str(CLIENT), str(real_dirac.cfg), "echo", WORKER_SITE, "user job",
                             str(tmp_path / "user-out"), str(JOB_TIMEOUT)], env=real_dirac.env(real_dirac.user_proxy),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        config = agent_config(tmp_path, real_dirac, pushgateway, probe_pyz,
                              [{"site": WORKER_SITE, "ces": [WORKER_CE]}, IDLE_SITE])
        started = time.monotonic()
        assert "submit cycle: submitted=2 pending=0; failures: none" in run_agent(real_dirac, config, "submit")
        jobs = probe_jobs(real_dirac, since)
        assert set(jobs) == {WORKER_SITE, IDLE_SITE}, jobs
        assert {j["OwnerGroup"] for j in jobs.values()} == {PROBE_GROUP}
        # Never two per target: pending by the real JobMonitoring, and by JobDB without the state file.
        assert "submitted=0 pending=2" in run_agent(real_dirac, config, "submit")
        (tmp_path / "state" / "state.json").unlink()
        assert "submitted=0 pending=2" in run_agent(real_dirac, config, "submit")

        # The worker site's JobAgent runs the real probe, which pushes its result.
        pushed = wait_for(lambda: groups(pushgateway).get(("bes_probe", WORKER_SITE, WORKER_CE)), JOB_TIMEOUT)
        assert pushed, real_dirac.log_tail(f"jobagent-{WORKER_SITE}")
        success = {m["labels"]["check"]: float(m["value"]) for m in pushed["dirac_probe_success"]["metrics"]}
        assert success["all"] == 1.0, success
        job_id = float(pushed["dirac_probe_job_id"]["metrics"][0]["value"])
        assert job_id == jobs[WORKER_SITE]["id"]  # the job wrapper gave the probe its job ID
        assert wait_for(lambda: final(real_dirac, jobs[WORKER_SITE]["id"]), JOB_TIMEOUT) == "Done"

        # The other site has no worker node: its probe waits. The exporter sees it as a probe job only.
        assert real_dirac.job(jobs[IDLE_SITE]["id"])["Status"] == "Waiting"
        s = exporter.scrape()
        assert s.v("dirac_probe_jobs", site=IDLE_SITE, status="Waiting") == 1
        assert s.get_value("dirac_jobs", site=IDLE_SITE, status="Waiting") in (None, 0)
        time.sleep(max(0.0, WAITING_TIMEOUT + 2 - (time.monotonic() - started)))

        log = run_agent(real_dirac, config, "reap")
        assert f"probe job {jobs[IDLE_SITE]['id']} for {IDLE_SITE}/none: Waiting for" in log, log
        assert "past its timeout -> bad (site: 0 running, 0 done)" in log, log
        assert "reaped=1" in log and "failures: none" in log, log
        # Killed and deleted by DIRAC's JobManager (its own final state for a deleted job).
        assert real_dirac.job(jobs[IDLE_SITE]["id"])["Status"] == "Deleted"
        assert real_dirac.query(f"SELECT Command FROM `{real_dirac.db('JobDB')}`.JobCommands WHERE JobID=%s",
                                (jobs[IDLE_SITE]["id"],)) == (("Kill",),)
        states = groups(pushgateway)
        assert status_on(states[("bes_probe_agent", WORKER_SITE, WORKER_CE)]) == ["ok"]
        assert status_on(states[("bes_probe_agent", IDLE_SITE, "none")]) == ["bad"]

        out, err = user.communicate(timeout=JOB_TIMEOUT)
        assert user.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["final"] == "Done", out
    finally:
        if user.poll() is None:
            user.kill()
            user.wait(timeout=10)

    # The exporter on the same databases: the user's job is counted at its site, the probe jobs are not.
    s = exporter.scrape()
    assert s.v("dirac_up") == 1
    assert s.v("dirac_jobs_finished_total", site=WORKER_SITE, status="Done") == 1
    assert s.get_value("dirac_jobs_finished_total", site=IDLE_SITE, status="Killed") in (None, 0)
    assert s.get_value("dirac_probe_jobs", site=IDLE_SITE, status="Waiting") in (None, 0)
    assert s.v("dirac_site_status", site=WORKER_SITE, status="Active") == 1
    # The worker site's pilot (registered Submitted by the pilot factory, Running once the Matcher gave it a
    # job): one at a time (a second bridges the start of the next pilot).
    def active_pilots():
        samples = exporter.scrape()
        return sum(samples.get_value("dirac_pilots", site=WORKER_SITE, ce=WORKER_CE, status=st) or 0
                   for st in ("Submitted", "Running"))
    assert wait_for(active_pilots, 15) == 1


def test_probe_whose_push_fails_is_harvested_from_the_sandbox_store(real_dirac, pushgateway, probe_pyz, tmp_path):
    since = last_job(real_dirac)
    closed = "http://127.0.0.1:9"  # nothing listens: the probe's own push fails, it prints its result
    config = agent_config(tmp_path, real_dirac, pushgateway, probe_pyz, [{"site": WORKER_SITE, "ces": [WORKER_CE]}],
                          probe_url=closed)
    assert "submitted=1" in run_agent(real_dirac, config, "submit")
    job = probe_jobs(real_dirac, since)[WORKER_SITE]
    assert wait_for(lambda: final(real_dirac, job["id"]), JOB_TIMEOUT) == "Failed", \
        real_dirac.log_tail(f"jobagent-{WORKER_SITE}")
    assert real_dirac.job(job["id"])["ApplicationStatus"] == "python3 Exited With Status 2"
    assert ("bes_probe", WORKER_SITE, WORKER_CE) not in groups(pushgateway)

    log = run_agent(real_dirac, config, "reap")
    # The result: its tcp check (by default, the Pushgateway it was given) failed; the clock check, which
    # needs that Pushgateway's time, is unknown (absent).
    assert f"probe job {job['id']} for {WORKER_SITE}/{WORKER_CE}: result harvested from its output and pushed" \
           " (failed)" in log, log
    assert "harvested=1" in log and "failures: none" in log, log
    harvested = groups(pushgateway)[("bes_probe", WORKER_SITE, WORKER_CE)]
    assert float(harvested["dirac_probe_harvested"]["metrics"][0]["value"]) == 1
    assert float(harvested["dirac_probe_job_id"]["metrics"][0]["value"]) == job["id"]
    success = {m["labels"]["check"]: float(m["value"]) for m in harvested["dirac_probe_success"]["metrics"]}
    assert success == {"all": 0.0, "tcp": 0.0, "environment": 1.0}, success
    agent = groups(pushgateway)[("bes_probe_agent", WORKER_SITE, WORKER_CE)]
    assert status_on(agent) == ["failed"]
    counts = {m["labels"]["outcome"]: float(m["value"]) for m in agent["dirac_probe_harvests_total"]["metrics"]}
    assert counts == {"pushed": 1.0, "refused": 0.0, "missing": 0.0}


def test_dirac_backend_on_the_real_wms(real_dirac, probe_pyz, tmp_path):
    """Submit, status, output, kill+delete of the back-end, and the errors the real server gives."""
    foreign = real_dirac.client("echo", IDLE_SITE, "a user's job", str(tmp_path / "out"), "0",
                                proxy=real_dirac.user_proxy)["job_id"]
    try:
        result = real_dirac.client("backend", str(foreign), str(probe_pyz), proxy=real_dirac.probe_proxy)
        assert result["status"]["status"] == "Waiting" and result["status"]["site"] == IDLE_SITE, result
        assert abs(result["status"]["submitted"] - time.time()) < 300 and result["status"]["started"] is None
        assert result["read_output"].startswith(f"NoOutput: output sandbox of probe job {result['job_id']}:"
                                                f" No Output sandbox found for job {result['job_id']}"), result
        assert result["after_kill"] == "Deleted" and real_dirac.job(result["job_id"])["Status"] == "Deleted"
        assert result["unknown"] == "Unknown"
        # DIRAC's JobPolicy: the probe agents may not delete a user's job; one line, the job untouched.
        assert result["foreign_kill"] == f"killing and deleting probe job {foreign}: Some jobs failed deletion"
        assert result["foreign_status"] == "Waiting" and real_dirac.job(foreign)["Status"] == "Waiting"
    finally:
        deleted = real_dirac.client("delete", str(foreign), proxy=real_dirac.user_proxy)
    assert deleted["ok"], deleted


def test_proxy_missing_is_one_line(real_dirac, tmp_path, pushgateway, probe_pyz):
    """No proxy where DIRAC looks for one: the agent's cycle fails with one line, no traceback."""
    config = agent_config(tmp_path, real_dirac, pushgateway, probe_pyz, [IDLE_SITE])
    env = real_dirac.env(tmp_path / "no-such-proxy.pem")
    env["X509_USER_PROXY"] = str(tmp_path / "no-such-proxy.pem")
    proc = subprocess.run([sys.executable, "-m", "probe_pushgateway.agent", "-c", config, "submit"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert errors and "DIRAC initialisation failed" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "state" / "state.json") or \
        not json.loads((tmp_path / "state" / "state.json").read_text())["pending"]
