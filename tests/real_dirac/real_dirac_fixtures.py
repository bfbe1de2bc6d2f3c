"""The real DIRAC server of a test session (``scripts/dirac-server.sh``), and helpers to use it.

Helpers are imported from here, not from conftest.py (several conftest modules in one run overwrite each
other as ``conftest``); this folder's conftest.py registers :func:`real_dirac_fixture` as ``real_dirac``
once for all its modules. One server per session: ``up`` once (about 20 s), ``down`` at the end, which
stops every process and drops its databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "dirac-server.sh"
CLIENT = Path(__file__).resolve().parent / "dirac_client.py"
WORKER_SITE, WORKER_CE = "BES.IHEP-PBS.cn", "ce01.ihep.ac.cn"  # a JobAgent runs its jobs
IDLE_SITE = "BES.USTC.cn"                                        # no worker node: jobs wait there
USER, USER_GROUP, PROBE_USER, PROBE_GROUP = "besuser", "bes_user", "besprobe", "bes_prod"
UP_TIMEOUT = 600


@dataclass
class RealDirac:
    """A running server: the client cfg, the two users' proxies, its databases."""

    base: Path
    cfg: Path
    user_proxy: Path
    probe_proxy: Path
    state: dict
    up_seconds: float

    def db(self, logical: str) -> str:
        return self.state["databases"][logical]

    def query(self, sql: str, args=()) -> tuple:
        conn = pymysql.connect(host=self.state["db_host"], port=self.state["db_port"], user=self.state["db_user"],
                               password="", autocommit=True, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.base / "logs" / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"({exc})"

    def env(self, proxy: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["X509_USER_PROXY"] = str(proxy)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def client(self, *args: str, proxy: Path, timeout: float = 240) -> dict:
        """Run :mod:`dirac_client` (DIRAC's own client) with ``proxy``; its JSON answer."""
        proc = subprocess.run([sys.executable, str(CLIENT), str(self.cfg), *args], env=self.env(proxy),
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 0 and lines, f"dirac_client {args[0]} failed: {proc.stderr[-3000:]}"
        return json.loads(lines[-1])

    def exporter_config(self) -> dict:
        """The exporter reading this server's databases."""
        return {"database": {"host": self.state["db_host"], "port": self.state["db_port"],
                             "user": self.state["db_user"], "password": "", "jobdb": self.db("JobDB"),
                             "pilotdb": self.db("PilotAgentsDB"), "logdb": self.db("JobLoggingDB"),
                             "rssdb": self.db("ResourceStatusDB"), "connect_timeout": 2, "query_timeout": 10}}

    def job(self, job_id: int | str) -> dict:
        cols = ("Status", "MinorStatus", "ApplicationStatus", "Site", "Owner", "OwnerGroup", "JobGroup", "JobName")
        row = self.query(f"SELECT {', '.join(cols)} FROM `{self.db('JobDB')}`.Jobs WHERE JobID=%s", (int(job_id),))
        return dict(zip(cols, row[0])) if row else {}

    def logging_info(self, job_id: int | str) -> list[tuple[str, str]]:
        """(Status, StatusSource) of the job's LoggingInfo rows in order ("idem", DIRAC's "unchanged",
        replaced by the status it repeats), consecutive repeats dropped."""
        rows = self.query(f"SELECT Status, StatusSource FROM `{self.db('JobLoggingDB')}`.LoggingInfo"
                          " WHERE JobID=%s ORDER BY SeqNum", (int(job_id),))
        out: list[tuple[str, str]] = []
        for status, source in rows:
            step = (out[-1][0] if status == "idem" and out else status, source)
            if not out or out[-1] != step:
                out.append(step)
        return out


def wait_for(predicate, timeout: float, every: float = 1.0):
    """``predicate()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(every)


def up(base: Path) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    proc = subprocess.run([str(SCRIPT), "up", "--dir", str(base)], capture_output=True, text=True,
                          timeout=UP_TIMEOUT)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"scripts/dirac-server.sh up failed ({proc.returncode}): {proc.stderr[-3000:]}")
    paths = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    return paths, elapsed


@pytest.fixture(scope="session", name="real_dirac")
def real_dirac_fixture(tmp_path_factory) -> RealDirac:
    """The session's DIRAC server (up once, down at the end: processes stopped, databases dropped)."""
    base = tmp_path_factory.mktemp("dirac-server")
    paths, elapsed = up(base)
    server = RealDirac(base=base, cfg=Path(paths["dirac-cfg"]), user_proxy=Path(paths["proxy"]),
                       probe_proxy=Path(paths["probe-proxy"]), state=json.loads((base / "state.json").read_text()),
                       up_seconds=elapsed)
    yield server
    proc = subprocess.run([str(SCRIPT), "down", "--dir", str(base)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    left = {pid: _describe(pid) for pid in processes_of(base)}
    assert not left, f"left running after down: {left}"
    assert not server.query("SHOW DATABASES LIKE %s", (server.state["tag"] + "\\_%",)), "databases left after down"


def _describe(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError as exc:
        return str(exc)
    return f"state {stat[0]} pgid {stat[2]}: {cmd[:300]}"


def processes_of(base: Path) -> list[int]:
    """Live processes whose command line names the instance directory."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(base).encode() in (entry / "cmdline").read_bytes():
                out.append(int(entry.name))
        except OSError:
            continue
    return out
