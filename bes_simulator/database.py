"""The simulator's DIRAC databases: create them with DIRAC's schema or reuse those of an earlier run.

Names are ``<prefix>JobDB``, ``<prefix>PilotAgentsDB``, ``<prefix>JobLoggingDB`` and (9.1 only)
``<prefix>ResourceStatusDB``. A small ``<prefix>bes_simulate`` database marks them as the simulator's
own, so it never writes into a DIRAC installation's real databases; a MariaDB named lock keeps two
simulators off the same prefix.
"""

from __future__ import annotations

import datetime as dt
import re

import pymysql

from dirac_db.schema import create_databases

from .topology import ConfigError
from .writer import Databases

PREFIX_OK = re.compile(r"^[A-Za-z0-9_]{0,40}$")
NON_FINAL_JOBS = ("Submitting", "Received", "Checking", "Scouting", "Staging", "Waiting", "Matched",
                  "Rescheduled", "Running", "Stalled", "Completing")
NON_FINAL_PILOTS = ("Submitted", "Waiting", "Running", "Scheduled", "Unknown")


class DatabaseError(RuntimeError):
    """The databases cannot be used; the message is one line with the fix."""


def names(prefix: str, generation: str) -> Databases:
    if not PREFIX_OK.match(prefix):
        raise ConfigError(f"--db-prefix {prefix!r}: use letters, digits and '_' only (at most 40)")
    return Databases(jobdb=f"{prefix}JobDB", pilotdb=f"{prefix}PilotAgentsDB", logdb=f"{prefix}JobLoggingDB",
                     rssdb=None if generation == "8.0" else f"{prefix}ResourceStatusDB", generation=generation)


def _exists(cur, db: str) -> bool:
    cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (db,))
    return cur.fetchone()[0] > 0


def _all(dbs: Databases, marker: str) -> list[str]:
    return [n for n in (dbs.jobdb, dbs.pilotdb, dbs.logdb, dbs.rssdb, marker) if n]


def lock(conn, prefix: str) -> None:
    """Hold a named lock for the prefix as long as the connection lives."""
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (f"bes-simulate:{prefix}",))
        if cur.fetchone()[0] != 1:
            raise DatabaseError(f"another bes-simulate is already writing to --db-prefix {prefix!r}; "
                                "stop it first or choose another prefix")


def prepare(conn, prefix: str, generation: str, *, reset: bool = False) -> tuple[Databases, bool]:
    """Create (or with ``reset`` re-create) the databases; returns them and whether they were reused."""
    dbs = names(prefix, generation)
    marker = f"{prefix}bes_simulate"
    with conn.cursor() as cur:
        if reset:
            for db in _all(names(prefix, "9.1"), marker):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        reused = _exists(cur, dbs.jobdb)
        if reused:
            if not _exists(cur, marker):
                raise DatabaseError(f"database {dbs.jobdb} exists but was not created by bes-simulate; "
                                    "refusing to write into it: choose another --db-prefix")
            cur.execute(f"SELECT v FROM `{marker}`.meta WHERE k='generation'")
            row = cur.fetchone()
            if not row or row[0] != generation:
                have = row[0] if row else "unknown"
                raise DatabaseError(f"the databases of --db-prefix {prefix!r} hold DIRAC {have} schemas; use "
                                    f"--generation {have}, --reset, or another --db-prefix")
            return dbs, True
        logical = {"JobDB": dbs.jobdb, "PilotAgentsDB": dbs.pilotdb, "JobLoggingDB": dbs.logdb}
        if dbs.rssdb:
            logical["ResourceStatusDB"] = dbs.rssdb
        create_databases(conn, generation, logical)
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{marker}`")
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{marker}`.meta (k VARCHAR(64) PRIMARY KEY, v TEXT NOT NULL)")
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        cur.executemany(f"REPLACE INTO `{marker}`.meta (k, v) VALUES (%s, %s)",
                        [("generation", generation), ("created", now)])
    conn.commit()
    return dbs, False


def end_leftovers(conn, dbs: Databases, writer) -> tuple[int, int]:
    """Jobs and pilots an earlier run left active: killed / deleted the DIRAC way (an admin's cleanup)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT JobID FROM `{dbs.jobdb}`.Jobs WHERE Status IN ({', '.join(['%s'] * len(NON_FINAL_JOBS))})",
                    NON_FINAL_JOBS)
        jobs = [r[0] for r in cur.fetchall()]
        cur.execute(f"SELECT PilotID FROM `{dbs.pilotdb}`.PilotAgents WHERE Status IN "
                    f"({', '.join(['%s'] * len(NON_FINAL_PILOTS))})", NON_FINAL_PILOTS)
        pilots = [r[0] for r in cur.fetchall()]
    for job_id in jobs:
        writer.kill(job_id)
    for pilot_id in pilots:
        writer.set_pilot_status(pilot_id, "Deleted", "Left over by a previous bes-simulate run")
    return len(jobs), len(pilots)


def connect(host: str, port: int, user: str, password: str) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True,
                               connect_timeout=5, read_timeout=60, write_timeout=60)
    except pymysql.err.MySQLError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise DatabaseError(f"cannot connect to MariaDB at {host}:{port} as {user} ({reason}); start it "
                            "('make setup') or fix --db-host/--db-port/--db-user/--db-password-file") from None
