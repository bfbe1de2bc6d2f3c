"""The loop survives a DIRAC S_ERROR, a JobDB outage and a Pushgateway outage; failures are counted.

DIRAC's side is the FAKE DIRAC server (it makes one chosen call fail, which a real server cannot be made
to do on demand); JobDB and the Pushgateway are real and really fail (the agent's connection is killed
server-side, the daemon is stopped).
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import time

from agent_fixtures import (  # noqa: F401 - fixtures
    OWN_PROBE,
    ROOT_DIR,
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    make_config,
    probe_job,
)
from services_fixtures import pushgateway_fixture, read_pushgateway_metrics  # noqa: F401

from bes_simulator.writer import utcnow
from probe_pushgateway.agent.agent import Agent, CycleStats, run_loop
from probe_pushgateway.agent.targets import Target


def test_loop_survives_outages_fake_dirac_server(fake_dirac_server, dirac, pushgateway, dirac_cfg, tmp_path,
                                                 caplog):
    cfg = make_config(tmp_path, targets=["BES.WHU.cn", "BES.USTC.cn"], pushgateway_url=pushgateway.url,
                      database=db_section(dirac), probe=OWN_PROBE,
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
    caplog.set_level(logging.INFO, "bes_probe_agent")
    agent = Agent(cfg)
    seen: list[CycleStats] = []
    stuck = {}

    def before(n: int) -> None:
        if n == 2:
            pushgateway.stop()
        elif n == 3:
            pushgateway.restart()
            dirac.query(f"KILL {agent.jobdb.conn.thread_id()}")  # JobDB drops the agent's connection
        elif n == 4:
            stuck["id"] = probe_job(dirac, Target("BES.WHU.cn"), when=utcnow() - dt.timedelta(hours=3))
            fake_dirac_server.fail("deleteJob", "fake server: JobManager unavailable")
        elif n == 5:
            fake_dirac_server.fail("deleteJob", None)

    def cycle() -> CycleStats:
        before(len(seen) + 1)
        stats = agent.reap_cycle()
        seen.append(stats)
        return stats

    started = time.monotonic()
    totals = run_loop(cycle, interval=0.05, max_cycles=5)
    assert time.monotonic() - started < 60
    assert [dict(s.failures) for s in seen] == [{}, {"pushgateway": 1}, {"db": 1}, {"dirac": 1}, {}]
    assert totals == {"pushgateway": 1, "db": 1, "dirac": 1}
    assert [s.pushed for s in seen] == [2, 0, 2, 2, 2]
    assert seen[4].reaped == 1
    assert dirac.query(f"SELECT Status FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s", (stuck["id"],))[0][0] == \
        "Deleted"
    states = {g["labels"]["site"] for g in read_pushgateway_metrics(pushgateway)}
    assert states == {"BES.WHU.cn", "BES.USTC.cn"}
    assert "failures so far: db=1 dirac=1 pushgateway=1" in caplog.text


def test_loop_survives_a_cycle_that_raises():
    calls = []

    def cycle() -> CycleStats:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom\nsecond line")
        return CycleStats("reap")

    assert run_loop(cycle, interval=0.01, max_cycles=3) == {"internal": 1}
    assert len(calls) == 3


def test_cli_loop_with_everything_down_keeps_cycling(dirac_cfg, tmp_path):
    cfg = tmp_path / "agent.yml"
    cfg.write_text(f"""
targets: [BES.WHU.cn]
pushgateway: {{url: "http://127.0.0.1:9", timeout: 1}}
database: {{host: 127.0.0.1, port: 9, user: nobody, jobdb: JobDB, connect_timeout: 1, query_timeout: 1}}
backend: {{type: dirac, require_auth: false, config_files: ["{dirac_cfg}"]}}
state_dir: {tmp_path / 'state'}
""")
    proc = subprocess.run([sys.executable, "-m", "probe_pushgateway.agent", "--config.file", str(cfg), "reap", "--loop",
                           "--interval", "1", "--max-cycles", "2"],
                          capture_output=True, text=True, timeout=90, cwd=ROOT_DIR)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cycle 2: reap cycle" in proc.stderr
    assert "failures so far: db=2 pushgateway=4" in proc.stderr  # per cycle: reading groups, the liveness push
