"""Helpers for the simulator tests: run ``bes-simulate`` on a unique database prefix of the real MariaDB."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pymysql
import yaml

from bes_simulator import cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SMALL = str(HERE / "topology_small.yml")
DB_HOST = os.environ.get("BES_TEST_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("BES_TEST_DB_PORT", "3306"))
SPEED = 100.0
SEED = os.environ.get("BES_SIMULATE_TEST_SEED", "7")  # another seed: check the tests do not depend on luck


def conn() -> pymysql.connections.Connection:
    return pymysql.connect(host=DB_HOST, port=DB_PORT, user="root", password="", autocommit=True)


def new_prefix() -> str:
    return f"bes_sim_{uuid.uuid4().hex[:8]}_"


def db_args(prefix: str) -> list[str]:
    return ["--db-host", DB_HOST, "--db-port", str(DB_PORT), "--db-user", "root", "--db-prefix", prefix]


def drop(prefix: str) -> None:
    c = conn()
    with c.cursor() as cur:
        for name in ("JobDB", "PilotAgentsDB", "JobLoggingDB", "ResourceStatusDB", "bes_simulate"):
            cur.execute(f"DROP DATABASE IF EXISTS `{prefix}{name}`")
    c.close()


def run_cli(*argv: str) -> tuple[int, str]:
    """``bes-simulate`` in-process; returns the exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(argv))
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code
    return rc, err.getvalue()


def run_subprocess(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bes_simulator", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@dataclass
class Run:
    """A finished simulator run: its databases, events document and state directory."""

    prefix: str
    generation: str
    events: dict
    state: Path

    @property
    def jobdb(self) -> str:
        return f"{self.prefix}JobDB"

    @property
    def pilotdb(self) -> str:
        return f"{self.prefix}PilotAgentsDB"

    @property
    def logdb(self) -> str:
        return f"{self.prefix}JobLoggingDB"

    def query(self, sql: str, args=()) -> list[tuple]:
        c = conn()
        try:
            with c.cursor() as cur:
                cur.execute(sql.format(job=self.jobdb, pilot=self.pilotdb, log=self.logdb,
                                       rss=f"{self.prefix}ResourceStatusDB"), args)
                return list(cur.fetchall())
        finally:
            c.close()

    def scenario(self, name: str) -> dict:
        return next(s for s in self.events["scenarios"] if s["name"] == name)

    def utc(self, sim: float) -> dt.datetime:
        """Database DATETIME (floored) of a simulated second."""
        clock = self.events["clock"]
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(clock["origin_epoch"] + sim / clock["speed"]))


def small_topology(path: Path, **dirac) -> str:
    """The small topology with ``dirac`` settings changed (e.g. ``job_efficiency=True``), written to ``path``."""
    data = yaml.safe_load(Path(SMALL).read_text())
    data.setdefault("dirac", {}).update(dirac)
    path.write_text(yaml.safe_dump(data))
    return str(path)


def simulate_parallel(tmp: Path, runs: dict[str, tuple], timeout: float = 150) -> dict[str, Run]:
    """Run several ``--once`` simulations at the same time (the database is latency-bound, not busy).

    ``runs`` maps a name to ``(generation, duration, *extra_args)``; the small topology unless they give one.
    """
    procs = {}
    for name, (generation, duration, *extra) in runs.items():
        prefix, state = new_prefix(), tmp / name
        topology = [] if "--topology" in extra else ["--topology", SMALL]
        argv = [*db_args(prefix), "--generation", generation, *topology, "--once", "--duration", duration,
                "--speed", str(SPEED), "--seed", SEED, "--state-dir", str(state), "--quiet", *extra]
        proc = subprocess.Popen([sys.executable, "-m", "bes_simulator", *argv], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs[name] = (proc, prefix, state, generation)
    out = {}
    try:
        for name, (proc, prefix, state, generation) in procs.items():
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            out[name] = Run(prefix, generation, json.loads((state / "events.json").read_text()), state)
    except BaseException:
        for proc, prefix, *_ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            drop(prefix)
        raise
    return out
