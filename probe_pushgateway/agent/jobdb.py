"""Read-only JobDB access for the reaper: the probe jobs still pending, and each site's activity.

Same ``database:`` keys (``ssl`` included) and connection code as the exporter. Every statement is
bounded by ``query_timeout`` and ages are computed with the database's own UTC clock (JobDB times are UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from dirac_db.connection import Database, DatabaseError

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
    owner: str = ""
    owner_group: str = ""


@dataclass
class SiteActivity:
    """Other (non-probe) jobs of a site: Running/Completing now, Done/Completed within the window."""

    running: int = 0
    done: int = 0


class JobDB(Database):
    """The exporter's lazily (re)connected connection (timeouts, ``database.ssl``), read-only, errors as
    :class:`JobDBError`."""

    def __init__(self, database: dict, password: str = "") -> None:
        super().__init__(database, password)

    def _connect(self) -> pymysql.connections.Connection:
        conn = super()._connect()
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION READ ONLY")
        return conn

    def query(self, sql: str, args=None) -> list[tuple]:
        """One statement; any error drops the connection and raises :class:`JobDBError`."""
        try:
            return super().query(sql, args)
        except DatabaseError as exc:
            raise JobDBError(f"JobDB: {exc}") from None
        except pymysql.MySQLError as exc:  # a statement of the session set-up
            self.close()
            raise JobDBError(f"JobDB: cannot set up the session: {' '.join(str(exc).split())[:200]}") from None

    @property
    def _jobs(self) -> str:
        return f"`{self.cfg['jobdb']}`.Jobs"

    def probe_jobs(self, job_group: str) -> list[ProbeJobRow]:
        """Non-final jobs of the probe's JobGroup (index), with time since submission and since start, and
        who owns them: anyone can give a job this group and name; the agent decides which are its own."""
        active = sorted(WAITING | RUNNING)
        rows = self.query(
            f"SELECT JobID, JobName, Site, Status,"
            f" TIMESTAMPDIFF(SECOND, SubmissionTime, UTC_TIMESTAMP()),"
            f" TIMESTAMPDIFF(SECOND, COALESCE(StartExecTime, SubmissionTime), UTC_TIMESTAMP()), Owner, OwnerGroup"
            f" FROM {self._jobs} WHERE JobGroup = %s AND Status IN ({', '.join(['%s'] * len(active))})"
            f" ORDER BY JobID",
            [job_group, *active])
        return [ProbeJobRow(job_id=str(r[0]), target=target_from_job(r[1], r[2]), site=r[2] or "",
                            status=r[3], waited=float(r[4] or 0), ran=float(r[5] or 0), owner=r[6] or "",
                            owner_group=r[7] or "") for r in rows]

    def site_activity(self, sites: list[str], job_group: str, done_window: float) -> dict[str, SiteActivity]:
        """Per site: other jobs Running/Completing now and Done/Completed that ended (``EndExecTime``, as DIRAC's
        ``getSiteSummaryWeb`` counts its last day) in the last ``done_window`` s. Rows by the StatusSite index."""
        out = {s: SiteActivity() for s in sites}
        if not sites:
            return out
        rows = self.query(
            f"SELECT Site, SUM(Status IN ('Running', 'Completing')),"
            f" SUM(Status IN ('Done', 'Completed') AND EndExecTime >= UTC_TIMESTAMP() - INTERVAL %s SECOND)"
            f" FROM {self._jobs} WHERE Status IN ('Running', 'Completing', 'Done', 'Completed')"
            f" AND Site IN ({', '.join(['%s'] * len(sites))}) AND JobGroup <> %s GROUP BY Site",
            [int(done_window), *sites, job_group])
        for site, running, done in rows:
            out[site] = SiteActivity(running=int(running or 0), done=int(done or 0))
        return out


