"""Drive DIRAC 9.1's own WMS code against a test's MariaDB databases, the way DIRAC's services do.

No SQL of ours writes a JobDB, JobLoggingDB or PilotAgentsDB row here: every write goes through the
DIRAC class or function that DIRAC's service, agent or executor calls for that action (see
docs/how-it-reads-dirac.md for the list). The harness only *reads* rows back (to keep its own
record of what each action left behind) and can call a ``probe`` between DIRAC's statements, which is
how the tests scrape the exporter at every point where a DIRAC action is half applied.

Offline gaps, each replaced by the nearest real DIRAC code path:

* OpenSearch (job parameters) is pointed at a closed port: DIRAC's calls fail fast, as in production
  when OpenSearch is down; StalledJobAgent reads the job's pilot from PilotAgentsDB's
  JobToPilotMapping instead of the ``Pilot_Reference`` job parameter.
* The ResourceStatus service (site mask) is an RPC service: JobScheduling's and the Matcher's site-mask
  checks cannot run, so their DB effects are applied through ``CachedJobState`` and
  ``Matcher._reportStatus`` / ``_updatePilotInfo`` / ``_updatePilotJobMapping`` exactly as those
  components apply them after their checks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

FINAL = ("Done", "Completed", "Failed", "Killed")
ACTIVE = ("Submitting", "Received", "Checking", "Staging", "Scouting", "Waiting", "Matched", "Rescheduled",
          "Running", "Stalled", "Completing")
RUNNING = ("Running", "Completing")  # a life whose row was ever in one of these ran (at its site)
PROBE_GROUP = "bes_probe"
VO, OWNER, GROUP = "bes", "besuser", "bes_user"
# An input sandbox nobody uploaded, and the error DIRAC's JobSanity optimizer fails such a job with.
MISSING_SANDBOX = "SB:ProductionSandboxSE|/SandBox/b/besuser.bes_user/00/00/missing.tar.bz2"
MISSING_SANDBOX_ERROR = f"Sandbox does not exist or you are not authorized to assign it being {OWNER}@{GROUP}"
# StalledJobAgent thresholds in seconds, from the agent's own formula with a 1 s watchdog cycle:
# stalledTime = cycle * (StalledTimeHours + 0.5) = 0, failedTime = cycle * (FailedTimeHours + 0.5) = 1.
STALLED_SECONDS, FAILED_SECONDS = 0, 1
MAX_RESCHEDULING = 2
# The sites and CEs of the scenarios (DIRAC checks destinations against /Resources/Sites).
SITES = {"BES.IHEP-PBS.cn": "ce01.ihep.ac.cn", "BES.UCAS.cn": "ce.ucas.ac.cn", "BES.USTC.cn": "ce.ustc.edu.cn",
         "CLUSTER.WHU.cn": "ce.whu.edu.cn", "BES.JINR.ru": "lcgce01.jinr.ru"}

_CFG = """
DIRAC
{
  Setup = Fidelity
  Security
  {
    UseServerCertificate = no
  }
}
LocalSite
{
  Site = DIRAC.Fidelity.cn
}
Registry
{
  DefaultGroup = bes_user
  VO
  {
    bes
    {
      VOAdmin = besuser
    }
  }
  Groups
  {
    bes_user
    {
      VO = bes
      Users = besuser
      Properties = NormalUser
    }
  }
  Users
  {
    besuser
    {
      DN = /DC=cn/DC=ihep/CN=besuser
    }
  }
}
%(resources)s
Systems
{
  Databases
  {
    Host = %(host)s
    Port = %(port)d
    User = %(user)s
    Password = %(password)s
  }
  NoSQLDatabases
  {
    Host = 127.0.0.1
    Port = %(closed_port)d
    User = none
    Password = none
    SSL = no
  }
  WorkloadManagement
  {
    Databases
    {
      JobDB
      {
        MaxRescheduling = %(max_resched)d
      }
    }
    JobWrapper
    {
      CheckingTime = 1
      MinCheckingTime = 1
    }
    Agents
    {
      StalledJobAgent
      {
        StalledTimeHours = 0
        FailedTimeHours = 1
        MaxNumberOfThreads = 1
      }
    }
    Executors
    {
      JobSanity
      {
        InputSandboxCheck = True
      }
    }
  }
}
"""

_init_lock = threading.Lock()
_initialised = False


def closed_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resources_cfg() -> str:
    grids: dict[str, list[str]] = {}
    for site, ce in SITES.items():
        grids.setdefault(site.split(".")[0], []).append(
            f"      {site}\n      {{\n        CE = {ce}\n        CEs\n        {{\n          {ce}\n          {{\n"
            f"            CEType = HTCondorCE\n            Queues\n            {{\n              long\n"
            f"              {{\n              }}\n            }}\n          }}\n        }}\n      }}\n")
    body = "".join(f"    {grid}\n    {{\n{''.join(sites)}    }}\n" for grid, sites in grids.items())
    return f"Resources\n{{\n  Sites\n  {{\n{body}  }}\n}}"


def init_dirac(host: str, port: int, user: str = "root", password: str = "") -> None:
    """Initialise DIRAC once per process from a generated local cfg (no CS server, no credentials)."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        folder = Path(tempfile.mkdtemp(prefix="bes-fidelity-dirac-"))
        cfg = folder / "dirac.cfg"
        cfg.write_text(_CFG % {"host": host, "port": port, "user": user, "password": password,
                               "closed_port": closed_port(), "max_resched": MAX_RESCHEDULING,
                               "resources": _resources_cfg()})
        import DIRAC
        from DIRAC import gLogger

        DIRAC.initialize(require_auth=False, extra_config_files=[cfg])
        gLogger.setLevel("FATAL")  # DIRAC logs every statement at INFO; the expected OpenSearch errors too
        _initialised = True


def set_db_names(names: dict[str, str]) -> None:
    """Point DIRAC's DB layer (``/Systems/WorkloadManagement/Databases/<DB>/DBName``) at ``names``."""
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    for logical, real in names.items():
        gConfigurationData.setOptionInCFG(f"/Systems/WorkloadManagement/Databases/{logical}/DBName", real)


# ---- the record ----------------------------------------------------------------------------------

ROW_COLUMNS = ("Status", "MinorStatus", "ApplicationStatus", "Site", "RescheduleCounter", "LastUpdateTime",
               "SubmissionTime", "StartExecTime", "EndExecTime", "HeartBeatTime", "RescheduleTime", "JobGroup")


@dataclass(frozen=True)
class Row:
    """The Jobs columns the record keeps (read back after each action)."""

    Status: str
    MinorStatus: str
    ApplicationStatus: str
    Site: str
    RescheduleCounter: int
    LastUpdateTime: dt.datetime | None
    SubmissionTime: dt.datetime | None
    StartExecTime: dt.datetime | None
    EndExecTime: dt.datetime | None
    HeartBeatTime: dt.datetime | None
    RescheduleTime: dt.datetime | None
    JobGroup: str


@dataclass
class Step:
    """One DIRAC action on one job (or pilot): the row before and after, and when it ended."""

    action: str
    job: int | None
    before: Row | None
    after: Row | None
    ended: float
    pilot: str | None = None
    pilot_after: tuple | None = None  # (GridSite, DestinationSite, Status)
    killed_on_the_way: bool = False   # DIRAC set Killed inside the action, then another status


@dataclass(frozen=True)
class Life:
    """A job life (JobID, RescheduleCounter) that reached a final state, as the record saw it."""

    job: int
    rc: int
    site: str
    status: str
    minor: str
    probe: bool
    ended: float
    ran: bool = True  # the row was Running or Completing during this life
    app: str = ""  # ApplicationStatus when it ended
    owner: tuple[str, str] = (OWNER, GROUP)  # (Owner, OwnerGroup): every job of the harness is OWNER's


@dataclass
class Record:
    """What the harness did, action by action."""

    steps: list[Step] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, step: Step) -> None:
        with self.lock:
            self.steps.append(step)

    def lives(self, after: float = 0.0, before: float = float("inf")) -> list[Life]:
        """Lives whose first final state was reached by an action ending in [after, before).

        The final state of a life is the one DIRAC settles on *at the end of the action* that first made
        it final: StalledJobAgent's kill-then-Failed counts as Failed; a kill-then-Deleted (deleting a job
        that was not final) counts as Killed, the last final state DIRAC gave that life. A life *ran* if an
        action left its row Running or Completing.
        """
        closed: set[tuple[int, int]] = set()
        ran: set[tuple[int, int]] = set()
        out = []
        with self.lock:
            steps = list(self.steps)
        for s in steps:
            if s.job is None or s.before is None:
                continue
            if s.after is not None and s.after.Status in RUNNING:
                ran.add((s.job, s.after.RescheduleCounter))
            rc = s.before.RescheduleCounter
            if s.after is not None and s.after.RescheduleCounter != rc:
                rc = s.after.RescheduleCounter  # a reschedule: the new life starts active
                continue
            key = (s.job, rc)
            if key in closed:
                continue
            row, status = s.after, None
            if row is not None and row.Status in FINAL:
                status, site, minor, app = row.Status, row.Site, row.MinorStatus, row.ApplicationStatus
            elif s.killed_on_the_way:
                status, site, minor, app = "Killed", s.before.Site, "Marked for termination", s.before.ApplicationStatus
            if status is None:
                continue
            closed.add(key)
            if after <= s.ended < before:
                out.append(Life(s.job, rc, site, status, minor, s.before.JobGroup == PROBE_GROUP, s.ended,
                                key in ran, app))
        return out

    def pilot_finals(self, after: float = 0.0, before: float = float("inf")) -> dict[tuple, int]:
        """{(GridSite, DestinationSite, Status): n} for pilots reaching a final state, each pilot once."""
        done: set[str] = set()
        out: dict[tuple, int] = {}
        with self.lock:
            steps = list(self.steps)
        for s in steps:
            if s.pilot is None or s.pilot_after is None or s.pilot in done:
                continue
            site, ce, status = s.pilot_after
            if status in ("Done", "Failed", "Aborted", "Deleted"):
                done.add(s.pilot)
                if after <= s.ended < before:
                    out[(site, ce, status)] = out.get((site, ce, status), 0) + 1
        return out


# ---- DIRAC classes with an observation hook -------------------------------------------------------

def _hooked_classes(probe: Callable[[str], None]):
    """JobDB and PilotAgentsDB subclasses that call ``probe`` after each write method: DIRAC's
    statements are unchanged, the probe only observes the state between two of them."""
    from DIRAC.WorkloadManagementSystem.DB.JobDB import JobDB
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    def wrap(name: str):
        def method(self, *args, **kwargs):
            result = getattr(super(type(self), self), name)(*args, **kwargs)
            probe(name)
            return result
        method.__name__ = name
        return method

    job_writes = ("setJobsMajorStatus", "setJobAttributes", "setJobAttribute", "setHeartBeatData",
                  "setStartExecTime", "setEndExecTime", "insertNewJobIntoDB", "setJobCommand",
                  "removeJobFromDB", "setJobJDL", "setJobOptParameter")
    pilot_writes = ("addPilotReferences", "setPilotStatus", "setCurrentJobID", "setJobForPilot")
    hooked_job = type("ProbedJobDB", (JobDB,), {n: wrap(n) for n in job_writes})
    hooked_pilot = type("ProbedPilotAgentsDB", (PilotAgentsDB,), {n: wrap(n) for n in pilot_writes})
    return hooked_job, hooked_pilot


# ---- the harness -----------------------------------------------------------------------------------

class DiracHarness:
    """DIRAC's WMS write paths over one set of databases; every public method is one DIRAC action."""

    def __init__(self, names: dict[str, str], connect: Callable[[], pymysql.connections.Connection],
                 probe: Callable[[str], None] | None = None):
        set_db_names(names)
        from DIRAC import gLogger
        from DIRAC.ConfigurationSystem.Client.Helpers.Operations import Operations
        from DIRAC.WorkloadManagementSystem.Client.JobState.JobState import JobState
        from DIRAC.WorkloadManagementSystem.Client.Matcher import Matcher
        from DIRAC.WorkloadManagementSystem.DB.JobDB import JobDB
        from DIRAC.WorkloadManagementSystem.DB.JobParametersDB import JobParametersDB
        from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB
        from DIRAC.WorkloadManagementSystem.DB.TaskQueueDB import TaskQueueDB
        from DIRAC.WorkloadManagementSystem.Utilities.JobStatusUtility import JobStatusUtility

        self.names = names
        self._connect = connect
        self._local = threading.local()  # one read connection per thread (actions run in several threads)
        self.record = Record()
        self.probe = probe
        job_cls, pilot_cls = _hooked_classes(self._probe) if probe else (JobDB, PilotAgentsDB)
        self.jobDB = job_cls()
        self.logDB = _serialised_logging_db()
        self.pilotDB = pilot_cls()
        self.tqDB = TaskQueueDB()
        self._job_state = JobState
        self._own_job_state()
        self.jsu = JobStatusUtility(self.jobDB, self.logDB)
        self.matcher = Matcher(pilotAgentsDB=self.pilotDB, jobDB=self.jobDB, tqDB=self.tqDB, jlDB=self.logDB,
                               opsHelper=Operations(vo=VO))
        self.state_update = _StateUpdateService(self.jobDB, self.logDB, JobParametersDB(), self.jsu,
                                                gLogger.getSubLogger("JobStateUpdate"))
        self.stalled_agent = _make_stalled_agent(self)
        self.job_path, self.job_sanity = _make_executors()
        self._refs = itertools.count(1)

    # ---- helpers ----

    def _own_job_state(self) -> None:
        """CachedJobState -> JobState keeps one class-wide set of DB objects: make them ours."""
        holder = self._job_state._JobState__db
        holder.checked = True
        holder.jobDB, holder.logDB, holder.tqDB = self.jobDB, self.logDB, self.tqDB

    def _probe(self, where: str) -> None:
        if self.probe is not None:
            self.probe(where)

    @property
    def read(self) -> pymysql.connections.Connection:
        if getattr(self._local, "conn", None) is None:
            self._local.conn = self._connect()
        return self._local.conn

    def row(self, job: int) -> Row | None:
        with self.read.cursor() as cur:
            cur.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM `{self.names['JobDB']}`.Jobs WHERE JobID=%s", (job,))
            found = cur.fetchone()
        return Row(*found) if found else None

    def pilot_row(self, ref: str) -> tuple | None:
        with self.read.cursor() as cur:
            cur.execute(f"SELECT GridSite, DestinationSite, Status FROM `{self.names['PilotAgentsDB']}`.PilotAgents"
                        " WHERE PilotJobReference=%s", (ref,))
            return cur.fetchone()

    def _step(self, action: str, job: int, fn: Callable[[], object], killed: Callable[[Row], bool] | None = None):
        import time

        before = self.row(job)
        result = fn()
        after = self.row(job)
        self.record.add(Step(action, job, before, after, time.time(),
                             killed_on_the_way=bool(killed and before and killed(before))))
        return result

    @staticmethod
    def _ok(result, what: str):
        if not result["OK"]:
            raise RuntimeError(f"DIRAC {what}: {result['Message']}")
        return result

    # ---- jobs ----

    def submit(self, site: str | list[str], group: str = "bes_analysis", name: str = "bes_job",
               sandbox: str | None = None) -> int:
        """JobManager.export_submitJob for one JDL from DIRAC's ``Job``: insertNewJobIntoDB, then the
        JobManager's LoggingInfo record with the returned time stamp. ``sandbox``: an input sandbox the
        JDL names (``SB:<SE>|<path>``, as the JobManager writes uploaded ones), checked by JobSanity."""
        import time

        from DIRAC.Interfaces.API.Job import Job

        job = Job()
        job.setName(name)
        job.setJobGroup(group)
        job.setExecutable("/bin/true")
        job.setDestination(site)
        if sandbox:
            job.setInputSandbox([sandbox])
        jdl = job._toJDL().strip()
        jdl = jdl if jdl.startswith("[") else f"[{jdl}"
        jdl = jdl if jdl.endswith("]") else f"{jdl}]"
        result = self._ok(self.jobDB.insertNewJobIntoDB(jdl, OWNER, GROUP, vo=VO), "insertNewJobIntoDB")
        job_id = result["JobID"]
        self._ok(self.logDB.addLoggingRecord(job_id, result["Status"], result["MinorStatus"],
                                             date=result["TimeStamp"], source="JobManager"), "addLoggingRecord")
        self.record.add(Step("submit", job_id, None, self.row(job_id), time.time()))
        return job_id

    def optimize(self, job: int) -> None:
        """The optimizer chain as the OptimizationMind runs it: DIRAC's JobPath and JobSanity executors
        on a CachedJobState, then JobScheduling's DB effect (Site, Waiting, task queue); the Mind commits
        the CachedJobState after each executor and dispatches the job out of the chain once it is no
        longer Checking (an executor failed it: OptimizerExecutor.processTask)."""
        from DIRAC.WorkloadManagementSystem.Client import JobMinorStatus, JobStatus
        from DIRAC.WorkloadManagementSystem.Client.JobState.CachedJobState import CachedJobState

        def run() -> None:
            for executor in (self.job_path, self.job_sanity):
                self._execute(job, executor)
                if self.row(job).Status != JobStatus.CHECKING:  # OptimizationMind.exec_dispatch
                    return
            state = CachedJobState(job)
            manifest = self._ok(state.getManifest(), "getManifest")["Value"]
            sites = [x for x in manifest.getOption("Site", []) if x.strip().lower() not in ("any", "")]
            state.setAttribute("Site", {0: "ANY", 1: sites[0] if sites else ""}.get(len(sites), "Multiple"))
            state.setStatus(JobStatus.WAITING, minorStatus=JobMinorStatus.PILOT_AGENT_SUBMISSION, appStatus="Unknown",
                            source="JobScheduling")
            self._ok(state.insertIntoTQ(), "insertIntoTQ")
            self._ok(state.commitChanges(), "commitChanges")

        self._step("optimize", job, run)

    def run_executor(self, job: int, name: str) -> None:
        """One optimizer of the chain (``JobPath``, ``JobSanity``) on the job, as ``optimize`` runs it."""
        executor = {"JobPath": self.job_path, "JobSanity": self.job_sanity}[name]
        self._step(f"optimizer:{name}", job, lambda: self._execute(job, executor))

    def _execute(self, job: int, executor) -> None:
        """DIRAC's executor on the job's CachedJobState; the OptimizationMind commits what it changed."""
        from DIRAC.WorkloadManagementSystem.Client.JobState.CachedJobState import CachedJobState

        self._own_job_state()
        stub = CachedJobState(job).serialize()
        out = self._ok(executor._ex_processTask(job, stub), type(executor).__name__)
        state = self._ok(CachedJobState.deserialize(out["Value"][0]), "deserialize")["Value"]
        self._ok(state.commitChanges(), "commitChanges")

    def match(self, job: int, site: str, pilot_ref: str, ce: str) -> None:
        """The Matcher's DB side after TaskQueueDB picked the job: _reportStatus, _updatePilotInfo,
        _updatePilotJobMapping."""
        resource = {"Site": site, "GridCE": ce, "PilotReference": pilot_ref, "PilotBenchmark": 10.0}

        def run() -> None:
            self.tqDB.deleteJob(job)  # matchAndGetJob removes the matched job from its task queue
            self.matcher._reportStatus(resource, job)
            self.matcher._updatePilotInfo(resource)
            self.matcher._updatePilotJobMapping(resource, job)

        self._step("match", job, run)
        self._pilot_step("pilot_running", pilot_ref)

    def report(self, job: int, status: str = "", minor: str = "", app: str = "", source: str = "JobWrapper",
               when: dt.datetime | None = None) -> None:
        """A JobReport update (JobWrapper, JobAgent): JobStateUpdate.setJobStatusBulk with one time stamp."""
        update = {k: v for k, v in (("Status", status), ("MinorStatus", minor), ("ApplicationStatus", app)) if v}
        update["Source"] = source
        stamp = str(when or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        self._step(f"report:{status or minor or app}", job, lambda: self._ok(
            self.state_update.export_setJobStatusBulk(job, {stamp: update}), "setJobStatusBulk"))

    def report_bulk(self, job: int, updates: list[tuple[dt.datetime, dict]]) -> None:
        """JobStateUpdate.setJobStatusBulk: the JobWrapper's JobReport sends time-stamped updates."""
        status_dict = {str(when): dict(d) for when, d in updates}
        self._step("report_bulk", job, lambda: self._ok(self.state_update.export_setJobStatusBulk(job, status_dict),
                                                          "setJobStatusBulk"))

    def heartbeat(self, job: int, load: float = 1.0) -> None:
        """JobStateUpdate.sendHeartBeat from the Watchdog (dynamic data; static data goes to OpenSearch)."""
        dynamic = {"LoadAverage": load, "MemoryUsed": 512.0, "Vsize": 1024.0, "AvailableDiskSpace": 9000.0,
                   "CPUConsumed": 10.0, "WallClockTime": 12.0}
        static = {"HostName": "wn001.ihep.ac.cn"}
        self._step("heartbeat", job, lambda: self._ok(self.state_update.export_sendHeartBeat(job, dynamic, static),
                                                        "sendHeartBeat"))

    def mark_stalled(self, job: int) -> bool:
        """StalledJobAgent._markStalledJobs (the per-job step of the agent's execute); False when the
        agent finds the job not stalled yet."""
        out = {}
        self._step("stall", job, lambda: out.setdefault("r", self.stalled_agent._markStalledJobs(job)))
        return out["r"]["OK"]

    def fail_stalled(self, job: int) -> None:
        """StalledJobAgent._failStalledJobs: kill the job (RIGHT_KILL, force), then set it Failed."""
        self._step("fail_stalled", job, lambda: self._ok(self.stalled_agent._failStalledJobs(job), "_failStalledJobs"))

    def reschedule(self, job: int, source: str = "JobManager") -> None:
        """JobManager.rescheduleJob / StalledJobAgent._kickStuckJobs: Utils.rescheduleJobs."""
        from DIRAC.WorkloadManagementSystem.Utilities.Utils import rescheduleJobs

        self._step("reschedule", job, lambda: rescheduleJobs([job], source=source, jobDB=self.jobDB,
                                                             taskQueueDB=self.tqDB, jobLoggingDB=self.logDB))

    def kill(self, job: int) -> None:
        """JobManager.killJob: StatusUtils.kill_delete_jobs(RIGHT_KILL)."""
        from DIRAC.WorkloadManagementSystem.DB.StatusUtils import kill_delete_jobs

        self._step("kill", job, lambda: kill_delete_jobs("Kill", [job], jobdb=self.jobDB, taskqueuedb=self.tqDB,
                                                         pilotagentsdb=self.pilotDB))

    def delete(self, job: int) -> None:
        """JobManager.deleteJob / JobCleaningAgent phase 1: kill_delete_jobs(RIGHT_DELETE) (a job that may
        still be killed is set Killed first, then Deleted)."""
        from DIRAC.WorkloadManagementSystem.DB.StatusUtils import kill_delete_jobs
        from DIRAC.WorkloadManagementSystem.Utilities.jobAdministration import _filterJobStateTransition

        def killed(before: Row) -> bool:
            return bool(_filterJobStateTransition({job: {"Status": before.Status}}, "Killed"))

        self._step("delete", job, lambda: kill_delete_jobs("Delete", [job], jobdb=self.jobDB, taskqueuedb=self.tqDB,
                                                           pilotagentsdb=self.pilotDB), killed)

    def remove(self, job: int) -> None:
        """JobCleaningAgent phase 2 -> JobManager.removeJob: removeJobFromDB, task queue, LoggingInfo."""
        def run() -> None:
            self._ok(self.jobDB.removeJobFromDB([job]), "removeJobFromDB")
            self.tqDB.deleteJob(job)
            self._ok(self.logDB.deleteJob([job]), "JobLoggingDB.deleteJob")

        self._step("remove", job, run)

    # ---- pilots ----

    def submit_pilots(self, site: str, ce: str, queue: str, n: int) -> list[str]:
        """SiteDirector._addPilotReferences: addPilotReferences, then setPilotStatus(Submitted) per pilot."""
        refs = [f"htcondorce://{ce}:9619/{os.getpid()}.{next(self._refs)}" for _ in range(n)]
        self._ok(self.pilotDB.addPilotReferences(refs, VO, "HTCondorCE", {}), "addPilotReferences")
        for ref in refs:
            self._ok(self.pilotDB.setPilotStatus(ref, "Submitted", ce, "Successfully submitted by the SiteDirector",
                                                 site, queue), "setPilotStatus")
        for ref in refs:
            self._pilot_step("pilot_submit", ref, record_only=True)
        return refs

    def pilot_status(self, ref: str, status: str) -> None:
        """SiteDirector._updatePilotsInDB: setPilotStatus(ref, status, '', 'Updated by SiteDirector')."""
        self._ok(self.pilotDB.setPilotStatus(ref, status, "", "Updated by SiteDirector"), "setPilotStatus")
        self._pilot_step(f"pilot:{status}", ref, record_only=True)

    def _pilot_step(self, action: str, ref: str, record_only: bool = False) -> None:
        import time

        self.record.add(Step(action, None, None, None, time.time(), pilot=ref, pilot_after=self.pilot_row(ref)))


class _StateUpdateService:
    """The JobStateUpdate service's request handling (DIRAC's handler mixin, unchanged) for a pilot host
    holding TrustedHost; only the DISET credential plumbing is replaced by these attributes."""

    def __new__(cls, jobDB, jobLoggingDB, paramsDB, jsu, log):
        from DIRAC.WorkloadManagementSystem.Service.JobStateUpdateHandler import JobStateUpdateHandlerMixin

        handler_cls = type("OfflineJobStateUpdate", (JobStateUpdateHandlerMixin,), {})
        handler = object.__new__(handler_cls)
        handler.jobDB, handler.jobLoggingDB, handler.elasticJobParametersDB, handler.jsu = (
            jobDB, jobLoggingDB, paramsDB, jsu)
        handler.log = log
        handler.vo = VO
        handler.userProperties = ["TrustedHost", "GenericPilot"]
        return handler


def _serialised_logging_db():
    """DIRAC's JobLoggingDB with its inserts serialised across the harness's threads: LoggingInfo's SeqNum
    trigger (SELECT MAX(SeqNum) per JobID) deadlocks under concurrent inserts, and DIRAC would then only
    return an error to its caller. The exporter never reads LoggingInfo; JobDB writes stay concurrent."""
    from DIRAC.WorkloadManagementSystem.DB.JobLoggingDB import JobLoggingDB

    lock = threading.Lock()

    class SerialJobLoggingDB(JobLoggingDB):
        def addLoggingRecord(self, *args, **kwargs):
            with lock:
                return super().addLoggingRecord(*args, **kwargs)

    return SerialJobLoggingDB()


def _make_stalled_agent(h: DiracHarness):
    """DIRAC's StalledJobAgent, initialised from the local cfg, using the harness's DB objects. The job's
    pilot comes from JobToPilotMapping (the ``Pilot_Reference`` job parameter lives in OpenSearch)."""
    from DIRAC import S_OK
    from DIRAC.WorkloadManagementSystem.Agent.StalledJobAgent import StalledJobAgent

    class OfflineStalledJobAgent(StalledJobAgent):
        def _getJobPilotStatus(self, jobID):
            result = self.pilotAgentsDB.getPilotsForJobID(jobID)
            if not result["OK"] or not result["Value"]:
                return S_OK("NoPilot")
            info = self.pilotAgentsDB.getPilotInfo(pilotID=result["Value"][-1])
            if not info["OK"] or not info["Value"]:
                return S_OK("NoPilot")
            return S_OK(next(iter(info["Value"].values()))["Status"])

    agent = OfflineStalledJobAgent("WorkloadManagement/StalledJobAgent", "WorkloadManagement/StalledJobAgent")
    DiracHarness._ok(agent.initialize(), "StalledJobAgent.initialize")
    agent.jobDB, agent.logDB, agent.taskQueueDB, agent.pilotAgentsDB = h.jobDB, h.logDB, h.tqDB, h.pilotDB
    agent.storageManagementDB = None
    return agent


def _make_executors():
    """DIRAC's JobPath and JobSanity optimizer executors, initialised as the executor reactor does."""
    from DIRAC.WorkloadManagementSystem.Executor.JobPath import JobPath
    from DIRAC.WorkloadManagementSystem.Executor.JobSanity import JobSanity

    out = []
    for cls in (JobPath, JobSanity):
        name = f"WorkloadManagement/{cls.__name__}"
        DiracHarness._ok(cls._ex_initialize(name, name), f"{cls.__name__} initialisation")
        out.append(cls())
    return out
