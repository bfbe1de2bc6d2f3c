"""Fixtures of the fidelity tests: DIRAC initialised offline once, and per test a set of DIRAC 9.1
databases (JobDB, JobLoggingDB, PilotAgentsDB, ResourceStatusDB from DIRAC's schemas; TaskQueueDB and
SandboxMetadataDB created empty, DIRAC creates their tables itself)."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from bes_simulator.writer import Databases
from dirac_db.schema import create_databases

DB_HOST = os.environ.get("BES_TEST_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("BES_TEST_DB_PORT", "3306"))


def connect() -> pymysql.connections.Connection:
    return pymysql.connect(host=DB_HOST, port=DB_PORT, user="root", password="", autocommit=True)


@dataclass
class FidelityEnv:
    """One test's DIRAC databases and a folder for the exporter's files."""

    dbs: Databases
    names: dict[str, str]
    conn: pymysql.connections.Connection
    folder: Path

    def exporter_config(self, **jobs) -> dict:
        return {
            "database": {"host": DB_HOST, "port": DB_PORT, "user": "root", "password": "",
                         "jobdb": self.dbs.jobdb, "pilotdb": self.dbs.pilotdb, "rssdb": self.dbs.rssdb,
                         "logdb": self.dbs.logdb,
                         "connect_timeout": 2, "query_timeout": 10},
            "jobs": {"overlap_seconds": 120, "resync_seconds": 1, "page_rows": 100, **jobs},
        }

    def query(self, sql: str, args=()) -> tuple:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def harness(self, probe=None):
        from dirac_harness import DiracHarness

        return DiracHarness(self.names, connect, probe=probe)


def make_env() -> FidelityEnv:
    tag = f"bes_f_{uuid.uuid4().hex[:10]}"
    dbs = Databases(jobdb=f"{tag}_job", pilotdb=f"{tag}_pilot", logdb=f"{tag}_log", rssdb=f"{tag}_rss",
                    generation="9.1")
    conn = connect()
    create_databases(conn, "9.1", {"JobDB": dbs.jobdb, "PilotAgentsDB": dbs.pilotdb, "JobLoggingDB": dbs.logdb,
                                   "ResourceStatusDB": dbs.rssdb})
    names = {"JobDB": dbs.jobdb, "JobLoggingDB": dbs.logdb, "PilotAgentsDB": dbs.pilotdb,
             "TaskQueueDB": f"{tag}_tq", "SandboxMetadataDB": f"{tag}_sb"}
    with conn.cursor() as cur:
        for name in (names["TaskQueueDB"], names["SandboxMetadataDB"]):
            cur.execute(f"CREATE DATABASE `{name}`")
    return FidelityEnv(dbs, names, conn, Path(tempfile.mkdtemp(prefix=f"{tag}-")))


def drop_env(env: FidelityEnv) -> None:
    with env.conn.cursor() as cur:
        for name in {*env.names.values(), env.dbs.rssdb}:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    env.conn.close()


@pytest.fixture(scope="session")
def dirac_ready(mariadb):
    """DIRAC 9.1 (installed by scripts/install-dirac.sh) initialised from a local cfg, once."""
    try:
        import DIRAC  # noqa: F401
        import MySQLdb  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"DIRAC is not installed in this environment ({exc}); run `make dirac` (make test does)")
    from dirac_harness import init_dirac

    init_dirac(DB_HOST, DB_PORT)
    yield
    _forget_dirac_caches()


def _forget_dirac_caches() -> None:
    """DIRAC's DictCache purges itself at interpreter exit (TaskQueueDB: delete every task queue it
    touched), by then in dropped databases, each with ten connection retries and growing sleeps: the
    test process would hang for an hour after its last test. The databases are gone: drop the caches."""
    import gc

    from DIRAC.Core.Utilities.DictCache import DictCache

    for obj in gc.get_objects():
        if isinstance(obj, DictCache):
            obj._DictCache__finalizer.detach()


@pytest.fixture
def env(dirac_ready) -> FidelityEnv:
    e = make_env()
    yield e
    drop_env(e)


@pytest.fixture(scope="module")
def module_env(dirac_ready) -> FidelityEnv:
    e = make_env()
    yield e
    drop_env(e)
