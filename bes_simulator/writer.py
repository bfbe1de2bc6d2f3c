"""Write DIRAC's JobDB / PilotAgentsDB / JobLoggingDB rows the way DIRAC's own services do.

Each method mirrors one DIRAC action and touches exactly the columns DIRAC touches, including its
surprises (see "How DIRAC 9.1 itself writes JobDB" in the project's REFERENCE): submission takes
LastUpdateTime from the Python clock, the heartbeat forces Status='Running' without moving
LastUpdateTime, ``update=False`` attribute writes leave LastUpdateTime alone, reschedules bump
RescheduleCounter, kill/delete write no LoggingInfo. tests/fidelity/test_writer_comparison.py checks the
column effects against DIRAC 9.1's own code. Used by the simulator, the tests and the benchmark.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

import pymysql

FINAL = ("Done", "Completed", "Failed", "Killed")
# DIRAC's JobsStateMachine as kill_delete_jobs filters with it: the statuses that cannot move to Killed,
# and those that may move to Deleted.
UNKILLABLE = ("Done", "Completed", "Failed")
DELETABLE = ("Submitting", "Received", "Checking", "Waiting", "Rescheduled", "Done", "Failed", "Killed", "Deleted")
_JDL_SITE = re.compile(r'\bSite\s*=\s*(\{[^}]*\}|"[^"]*")')
# MariaDB errors that roll the whole transaction back (1206 lock table full, e.g. while the buffer pool
# shrinks; 1213 deadlock) or time a lock wait out (1205): the transaction is rebuilt and the statement retried.
RETRYABLE = (1205, 1206, 1213)
RETRIES = 5
MAX_RESCHEDULING = 3  # JobDB's MaxRescheduling default (WorkloadManagementSystem/DB/JobDB.py)
MAX_RESCHEDULING_REACHED = "Maximum of reschedulings reached"  # JobDB.rescheduleJob beyond it


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def jdl_site(jdl: str) -> str:
    """The Site attribute JobDB derives from a JDL: 'ANY' without one, 'Multiple' for a list of several."""
    m = _JDL_SITE.search(jdl)
    sites = re.findall(r'"([^"]*)"', m.group(1)) if m else []
    return sites[0] if len(sites) == 1 else "Multiple" if sites else "ANY"


@dataclass
class Databases:
    """Database names of one DIRAC instance (ResourceStatusDB only exists for 9.1)."""

    jobdb: str
    pilotdb: str
    logdb: str | None = None
    rssdb: str | None = None
    generation: str = "9.1"


class DiracWriter:
    """DIRAC's write patterns over one PyMySQL connection (autocommit)."""

    def __init__(self, conn, dbs: Databases, clock=utcnow):
        self.conn = conn
        self.dbs = dbs
        self.clock = clock
        self.old = dbs.generation == "8.0"

    # ---- statements, and the journal that lets a transaction survive a transient error --------------

    max_rescheduling = MAX_RESCHEDULING  # JobDB's CS option MaxRescheduling
    journal: list[tuple[str, object, bool]] | None = None  # the open transaction's writes (begin() .. commit())
    recovered = 0  # transactions rebuilt after a transient error

    def begin(self) -> None:
        """Open a transaction whose writes are journaled, so a transient error does not lose them."""
        self.conn.begin()
        self.journal = []

    def commit(self) -> None:
        """Commit the journaled transaction (rebuilt and retried on a transient error)."""
        self._retrying(self.conn.commit)
        self.journal = None

    def _retrying(self, action):
        """``action()``; on a transient error inside a journaled transaction, rebuild it and try again."""
        attempt = 0
        while True:
            try:
                return action()
            except pymysql.err.OperationalError as exc:
                attempt += 1
                if self.journal is None or exc.args[0] not in RETRYABLE or attempt >= RETRIES:
                    raise
            while True:
                try:
                    self._rebuild(attempt)
                    break
                except pymysql.err.OperationalError as exc:
                    attempt += 1
                    if exc.args[0] not in RETRYABLE or attempt >= RETRIES:
                        raise

    def _rebuild(self, attempt: int) -> None:
        """Roll back, wait, and replay the journal: the transaction is as it was before the failed statement."""
        try:
            self.conn.rollback()
        except pymysql.err.MySQLError:
            pass
        time.sleep(min(attempt, 3))
        self.conn.begin()
        with self.conn.cursor() as cur:
            for sql, args, many in self.journal or []:
                (cur.executemany if many else cur.execute)(sql, args)
        self.recovered += 1

    def _run(self, fn):
        def attempt():
            with self.conn.cursor() as cur:
                return fn(cur)
        return self._retrying(attempt)

    def _x(self, sql: str, args=(), id_column: str | None = None) -> int:
        """Execute a write; ``id_column`` names the AUTO_INCREMENT key of an INSERT (replayed with the same id)."""
        def run(cur):
            cur.execute(sql, args)
            return cur.lastrowid
        rowid = self._run(run)
        if self.journal is not None:
            if id_column:
                head, values = sql.split(" VALUES (", 1)
                table, cols = head.split(" (", 1)
                self.journal.append((f"{table} ({id_column}, {cols} VALUES (%s, {values}", [rowid, *args], False))
            else:
                self.journal.append((sql, args, False))
        return rowid

    def _many(self, sql: str, rows: list) -> None:
        self._run(lambda cur: cur.executemany(sql, rows))
        if self.journal is not None:
            self.journal.append((sql, rows, True))

    def _one(self, sql: str, args=()):
        def run(cur):
            cur.execute(sql, args)
            return cur.fetchone()
        return self._run(run)

    def _log(self, job_id: int, status: str, minor: str, app: str, source: str, when: dt.datetime) -> None:
        if not self.dbs.logdb:
            return
        # JobLoggingDB stores StatusTimeOrder as seconds since DIRAC's MAGIC_EPOC_NUMBER (1270000000).
        order = when.replace(tzinfo=dt.timezone.utc).timestamp() - 1270000000
        seq = self._one(
            f"SELECT COALESCE(MAX(SeqNum), 0) + 1 FROM `{self.dbs.logdb}`.LoggingInfo WHERE JobID=%s", (job_id,)
        )[0]
        self._x(
            f"INSERT INTO `{self.dbs.logdb}`.LoggingInfo (JobID, SeqNum, Status, MinorStatus, ApplicationStatus,"
            " StatusTime, StatusTimeOrder, StatusSource) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (job_id, seq, status, minor, app, when, order, source),
        )

    # ---- jobs -------------------------------------------------------------------------------------

    def submit(self, *, site: str = "ANY", job_group: str = "00000000", owner: str = "bes_user",
               owner_group: str = "bes_user", job_name: str = "bes_job", when: dt.datetime | None = None) -> int:
        """JobManager submission: JDL row, Jobs row in Received with LUT = SubmissionTime (Python clock)."""
        when = when or self.clock()
        jdl = f'[ JobName = "{job_name}"; JobGroup = "{job_group}"; Site = "{site}"; ]'
        job_id = self._x(
            f"INSERT INTO `{self.dbs.jobdb}`.JobJDLs (JDL, JobRequirements, OriginalJDL) VALUES (%s, '', %s)",
            (jdl, jdl), id_column="JobID",
        )
        cols = ["JobID", "JobGroup", "Site", "JobName", "Owner", "OwnerGroup", "SubmissionTime",
                "LastUpdateTime", "Status", "MinorStatus", "ApplicationStatus"]
        vals = [job_id, job_group, site, job_name, owner, owner_group, when, when, "Received",
                "Job accepted", "Unknown"]
        if not self.old:
            cols.append("VO")
            vals.append("bes")
        self._x(
            f"INSERT INTO `{self.dbs.jobdb}`.Jobs ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
            vals,
        )
        self._log(job_id, "Received", "Job accepted", "Unknown", "JobManager", when)
        return job_id

    def set_status(self, job_id: int, status: str | None = None, minor: str | None = None,
                   app: str | None = None, *, source: str = "JobWrapper", when: dt.datetime | None = None) -> None:
        """JobStatusUtility.setJobStatusBulk: Status rewritten (a Stalled job's as Running), Minor/App if given,
        LUT always; first Running sets StartExecTime (and HeartBeatTime if unset), first final state
        EndExecTime; a report from the job (source 'Job...') sets HeartBeatTime; one LoggingInfo record
        ('idem' for what the report leaves out)."""
        when = when or self.clock()
        cur_status = self._one(f"SELECT Status FROM `{self.dbs.jobdb}`.Jobs WHERE JobID=%s", (job_id,))[0]
        new_status = status or ("Running" if cur_status == "Stalled" else cur_status)
        sets = ["Status=%s", "LastUpdateTime=%s"]
        args: list = [new_status, when]
        for column, value in (("MinorStatus", minor), ("ApplicationStatus", app)):
            if value:
                sets.append(f"{column}=%s")
                args.append(value)
        from_job = source.startswith("Job")
        if new_status == "Running":
            sets.append("StartExecTime=COALESCE(StartExecTime, %s)")
            args.append(when)
            if not from_job:
                sets.append("HeartBeatTime=COALESCE(HeartBeatTime, %s)")
                args.append(when)
        if new_status in FINAL:
            sets.append("EndExecTime=COALESCE(EndExecTime, %s)")
            args.append(when)
        if from_job:
            sets.append("HeartBeatTime=%s")
            args.append(when)
        self._x(f"UPDATE `{self.dbs.jobdb}`.Jobs SET {', '.join(sets)} WHERE JobID=%s", [*args, job_id])
        self._log(job_id, status or "idem", minor or "idem", app or "idem", source, when)

    def set_attributes(self, job_id: int, *, update: bool = True, when: dt.datetime | None = None,
                       **attrs) -> None:
        """JobDB.setJobAttributes: with update=True LUT moves too, with update=False it does not."""
        sets = [f"{k}=%s" for k in attrs]
        args = list(attrs.values())
        if update:
            sets.append("LastUpdateTime=%s")
            args.append(when or self.clock())
        self._x(f"UPDATE `{self.dbs.jobdb}`.Jobs SET {', '.join(sets)} WHERE JobID=%s", [*args, job_id])

    def optimize(self, job_id: int, *, when: dt.datetime | None = None) -> None:
        """Optimizer chain: Checking, then Waiting (each a Status+LUT statement and a log record)."""
        for status, minor in (("Checking", "JobSanity"), ("Waiting", "Pilot Agent Submission")):
            when_i = when or self.clock()
            self.set_attributes(job_id, Status=status, when=when_i)
            self.set_attributes(job_id, MinorStatus=minor, when=when_i)
            self._log(job_id, status, minor, "Unknown", "Optimizers", when_i)

    def fail_optimizer(self, job_id: int, optimizer: str, message: str, *, when: dt.datetime | None = None) -> None:
        """OptimizerExecutor.processTask when ``optimizer`` (JobPath, JobSanity, InputData, JobScheduling)
        returns S_ERROR(``message``): setStatus("Failed", "<optimizer> optimizer", message), committed by the
        OptimizationMind as JobDB.setJobAttributes (Status with LUT, then MinorStatus and ApplicationStatus
        with LUT; EndExecTime untouched) and one LoggingInfo record from ``optimizer``."""
        when = when or self.clock()
        minor = f"{optimizer} optimizer"
        self.set_attributes(job_id, Status="Failed", when=when)
        self.set_attributes(job_id, MinorStatus=minor, ApplicationStatus=message, when=when)
        self._log(job_id, "Failed", minor, message, optimizer, when)

    def match(self, job_id: int, site: str, *, pilot_id: int | None = None, ce: str | None = None,
              benchmark: float = 10.0, when: dt.datetime | None = None) -> None:
        """Matcher._reportStatus: Status Matched with LUT, then MinorStatus 'Assigned', ApplicationStatus
        'Unknown' and Site with LUT; with the requesting pilot also its bookkeeping (``pilot_matched``)."""
        when = when or self.clock()
        self.set_attributes(job_id, Status="Matched", when=when)
        self.set_attributes(job_id, MinorStatus="Assigned", ApplicationStatus="Unknown", Site=site, when=when)
        self._log(job_id, "Matched", "Assigned", "idem", "Matcher", when)
        if pilot_id is not None:
            self.pilot_matched(pilot_id, job_id, site=site, ce=ce, benchmark=benchmark, when=when)

    def set_host(self, job_id: int, host: str) -> None:
        """Watchdog's HostName job parameter (MySQL JobParameters exists up to DIRAC 9.0 only)."""
        if self.old:
            self._x(
                f"REPLACE INTO `{self.dbs.jobdb}`.JobParameters (JobID, Name, Value) VALUES (%s,'HostName',%s)",
                (job_id, host),
            )

    def heartbeat(self, job_id: int, *, when: dt.datetime | None = None, load: float = 1.0) -> None:
        """setHeartBeatData: HeartBeatTime and HeartBeatLoggingInfo, Status forced to Running, no LUT."""
        when = when or self.clock()
        self._x(f"UPDATE `{self.dbs.jobdb}`.Jobs SET HeartBeatTime=%s, Status='Running' WHERE JobID=%s",
                (when, job_id))
        self._x(
            f"INSERT IGNORE INTO `{self.dbs.jobdb}`.HeartBeatLoggingInfo (JobID, Name, Value, HeartBeatTime)"
            " VALUES (%s,'LoadAverage',%s,%s)",
            (job_id, str(load), when),
        )

    def stall(self, job_id: int, *, when: dt.datetime | None = None) -> None:
        """StalledJobAgent._markStalledJobs: Status Stalled with LUT, MinorStatus kept (and logged)."""
        when = when or self.clock()
        minor = self._one(f"SELECT MinorStatus FROM `{self.dbs.jobdb}`.Jobs WHERE JobID=%s", (job_id,))[0]
        self.set_attributes(job_id, Status="Stalled", when=when)
        self._log(job_id, "Stalled", minor, "idem", "StalledJobAgent", when)

    def fail_stalled(self, job_id: int, *, minor: str = "Job stalled: pilot not running",
                     when: dt.datetime | None = None) -> None:
        """StalledJobAgent._failStalledJobs: killed (as ``kill``), then Failed (Status, then MinorStatus,
        with LUT) and logged."""
        when = when or self.clock()
        self._kill_if_allowed(job_id, self._status(job_id), when)
        self.set_attributes(job_id, Status="Failed", when=when)
        self.set_attributes(job_id, MinorStatus=minor, when=when)
        self._log(job_id, "Failed", minor, "idem", "StalledJobAgent", when)

    def reschedule(self, job_id: int, *, source: str = "JobManager", when: dt.datetime | None = None) -> bool:
        """JobDB.rescheduleJob via Utilities/Utils.py rescheduleJobs (JobManager, or StalledJobAgent's kick).

        Within MaxRescheduling (JobDB, default 3): job parameters to the attic (8.0: JobParameters; 9.1 keeps
        them in OpenSearch), optimizer parameters dropped; Status Received without LUT, then counter+1, 'Job
        Rescheduled', ApplicationStatus 'Unknown', LUT = RescheduleTime, Site from the JDL ('ANY' for most jobs);
        Start/End/HeartBeat times kept; one LoggingInfo record from ``source``. Beyond it: JobDB.setJobStatus
        Failed / 'Maximum of reschedulings reached' (Status with LUT, then MinorStatus with LUT; no LoggingInfo,
        Site and EndExecTime untouched). Returns whether the job was rescheduled."""
        when = when or self.clock()
        db = self.dbs.jobdb
        counter = self._one(f"SELECT RescheduleCounter FROM `{db}`.Jobs WHERE JobID=%s", (job_id,))[0]
        if int(counter) + 1 > self.max_rescheduling:
            self.set_attributes(job_id, Status="Failed", when=when)
            self.set_attributes(job_id, MinorStatus=MAX_RESCHEDULING_REACHED, when=when)
            return False
        if self.old:
            self._x(f"INSERT IGNORE INTO `{db}`.AtticJobParameters (JobID, Name, Value, RescheduleCycle)"
                    f" SELECT p.JobID, p.Name, p.Value, j.RescheduleCounter FROM `{db}`.JobParameters p"
                    f" JOIN `{db}`.Jobs j USING (JobID) WHERE p.JobID=%s", (job_id,))
            self._x(f"DELETE FROM `{db}`.JobParameters WHERE JobID=%s", (job_id,))
        self._x(f"DELETE FROM `{db}`.OptimizerParameters WHERE JobID=%s", (job_id,))
        jdl = self._one(f"SELECT OriginalJDL FROM `{db}`.JobJDLs WHERE JobID=%s", (job_id,))
        self.set_attributes(job_id, update=False, Status="Received")
        self._x(
            f"UPDATE `{db}`.Jobs SET RescheduleCounter=RescheduleCounter+1, Site=%s, "
            "MinorStatus=%s, ApplicationStatus='Unknown', LastUpdateTime=%s, RescheduleTime=%s WHERE JobID=%s",
            (jdl_site(jdl[0] if jdl else ""), "Job Rescheduled", when, when, job_id),
        )
        self._log(job_id, "Received", "Job Rescheduled", "Unknown", source, when)
        return True

    def wrapper_reschedule(self, job_id: int, minor: str, *, stored: tuple[str, ...] = (),
                           when: dt.datetime | None = None) -> bool:
        """JobWrapper/JobWrapperUtilities.py rescheduleFailedJob after a failed step (``minor``: 'Downloading
        InputSandbox', 'Input Data Resolution', ...): the JobReport's stored records (``stored``: MinorStatus
        reports of the step not sent yet), ApplicationStatus 'Failed <minor> ' (DIRAC's trailing space), then
        Status Rescheduled with ``minor``, sent as one setJobStatusBulk from 'JobWrapper' (one LoggingInfo record
        each, LUT and HeartBeatTime moved); then JobManager.rescheduleJob (``reschedule``). Returns whether the
        job was rescheduled (False: Failed at MaxRescheduling)."""
        when = when or self.clock()
        for step in stored:
            self.set_status(job_id, None, step, when=when)
        self.set_status(job_id, None, None, f"Failed {minor} ", when=when)
        self.set_status(job_id, "Rescheduled", minor, when=when)
        return self.reschedule(job_id, when=when)

    def hold(self, job_id: int, reschedules: int, *, when: dt.datetime | None = None) -> None:
        """The optimizers on a rescheduled job: Checking, then JobScheduling (Executor/JobScheduling.py
        optimizeJob) holds it RescheduleDelays after the RescheduleTime: ApplicationStatus 'On Hold: after
        rescheduling <N>', logged from 'JobScheduling'. ``release`` moves it to Waiting after the delay."""
        when = when or self.clock()
        self.set_attributes(job_id, Status="Checking", when=when)
        self.set_attributes(job_id, MinorStatus="JobScheduling", when=when)
        self._log(job_id, "Checking", "JobScheduling", "Unknown", "Optimizers", when)
        message = f"On Hold: after rescheduling {reschedules}"
        self.set_attributes(job_id, ApplicationStatus=message, when=when)
        self._log(job_id, "idem", "idem", message, "JobScheduling", when)

    def release(self, job_id: int, *, when: dt.datetime | None = None) -> None:
        """JobScheduling after the hold: the job goes to the TaskQueue, Waiting / 'Pilot Agent Submission'."""
        when = when or self.clock()
        self.set_attributes(job_id, Status="Waiting", when=when)
        self.set_attributes(job_id, MinorStatus="Pilot Agent Submission", when=when)
        self._log(job_id, "Waiting", "Pilot Agent Submission", "Unknown", "Optimizers", when)

    def _status(self, job_id: int) -> str | None:
        row = self._one(f"SELECT Status FROM `{self.dbs.jobdb}`.Jobs WHERE JobID=%s", (job_id,))
        return row[0] if row else None

    def _kill_if_allowed(self, job_id: int, status: str | None, when: dt.datetime) -> None:
        if status is not None and status not in UNKILLABLE:
            self.kill(job_id, when=when)

    def kill(self, job_id: int, *, when: dt.datetime | None = None) -> None:
        """StatusUtils._killJob: a Kill JobCommand, then Status Killed, MinorStatus 'Marked for termination'
        with LUT; no LoggingInfo. (kill_delete_jobs skips jobs already Done, Completed or Failed: callers
        kill only those that can be killed.)"""
        when = when or self.clock()
        self._x(f"INSERT IGNORE INTO `{self.dbs.jobdb}`.JobCommands (JobID, Command, Arguments, ReceptionTime)"
                " VALUES (%s, 'Kill', '', %s)", (job_id, when))
        self.set_attributes(job_id, Status="Killed", MinorStatus="Marked for termination", when=when)

    def delete(self, job_id: int, *, when: dt.datetime | None = None) -> None:
        """Deletion phase 1, kill_delete_jobs(RIGHT_DELETE): a job that can still be killed is killed first
        (``kill``); if its status before allowed Deleted, Status Deleted, MinorStatus 'Checking accounting'
        with LUT (a Running, Matched or Stalled job thus ends Killed). No LoggingInfo."""
        when = when or self.clock()
        status = self._status(job_id)
        self._kill_if_allowed(job_id, status, when)
        if status in DELETABLE:
            self.set_attributes(job_id, Status="Deleted", MinorStatus="Checking accounting", when=when)

    def remove(self, job_id: int) -> None:
        """Deletion phase 2: rows removed from JobDB tables (pilots stay)."""
        tables = ["HeartBeatLoggingInfo", "OptimizerParameters", "AtticJobParameters", "InputData", "JobCommands"]
        if self.old:
            tables.append("JobParameters")
        for table in tables:
            self._x(f"DELETE FROM `{self.dbs.jobdb}`.{table} WHERE JobID=%s", (job_id,))
        self._x(f"DELETE FROM `{self.dbs.jobdb}`.Jobs WHERE JobID=%s", (job_id,))
        self._x(f"DELETE FROM `{self.dbs.jobdb}`.JobJDLs WHERE JobID=%s", (job_id,))

    def run_to(self, job_id: int, site: str, final: str = "Done", minor: str = "Execution Complete",
               host: str | None = None, heartbeat: bool = True, when: dt.datetime | None = None) -> None:
        """A whole life after submission: optimizers, match, Running (+host, heartbeat), final."""
        self.optimize(job_id, when=when)
        self.match(job_id, site, when=when)
        self.set_status(job_id, "Running", "Application", "Running", when=when)
        if host:
            self.set_host(job_id, host)
        if heartbeat:
            self.heartbeat(job_id, when=when)
        self.set_status(job_id, final, minor, "Finished" if final == "Done" else "Error", when=when)

    # ---- pilots -----------------------------------------------------------------------------------

    def submit_pilot(self, site: str, ce: str, queue: str = "default", *, when: dt.datetime | None = None,
                     status: str = "Submitted", grid_type: str = "HTCondorCE") -> int:
        """SiteDirector._addPilotReferences: addPilotReferences inserts the row (Submitted; GridSite 'Unknown',
        DestinationSite 'NotAssigned', Queue 'Unknown'), then setPilotStatus sets ``status``, the CE, site and
        queue and 'Successfully submitted by the SiteDirector' (LUT again). Sets ``last_pilot_reference``."""
        when = when or self.clock()
        scheme = (grid_type[:-2] if grid_type.endswith("CE") else grid_type).lower() or "pilot"
        self.last_pilot_reference = f"{scheme}://{ce}/{self._ref()}"
        cols = {"PilotJobReference": self.last_pilot_reference, "GridType": grid_type,
                "SubmissionTime": when, "LastUpdateTime": when, "Status": "Submitted"}
        if self.old:
            cols.update(OwnerDN="/DC=cn/OU=bes/CN=pilot", OwnerGroup="bes_pilot")
        else:
            cols["VO"] = "bes"
        pilot_id = self._x(
            f"INSERT INTO `{self.dbs.pilotdb}`.PilotAgents ({', '.join(cols)})"
            f" VALUES ({', '.join(['%s'] * len(cols))})",
            list(cols.values()), id_column="PilotID",
        )
        self._x(
            f"UPDATE `{self.dbs.pilotdb}`.PilotAgents SET Status=%s, LastUpdateTime=%s,"
            " StatusReason='Successfully submitted by the SiteDirector', DestinationSite=%s, GridSite=%s, Queue=%s"
            " WHERE PilotID=%s",
            (status, when, ce, site, queue, pilot_id),
        )
        return pilot_id

    def _ref(self) -> str:
        self._refs = getattr(self, "_refs", 0) + 1
        return f"{id(self):x}{self._refs}"

    def set_pilot_status(self, pilot_id: int, status: str, reason: str = "", *,
                         when: dt.datetime | None = None) -> None:
        """PilotAgentsDB.setPilotStatus: Status, StatusReason ('Not given' without one), LUT."""
        reason = reason or "Not given"
        self._x(
            f"UPDATE `{self.dbs.pilotdb}`.PilotAgents SET Status=%s, StatusReason=%s, LastUpdateTime=%s"
            " WHERE PilotID=%s",
            (status, reason, when or self.clock(), pilot_id),
        )

    def site_director_submit(self, site: str, ce: str, queue: str, grid_type: str, *,
                             when: dt.datetime | None = None) -> int:
        """``submit_pilot`` for a CE of the given grid type."""
        return self.submit_pilot(site, ce, queue, grid_type=grid_type, when=when)

    def pilot_matched(self, pilot_id: int, job_id: int, *, site: str | None = None, ce: str | None = None,
                      benchmark: float = 10.0, when: dt.datetime | None = None) -> None:
        """Matcher._updatePilotInfo / _updatePilotJobMapping: pilot Running with StatusReason 'Not given',
        its site, CE and benchmark (LUT), then CurrentJobID, then a JobToPilotMapping row."""
        when = when or self.clock()
        sets, args = ["Status='Running'", "LastUpdateTime=%s", "StatusReason='Not given'"], [when]
        for column, value in (("GridSite", site), ("BenchMark", benchmark or None), ("DestinationSite", ce)):
            if value:
                sets.append(f"{column}=%s")
                args.append(value)
        self._x(f"UPDATE `{self.dbs.pilotdb}`.PilotAgents SET {', '.join(sets)} WHERE PilotID=%s", (*args, pilot_id))
        self._x(f"UPDATE `{self.dbs.pilotdb}`.PilotAgents SET CurrentJobID=%s WHERE PilotID=%s", (job_id, pilot_id))
        self._x(
            f"INSERT INTO `{self.dbs.pilotdb}`.JobToPilotMapping (PilotID, JobID, StartTime) VALUES (%s,%s,%s)",
            (pilot_id, job_id, when),
        )

    # ---- site status ------------------------------------------------------------------------------

    def set_site_status(self, site: str, status: str, reason: str = "", *, when: dt.datetime | None = None) -> None:
        """SiteMask (old JobDB: Active/Banned) or ResourceStatusDB.SiteStatus (new DIRAC)."""
        when = when or self.clock()
        if self.old:
            self._x(
                f"REPLACE INTO `{self.dbs.jobdb}`.SiteMask (Site, Status, LastUpdateTime, Author, Comment)"
                " VALUES (%s,%s,%s,'bes-simulate',%s)",
                (site, status, when, reason),
            )
        elif self.dbs.rssdb:
            self._x(
                f"REPLACE INTO `{self.dbs.rssdb}`.SiteStatus (Name, StatusType, VO, Status, Reason, DateEffective,"
                " ElementType, LastCheckTime) VALUES (%s,'all','all',%s,%s,%s,'Site',%s)",
                (site, status, reason or "Unspecified", when, when),
            )

    # ---- further DIRAC actions used by the simulator (additive) -------------------------------------

    def set_job_parameters(self, job_id: int, params: dict) -> None:
        """JobWrapper/Watchdog job parameters (HostName, GridCE, ...): MySQL up to DIRAC 9.0 only."""
        if self.old and params:
            rows = [(job_id, name, str(value)) for name, value in params.items()]
            self._x(
                f"REPLACE INTO `{self.dbs.jobdb}`.JobParameters (JobID, Name, Value) VALUES "
                + ", ".join(["(%s,%s,%s)"] * len(rows)),
                [v for row in rows for v in row],
            )

    def heartbeat_data(self, job_id: int, data: dict, *, when: dt.datetime | None = None) -> None:
        """setHeartBeatData with the Watchdog's full record (LoadAverage, MemoryUsed, Vsize,
        AvailableDiskSpace, CPUConsumed, WallClockTime): same Jobs update as ``heartbeat``."""
        when = when or self.clock()
        self._x(f"UPDATE `{self.dbs.jobdb}`.Jobs SET HeartBeatTime=%s, Status='Running' WHERE JobID=%s",
                (when, job_id))
        if data:
            self._many(
                f"INSERT IGNORE INTO `{self.dbs.jobdb}`.HeartBeatLoggingInfo (JobID, Name, Value, HeartBeatTime)"
                " VALUES (%s,%s,%s,%s)",
                [(job_id, name, str(value), when) for name, value in data.items()],
            )

    def log_site_mask(self, site: str, status: str, reason: str = "", *, when: dt.datetime | None = None) -> None:
        """SiteMaskLogging row that old JobDB writes with each site mask change (no-op for 9.1)."""
        if self.old:
            self._x(
                f"INSERT IGNORE INTO `{self.dbs.jobdb}`.SiteMaskLogging (Site, Status, UpdateTime, Author, Comment)"
                " VALUES (%s,%s,%s,'bes-simulate',%s)",
                (site, status, when or self.clock(), reason),
            )
