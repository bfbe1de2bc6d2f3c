"""``BES_DEMO_PROBE_BACKEND=dirac``: the demo's own probe-agent configuration, on the session's real DIRAC
server, sends the real probe through DIRAC's WMS, and its result reaches the demo's Pushgateway."""

from __future__ import annotations

import subprocess

from real_dirac_fixtures import PROBE_USER, ROOT, WORKER_SITE, wait_for
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from bes_demo import cli
from bes_simulator.cvmfs import FakeCvmfs
from bes_simulator.topology import load_topology

JOB_TIMEOUT = 180  # a probe job at the worker site reports within this (DIRAC's pace: pilots, JobAgent)


def test_demo_agents_probe_the_servers_worker_site_through_the_wms(real_dirac, pushgateway, tmp_path):
    env = {"BES_DEMO_DIR": str(tmp_path), "BES_DEMO_PROBE_BACKEND": "dirac",
           "BES_DEMO_PUSHGATEWAY_PORT": str(pushgateway.port)}
    s = cli.settings(env)
    assert s.probe_sites == [WORKER_SITE]
    # The simulator's fake CVMFS roots, which the demo's probe config points at (no simulator runs here).
    FakeCvmfs(s.dir / "simulator" / "cvmfs", s.probe_sites, load_topology().cvmfs_repositories)
    server = cli.DiracServer.read(real_dirac.cfg, real_dirac.probe_proxy, real_dirac.base / "state.json")
    config = cli.agent_files(s, server)
    since = real_dirac.query(f"SELECT COALESCE(MAX(JobID), 0) FROM `{real_dirac.db('JobDB')}`.Jobs")[0][0]

    submit = subprocess.run([str(cli.BIN / "bes-probe-agent"), "--config.file", str(config), "submit"],
                            env=cli.agent_env(server), capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert submit.returncode == 0 and "submitted=1" in submit.stderr, submit.stderr[-3000:]
    jobs = real_dirac.query(f"SELECT JobID, Site, OwnerGroup FROM `{real_dirac.db('JobDB')}`.Jobs WHERE JobID > %s"
                            " AND Owner = %s AND JobGroup = 'bes_probe'", (since, PROBE_USER))
    assert [(site, group) for _, site, group in jobs] == [(WORKER_SITE, "bes_prod")], jobs

    def probe_group():
        return next((g for g in read_pushgateway_metrics(pushgateway)
                     if g["labels"].get("job") == "bes_probe" and g["labels"].get("site") == WORKER_SITE), None)

    pushed = wait_for(probe_group, JOB_TIMEOUT)
    assert pushed, real_dirac.log_tail(f"jobagent-{WORKER_SITE}")
    assert float(pushed["dirac_probe_job_id"]["metrics"][0]["value"]) == jobs[0][0]
    success = {m["labels"]["check"]: float(m["value"]) for m in pushed["dirac_probe_success"]["metrics"]}
    assert success["all"] == 1.0 and success["cvmfs"] == 1.0, success
