"""Helpers for tests on a real MariaDB with DIRAC's own schemas: unique databases per test."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pymysql

from bes_simulator.writer import Databases, DiracWriter
from dirac_db.schema import create_databases

DB_HOST = os.environ.get("BES_TEST_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("BES_TEST_DB_PORT", "3306"))


def root_conn(db: str | None = None, **kw) -> pymysql.connections.Connection:
    return pymysql.connect(host=DB_HOST, port=DB_PORT, user="root", password="", database=db,
                           autocommit=True, **kw)



@dataclass
class DiracInstance:
    """One test's DIRAC databases, a writer that writes like DIRAC, and the exporter config for them."""

    dbs: Databases
    conn: pymysql.connections.Connection
    writer: DiracWriter
    host: str = DB_HOST
    port: int = DB_PORT

    @property
    def generation(self) -> str:
        return self.dbs.generation

    def config(self, **extra) -> dict:
        cfg = {
            "database": {"host": self.host, "port": self.port, "user": "root", "password": "",
                         "jobdb": self.dbs.jobdb, "pilotdb": self.dbs.pilotdb,
                         "rssdb": self.dbs.rssdb or "ResourceStatusDB", "logdb": self.dbs.logdb,
                         "connect_timeout": 2, "query_timeout": 5},
        }
        for key, value in extra.items():
            cfg.setdefault(key, {})
            if isinstance(value, dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        return cfg

    def query(self, sql: str, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()


def make_instance(generation: str, conn: pymysql.connections.Connection | None = None,
                  host: str = DB_HOST, port: int = DB_PORT) -> DiracInstance:
    """Unique databases with DIRAC's schema of ``generation`` on the shared (or the given) server."""
    tag = f"bes_t_{uuid.uuid4().hex[:10]}"
    dbs = Databases(jobdb=f"{tag}_job", pilotdb=f"{tag}_pilot", logdb=f"{tag}_log",
                    rssdb=None if generation == "8.0" else f"{tag}_rss", generation=generation)
    conn = conn or root_conn()
    names = {"JobDB": dbs.jobdb, "PilotAgentsDB": dbs.pilotdb, "JobLoggingDB": dbs.logdb}
    if dbs.rssdb:
        names["ResourceStatusDB"] = dbs.rssdb
    create_databases(conn, generation, names)
    return DiracInstance(dbs=dbs, conn=conn, writer=DiracWriter(conn, dbs), host=host, port=port)


def drop_instance(inst: DiracInstance) -> None:
    with inst.conn.cursor() as cur:
        for name in (inst.dbs.jobdb, inst.dbs.pilotdb, inst.dbs.logdb, inst.dbs.rssdb):
            if name:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    inst.conn.close()
