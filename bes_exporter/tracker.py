"""Incremental reader of JobDB.Jobs: which jobs started and which job lives ended since last time.

Reads only rows whose LastUpdateTime is in a sliding window (index ``LastUpdateTime``), keyset-paged;
the LoggingInfo records of the lives that ended (by primary key); and a share of the active jobs per
collection (``bes_exporter.sweep``, index ``Status``): Running/Completing at least every
``heartbeat.period_seconds``, the other active statuses every ``jobs.resync_seconds``, at least
``heartbeat.rows`` / ``jobs.resync_rows`` rows per collection. Never the history of finished jobs. Every
row read also places its job in ``active`` (the ``dirac_jobs`` cells and heartbeat ages). The rules it
implements, given how DIRAC writes (docs/how-it-reads-dirac.md):

* LastUpdateTime comes from the Python clock and is not in commit order, so each window starts
  ``overlap`` seconds before the previous collection's database time and rows are de-duplicated.
* A job *life* is (JobID, RescheduleCounter). A life is counted once, when it is first seen in a final
  state (Done, Completed, Failed, Killed). A reschedule starts a new life; a heartbeat that flips a
  finished job back to Running does not (within ``finished_retention_seconds``).
* A final row is counted only for a job the tracker saw active before, or a job it has never seen at
  all: one with a JobID above every JobID seen so far (JobIDs come from an AUTO_INCREMENT), or one
  submitted inside the window (a lower JobID committed late). A job that was already final before the
  exporter started is never counted.
* Some writes change Status without moving LastUpdateTime (heartbeat, update=False attributes): the
  sweep of the active jobs catches those within two of its passes. The first collection reads the whole
  active set (the baseline, continued over collections if it is cut).
* DIRAC deletes an active job by killing it first (StatusUtils.kill_delete_jobs): an active life seen
  next as Deleted is counted Killed.
* A life that ended and was rescheduled between two looks (RescheduleCounter jumped) is looked up in
  JobLoggingDB.LoggingInfo by primary key: its first final record before the "Job Rescheduled" one is
  counted. Without access to LoggingInfo such lives are not counted (logged once).
* A life seen final is settled against its LoggingInfo records (by primary key; DIRAC writes them after
  the Jobs row): it is counted with the life's *first* final record (a heartbeat can flip Done back to
  Running before any scrape saw it; StalledJobAgent then fails it), and not at all when that record is
  older than this process (the life ended before it started). While DIRAC is still between the
  statements of one action (Status written, MinorStatus or the log record not yet; a stalled job
  killed on its way to Failed), the life waits for the next collection; a final row that stays the
  same for a whole collection without a log record (kills are not logged) is counted as it stands.
  A job with no LoggingInfo at all, or no access to it, is counted as its row says.
* Whether a life *ran* (``Finished.ran``): a Running or Completing record in its segment of LoggingInfo
  (the records after the previous "Job Rescheduled" one); for a job without LoggingInfo records (none
  readable), ``StartExecTime`` set. A reschedule keeps StartExecTime, so the records decide where they
  exist. Lives that did not run (optimizer failures, kills while waiting) never reached a site.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

from dirac_db.connection import Database

from .active import HEARTBEAT_STATES, ActiveJobs
from .config import Config
from .labels import ACTIVE_STATES, FINAL_STATES, reschedule_reason, site_label
from .sweep import Sweep

# Seconds since the job's last sign of life (a heartbeat; before the first one, its start or last update),
# on the database clock: read with every row, kept for Running/Completing jobs (dirac_running_jobs_heartbeat_*).
# StalledJobAgent._getLatestUpdateTime: the later of HeartBeatTime and LastUpdateTime.
AGE = ("GREATEST(TIMESTAMPDIFF(SECOND, GREATEST(COALESCE(HeartBeatTime, LastUpdateTime, StartExecTime),"
       " COALESCE(LastUpdateTime, HeartBeatTime, StartExecTime)), UTC_TIMESTAMP()), 0)")

CHANGED_SQL = f"""
SELECT JobID, Site, Status, MinorStatus, JobGroup, RescheduleCounter, LastUpdateTime,
       SubmissionTime, StartExecTime, EndExecTime, Owner, OwnerGroup, ApplicationStatus, {AGE}
FROM `{{jobdb}}`.Jobs
WHERE LastUpdateTime >= %(lut)s AND (LastUpdateTime > %(lut)s OR JobID > %(job)s){{vo}}
ORDER BY LastUpdateTime, JobID
LIMIT %(limit)s
"""

MAX_ID_SQL = "SELECT MAX(JobID) FROM `{jobdb}`.Jobs"

# Every transition of the given jobs, by primary key (JobID, SeqNum).
LOGGING_SQL = """
SELECT JobID, Status, MinorStatus, ApplicationStatus, StatusTime FROM `{logdb}`.LoggingInfo
WHERE JobID IN ({ids})
ORDER BY JobID, SeqNum
"""

# The current rows of jobs whose final state is not settled yet, by primary key.
ROWS_SQL = f"""
SELECT JobID, Site, Status, MinorStatus, JobGroup, RescheduleCounter, LastUpdateTime,
       SubmissionTime, StartExecTime, EndExecTime, Owner, OwnerGroup, ApplicationStatus, {AGE}
FROM `{{jobdb}}`.Jobs WHERE JobID IN ({{ids}})
"""

# One page of the sweep over the active jobs of one status, along the Status index (Status, JobID).
SWEEP_SQL = f"""
SELECT JobID, Site, JobGroup, {AGE} FROM `{{jobdb}}`.Jobs FORCE INDEX (Status)
WHERE Status = %s AND JobID > %s{{vo}} ORDER BY JobID LIMIT %s
"""
OTHER_ACTIVE = tuple(s for s in ACTIVE_STATES if s not in HEARTBEAT_STATES)


def vo_filter(vo: str | None) -> str:
    """The condition that keeps one VO's rows (``vo`` is validated by the config: a plain name), or none."""
    return "" if vo is None else f" AND VO = '{vo}'"


RUN_STATES = (*HEARTBEAT_STATES, "Stalled")  # a job in these has started its current life
RESCHEDULED_MINOR = "Job Rescheduled"
RAN_STATES = ("Running", "Completing")  # a LoggingInfo record in one of these: the life ran

log = logging.getLogger("bes_exporter")


@dataclass
class Finished:
    job_id: int
    site: str
    status: str
    minor: str
    probe: bool
    start: dt.datetime | None
    end: dt.datetime | None
    lut: dt.datetime
    ran: bool  # the life ran (at ``site``): see the module docstring
    owner: str  # JobDB Owner (the DIRAC user name), OwnerGroup, ApplicationStatus
    owner_group: str
    app_status: str


@dataclass
class Started:
    site: str
    wait_seconds: float
    probe: bool


@dataclass
class Rescheduled:
    site: str  # where the life was last seen (a reschedule resets Site to the JDL's)
    reason: str  # labels.RESCHEDULE_REASONS
    probe: bool


@dataclass
class Changes:
    """What one collection learned: job lives that ended, jobs that started, lives rescheduled."""

    finished: list[Finished] = field(default_factory=list)
    started: list[Started] = field(default_factory=list)
    rescheduled: list[Rescheduled] = field(default_factory=list)
    rows: int = 0
    caught_up: bool = True


@dataclass
class _Segment:
    """One life's LoggingInfo records: its first final one (Status, MinorStatus, ApplicationStatus,
    StatusTime), whether it ran, its last "Rescheduled" record and the Status of its last record."""

    final: tuple | None = None
    ran: bool = False
    rescheduled: tuple | None = None
    last: str | None = None


def _segments(records: list[tuple]) -> dict[int, _Segment]:
    """A job's records split into its lives: life k is what follows the k-th "Job Rescheduled" record."""
    out: dict[int, _Segment] = {}
    k = 0
    for record in records:
        status, minor = record[0], record[1]
        if minor == RESCHEDULED_MINOR:
            k += 1
            continue
        segment = out.setdefault(k, _Segment())
        if status in FINAL_STATES and segment.final is None:
            segment.final = record
        if status in RAN_STATES:
            segment.ran = True
        if status == "Rescheduled":
            segment.rescheduled = record
        if status != "idem":
            segment.last = status
    return out


def _ran(records: list[tuple] | None, rc: int, start: dt.datetime | None) -> bool:
    """Life ``rc`` ran: a Running/Completing record in its segment; without records, StartExecTime set."""
    if not records:
        return start is not None
    segment = _segments(records).get(rc)
    return segment is not None and segment.ran


class _Life:
    """A job's current life while the tracker works on it; kept as an object only while the job is not
    active (an active job's is packed in ``ActiveJobs``)."""

    __slots__ = ("seen", "rc", "closed", "started", "stalled", "pending", "site")

    def __init__(self, seen: dt.datetime, rc: int | None, closed: bool = False, started: bool = False):
        self.seen = seen
        self.rc = rc
        self.closed = closed
        self.started = started
        self.stalled = False  # last seen Stalled: a kill is StalledJobAgent's step towards Failed
        self.pending: tuple | None = None  # (collection, Status, MinorStatus) of an unsettled final row
        self.site: str | None = None  # as last seen: a reschedule resets Site (to the JDL's, often ANY)


class JobTracker:
    """State that survives between collections; ``update`` is called with the collector lock held."""

    def __init__(self, config: Config):
        jobs, db = config.jobs, config.database
        jobdb = db["jobdb"]
        self.jobdb = jobdb
        self.probe_group = config.probes["job_group"]
        self.overlap = dt.timedelta(seconds=jobs["overlap_seconds"])
        self.resync_every = dt.timedelta(seconds=jobs["resync_seconds"])
        self.retention = dt.timedelta(seconds=max(jobs["finished_retention_seconds"], 2 * jobs["overlap_seconds"]))
        self.page_rows = jobs["page_rows"]
        self.max_rows = max(jobs["max_rows_per_scrape"], self.page_rows)
        self.lives: dict[int, _Life] = {}  # jobs not active now (ended, gone) the tracker still needs
        self.active = ActiveJobs(self.probe_group, tuple(config.heartbeat["buckets"]))
        vo = vo_filter(config.vo)
        sweep_sql = SWEEP_SQL.format(jobdb=jobdb, vo=vo)
        hb = config.heartbeat
        self.sweeps = (  # Running/Completing (the heartbeat ages), then the other active statuses
            Sweep(sweep_sql, HEARTBEAT_STATES, hb["rows"], hb["period_seconds"], self.max_rows, self.page_rows),
            Sweep(sweep_sql, OTHER_ACTIVE, jobs["resync_rows"], jobs["resync_seconds"], self.max_rows,
                  self.page_rows))
        self.prev_start: dt.datetime | None = None  # DB time at the start of the last good collection
        self.cursor: tuple[dt.datetime, int] | None = None  # resume point inside a backlog
        self.born_after: dt.datetime | None = None
        self.max_id = 0  # highest JobID seen by the end of the previous collection
        self._new_above = 0  # max_id as it was when this collection started
        self._logging_sql = LOGGING_SQL.replace("{logdb}", db["logdb"])
        self._unseen: list[tuple[tuple, range, str]] = []  # (row, lives ended between two looks, their site)
        self._logging_error: str | None = None
        self._final: dict[int, tuple] = {}  # rows seen final in this collection, to settle
        self._killed: dict[int, tuple] = {}  # rows of active lives seen Deleted (killed first), to settle
        self._pending: set[int] = set()  # JobIDs of lives whose final row is not settled yet
        self.collection = 0
        self._forgot: dt.datetime | None = None  # the resync sweep's pass after which lives were last forgotten
        self.started_at: dt.datetime | None = None
        self._rows_sql = ROWS_SQL.replace("{jobdb}", jobdb)
        self._sql = CHANGED_SQL.format(jobdb=jobdb, vo=vo)
        self._max_id_sql = MAX_ID_SQL.format(jobdb=jobdb)

    @property
    def ready(self) -> bool:
        """The whole active set was read once (the first collection's baseline is complete)."""
        return all(sweep.last_pass is not None for sweep in self.sweeps)

    def update(self, db: Database, now: dt.datetime) -> Changes:
        changes = Changes()
        self.collection += 1
        self._final = {}
        first = self.prev_start is None
        if first:  # LastUpdateTime has 1 s resolution: a job of this very second counts as older
            self.started_at = now
            self.born_after = now + dt.timedelta(seconds=1)
            self.max_id = int(db.query(self._max_id_sql)[0][0] or 0)
            self._sweep(db, now, changes, baseline=True)
            low = (now - self.overlap, 0)
        else:
            fresh = self.prev_start - self.overlap
            if self.cursor is not None and self.cursor[0] < fresh:
                low = self.cursor
            else:
                low = (fresh, 0)
                self.born_after = fresh
        key = low
        budget = self.max_rows
        self._new_above = self.max_id
        try:
            while True:
                rows = db.query(self._sql, {"lut": key[0], "job": key[1], "limit": self.page_rows})
                for row in rows:
                    self._row(row, now, changes)
                changes.rows += len(rows)
                if rows:
                    key = (rows[-1][6], rows[-1][0])
                budget -= len(rows)
                if len(rows) < self.page_rows:
                    self.cursor = None
                    break
                if budget <= 0:
                    self.cursor = key
                    changes.caught_up = False
                    break
        except Exception:
            self.cursor = key if key != low else self.cursor
            raise
        if not first:
            self._sweep(db, now, changes)
        self._settle(db, now, changes)
        if self._unseen:
            self._count_unseen(db, changes)
        self.prev_start = now
        return changes

    def _row(self, row: tuple, now: dt.datetime, changes: Changes) -> None:
        """Follow the job of a Jobs row (CHANGED_SQL / ROWS_SQL columns); keep its life in ``active`` while
        the row is active, in ``lives`` otherwise."""
        job_id, site, status, group, age = row[0], row[1], row[2], row[4], row[13]
        life = self._follow(row, now, changes)
        if status in ACTIVE_STATES:
            self.lives.pop(job_id, None)
            self.active.put(job_id, status, site, group, age, life.rc, life.started, life.closed)
        else:
            self.active.pop(job_id)
            self.lives[job_id] = life

    def _life(self, job_id: int, now: dt.datetime) -> _Life | None:
        """The job's life as the tracker knows it (unpacked for an active job), or None."""
        life = self.lives.get(job_id)
        if life is None and job_id in self.active:
            status, site, rc, started, closed = self.active.get(job_id)
            life = _Life(now, rc, closed, started)
            life.stalled, life.site = status == "Stalled", site
        return life

    def _follow(self, row: tuple, now: dt.datetime, changes: Changes) -> _Life:
        job_id, site, status, minor, group, rc, lut, submitted, start, end = row[:10]
        life = self._life(job_id, now)
        self.max_id = max(self.max_id, job_id)
        probe = group == self.probe_group
        new = job_id > self._new_above or (submitted is not None and submitted >= self.born_after)
        if rc and (life is not None or new):  # earlier lives that ended unseen (rescheduled in between)
            if life is None:
                first_unseen = 0
            elif life.rc is None:  # known only from a resync: which lives it had is unknown
                first_unseen = rc
            else:
                first_unseen = life.rc + 1 if life.closed else life.rc
            if first_unseen < rc:
                self._unseen.append((row, range(first_unseen, rc), (life and life.site) or site))
        if status in FINAL_STATES:
            if life is not None and life.rc == rc and life.closed:
                life.seen = now
                return life
            known = life is not None or new
            if life is None:
                life = _Life(now, rc)
            self._started(life, site, submitted, start, probe, changes, known)
            life.seen, life.rc = now, rc
            if known:
                self._final[job_id] = row
            else:
                life.closed = True
            return life
        if status not in ACTIVE_STATES:  # Deleted: gone for good; if it was active, DIRAC killed it first
            was_active = (life is not None and not life.closed) or (life is None and new)
            if was_active and (life is None or life.rc in (None, rc)):
                self._killed[job_id] = row
            self._final.pop(job_id, None)
            if life is None:
                return _Life(now, rc, closed=True)
            life.seen, life.rc, life.closed, life.pending = now, rc, True, None
            return life
        self._final.pop(job_id, None)
        known = life is not None or new
        if life is None:
            life = _Life(now, rc)
        elif life.rc != rc:  # rescheduled: a new life
            life.rc, life.closed = rc, False
        life.seen, life.pending, life.stalled, life.site = now, None, status == "Stalled", site_label(site)
        self._started(life, site, submitted, start, probe, changes, known)
        return life

    def _settle(self, db: Database, now: dt.datetime, changes: Changes) -> None:
        """Count the lives seen final in this collection (and those still pending) as LoggingInfo says."""
        waiting = [j for j in self._pending if j not in self._final and j in self.lives]
        self._reread(db, waiting, now, changes)  # pending lives whose row did not move
        rows, self._final = self._final, {}
        killed, self._killed = self._killed, {}
        ids = sorted({*rows, *killed})
        records = self._logging(db, ids) if ids else {}
        for job_id, row in rows.items():
            self._settle_one(row, self.lives[job_id], None if records is None else records.get(job_id, []),
                             changes)
        for job_id, row in killed.items():
            ran = _ran(None if records is None else records.get(job_id), row[5], row[8])
            changes.finished.append(self._ended(row, "Killed", "Marked for termination", row[12], ran))
        # a life turns pending only in _settle_one: the candidates of this round hold every pending one
        self._pending = {j for j in (*rows, *waiting) if j in self.lives and self.lives[j].pending is not None}

    def _settle_one(self, row: tuple, life: _Life, records: list[tuple] | None, changes: Changes) -> None:
        status, minor, rc, start, app = row[2], row[3], row[5], row[8], row[12]
        ran = start is not None
        if records:
            segment = _segments(records).get(rc, _Segment())
            ran = segment.ran
            if segment.final is not None:
                life.closed, life.pending = True, None
                rec_status, rec_minor, rec_app, when = segment.final
                if self.started_at is not None and when is not None and when < self.started_at:
                    return  # this life ended before the exporter started (and was flipped back since)
                if not rec_minor or rec_minor == "idem":
                    rec_minor = minor if rec_status == status else "Unknown"
                if not rec_app or rec_app == "idem":
                    rec_app = app if rec_status == status else "Unknown"
                changes.finished.append(self._ended(row, rec_status, rec_minor, rec_app, ran))
                return
            unsettled = status != "Killed" or life.stalled
            settled_since = life.pending is not None and life.pending[1:] == (status, minor) \
                and life.pending[0] < self.collection
            if unsettled and not settled_since:
                if life.pending is None or life.pending[1:] != (status, minor):
                    life.pending = (self.collection, status, minor)
                return
        life.closed, life.pending = True, None
        changes.finished.append(self._ended(row, status, minor, app, ran))

    def _ended(self, row: tuple, status: str, minor: str, app: str | None, ran: bool,
               site: str | None = None, times: bool = True) -> Finished:
        """The Finished event of a life of the job in ``row`` (``site``: where it ran, if not the row's;
        ``times``: the row's Start/EndExecTime are that life's)."""
        job_id, row_site, _status, _minor, group, _rc, lut, _submitted, start, end, owner, owner_group = row[:12]
        return Finished(job_id, row_site if site is None else site, status, minor, group == self.probe_group,
                        start if times else None, end if times else None, lut, ran, owner or "", owner_group or "",
                        app or "")

    def _logging(self, db: Database, ids: list[int]) -> dict[int, list[tuple]] | None:
        """LoggingInfo records (Status, MinorStatus, ApplicationStatus, StatusTime) of the given jobs, in
        order; None if unreadable."""
        records: dict[int, list[tuple]] = {}
        try:
            for i in range(0, len(ids), 1000):
                chunk = ids[i:i + 1000]
                sql = self._logging_sql.replace("{ids}", ", ".join(["%s"] * len(chunk)))
                for job_id, *record in db.query(sql, chunk):
                    records.setdefault(job_id, []).append(tuple(record))
        except Exception as exc:  # noqa: BLE001 - without LoggingInfo, rows are taken as they stand
            if str(exc) != self._logging_error:
                log.warning("cannot read JobLoggingDB.LoggingInfo (%s): job lives are counted as their rows"
                            " stand, and those that ended and were rescheduled between two scrapes are not"
                            " counted; grant SELECT on it", exc)
            self._logging_error = str(exc)
            return None
        self._logging_error = None
        return records

    def _count_unseen(self, db: Database, changes: Changes) -> None:
        """Count lives that ended between two looks from their LoggingInfo records (by primary key): each
        ended final (then rescheduled by hand) or was rescheduled by DIRAC before it ended."""
        pending, self._unseen = self._unseen, []
        records = self._logging(db, sorted({row[0] for row, _, _ in pending}))
        if records is None:
            return
        for row, lives, site in pending:
            segments = _segments(records.get(row[0], []))
            for k in lives:  # each ended in a reschedule (RescheduleCounter counts them)
                segment = segments.get(k)
                if segment is None or segment.final is None:  # rescheduled before it ended: DIRAC's retry
                    reason = reschedule_reason(segment and segment.rescheduled, segment and segment.last)
                    changes.rescheduled.append(Rescheduled(site, reason, row[4] == self.probe_group))
                    continue
                status, minor, app, _when = segment.final
                changes.finished.append(self._ended(row, status, minor, "Unknown" if app == "idem" else app,
                                                    segment.ran, site=site, times=False))

    def _started(self, life: _Life, site: str, submitted, start, probe: bool, changes: Changes,
                 known: bool) -> None:
        """Count the start of a life followed unstarted (``known``: however far the worker node's clock, which
        StartExecTime comes from, lags), or of a job first seen now that started since the last look."""
        if life.started or start is None or submitted is None:
            return
        life.started = True
        if known or (self.born_after is not None and start >= self.born_after):
            changes.started.append(Started(site, max(0.0, (start - submitted).total_seconds()), probe))

    def _reread(self, db: Database, ids: list[int], now: dt.datetime, changes: Changes) -> None:
        """Read these jobs' rows by primary key and follow them; a job whose row is gone leaves ``active``."""
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            rows = db.query(self._rows_sql.replace("{ids}", ", ".join(["%s"] * len(chunk))), chunk)
            for row in rows:
                self._row(row, now, changes)
            for job_id in set(chunk) - {row[0] for row in rows}:  # removed: no longer active, forgotten later
                gone = self.active.pop(job_id)
                if gone is not None:
                    self.lives[job_id] = _Life(now, gone[2], gone[4], gone[3])

    def _sweep(self, db: Database, now: dt.datetime, changes: Changes, baseline: bool = False) -> None:
        """This collection's share of each sweep (all of it for the baseline): place every job read, re-read by
        primary key those no longer in the status they were held in. Once per pass of the resync sweep, forget
        the lives no longer needed."""
        if self.sweeps[-1].last_pass != self._forgot:
            self._forgot = self.sweeps[-1].last_pass
            self._forget(now)
        self.active.merge()
        for sweep in self.sweeps:
            if baseline and sweep.last_pass is not None:  # this one's share of a baseline cut short is read
                continue
            budget = math.inf if baseline else sweep.budget(now, self.active.followed(sweep.states))
            for page in sweep.pages(db, now, self.active.held, budget):
                began = []  # held unstarted, now read running: their row says when they started
                for job_id, site, group, age in page.rows:
                    held = self.active.status(job_id)
                    if self.active.move(job_id, page.status, site, group, age):
                        if page.status in RUN_STATES and held not in RUN_STATES and not self.active.get(job_id)[3]:
                            began.append(job_id)
                        continue
                    life = self.lives.pop(job_id, None)  # not known, or known ended: active again
                    rc, started, closed = (None, baseline and page.status in RUN_STATES, False) if life is None \
                        else (life.rc, life.started, life.closed)
                    self.active.put(job_id, page.status, site, group, age, rc, started, closed)
                    if not started and page.status in RUN_STATES:
                        began.append(job_id)
                self._reread(db, [*began, *(j for j in page.missing if self.active.status(j) == page.status)], now,
                             changes)

    def _forget(self, now: dt.datetime) -> None:
        """Forget the lives no longer needed: not active, and closed for ``finished_retention_seconds`` (a
        heartbeat can still flip them back), or gone or unsettled for two resync periods."""
        stale_active = now - 2 * self.resync_every - self.overlap
        stale_closed = now - self.retention
        stale = [j for j, life in self.lives.items() if life.seen < (stale_closed if life.closed else stale_active)]
        for job_id in stale:
            del self.lives[job_id]
