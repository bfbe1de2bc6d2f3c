"""Read-only JobDB access for the reaper: the probe jobs still pending, and each site's activity.

Same ``database:`` keys as the exporter. Every statement is bounded by ``query_timeout`` and ages are
computed with the database's own UTC clock (JobDB times are UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from .backends import RUNNING, WAITING
from .targets import Target, target_from_job


class JobDBError(Exception):
    """JobDB could not be reached or a statement failed (one line, never the password)."""


@dataclass
class ProbeJobRow:
    """A non-final probe job found in JobDB; ages in seconds by the database clock."""

    job_id: str
    target: Target | None
    site: str
    status: str
    waited: float
    ran: float


@dataclass
class SiteActivity:
    """Other (non-probe) jobs of a site: Running/Completing now, Done/Completed within the window."""

    running: int = 0
    done: int = 0


def _reason(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"MySQL error {args[0]}: {' '.join(str(args[1]).split())[:200]}"
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class JobDB:
    """A lazily (re)connected read-only PyMySQL connection to DIRAC's JobDB."""

    def __init__(self, database: dict, password: str = "") -> None:
        self.cfg = database
        self._password = password
        self.conn: pymysql.connections.Connection | None = None

    def _connect(self) -> pymysql.connections.Connection:
        db = self.cfg
        timeout = float(db["query_timeout"])
        try:
            conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=self._password,
                                   connect_timeout=db["connect_timeout"], read_timeout=timeout + 2,
                                   write_timeout=timeout + 2, autocommit=True, charset="utf8mb4")
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                if "mariadb" in cur.fetchone()[0].lower():
                    cur.execute(f"SET SESSION max_statement_time = {timeout:.3f}")
                else:
                    cur.execute(f"SET SESSION max_execution_time = {int(timeout * 1000)}")
                cur.execute("SET SESSION TRANSACTION READ ONLY")
        except pymysql.MySQLError as exc:
            raise JobDBError(f"cannot connect to JobDB as {db['user']}@{db['host']}:{db['port']}: "
                             f"{_reason(exc)}") from None
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass
            self.conn = None

    def query(self, sql: str, args=None) -> list[tuple]:
        """One statement; any error drops the connection and raises :class:`JobDBError`."""
        if self.conn is None:
            self.conn = self._connect()
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            self.close()
            raise JobDBError(f"JobDB query failed: {_reason(exc)}") from None

    @property
    def _jobs(self) -> str:
        return f"`{self.cfg['jobdb']}`.Jobs"

    def probe_jobs(self, job_group: str) -> list[ProbeJobRow]:
        """Non-final probe jobs (JobGroup index), with time since submission and since start."""
        active = sorted(WAITING | RUNNING)
        rows = self.query(
            f"SELECT JobID, JobName, Site, Status,"
            f" TIMESTAMPDIFF(SECOND, SubmissionTime, UTC_TIMESTAMP()),"
            f" TIMESTAMPDIFF(SECOND, COALESCE(StartExecTime, SubmissionTime), UTC_TIMESTAMP())"
            f" FROM {self._jobs} WHERE JobGroup = %s AND Status IN ({', '.join(['%s'] * len(active))})"
            f" ORDER BY JobID",
            [job_group, *active])
        return [ProbeJobRow(job_id=str(r[0]), target=target_from_job(r[1], r[2]), site=r[2] or "",
                            status=r[3], waited=float(r[4] or 0), ran=float(r[5] or 0)) for r in rows]

    def site_activity(self, sites: list[str], job_group: str, done_window: float) -> dict[str, SiteActivity]:
        """Per site: other jobs Running/Completing now and Done/Completed in the last ``done_window`` s."""
        out = {s: SiteActivity() for s in sites}
        if not sites:
            return out
        rows = self.query(
            f"SELECT Site, SUM(Status IN ('Running', 'Completing')),"
            f" SUM(Status IN ('Done', 'Completed') AND LastUpdateTime >= UTC_TIMESTAMP() - INTERVAL %s SECOND)"
            f" FROM {self._jobs} WHERE Status IN ('Running', 'Completing', 'Done', 'Completed')"
            f" AND Site IN ({', '.join(['%s'] * len(sites))}) AND JobGroup <> %s GROUP BY Site",
            [int(done_window), *sites, job_group])
        for site, running, done in rows:
            out[site] = SiteActivity(running=int(running or 0), done=int(done or 0))
        return out


