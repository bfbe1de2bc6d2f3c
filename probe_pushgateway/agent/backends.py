"""Back-ends behind one small interface (submit / status / kill): the real DIRAC WMS, or local runs.

``dirac`` uses DIRAC's ``Dirac`` API (needs a DIRAC client installation, its configuration and a
proxy). ``local`` submits the same job with ``Dirac().submitJob(job, mode="local")``, which runs DIRAC's
job wrapper (``dirac-jobexec``) on this machine, offline, in a detached child process
(:mod:`.localrun`), so a cron-run agent can exit while the probe runs and the reaper can kill it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .diracjob import DiracError, check_result, initialize, write_local_cfg
from .targets import Target

# DIRAC 9.1's job states: DIRACCommon/WorkloadManagementSystem/Client/JobStatus.py (JOB_STATES, JobsStateMachine).
FINAL = frozenset({"Done", "Completed", "Failed", "Killed", "Deleted"})
# Still in DIRAC's own hands, never offered to a site's pilots: JobManager (Submitting, Received), the optimizers
# (Checking: JobScheduling holds a job for a banned site there, "Requested site(s) ... are inactive"), data
# staging (Staging), scout jobs (Scouting), and Rescheduled (a virtual state on the way back to Received).
HELD = frozenset({"Submitting", "Received", "Checking", "Staging", "Scouting", "Rescheduled"})
# Only Waiting is in a task queue for the site's pilots: the one status BES3's rule may call bad.
QUEUED = "Waiting"
# Not running yet: the waiting timeout applies (Matched: a pilot took it, it did reach the site).
WAITING = HELD | {QUEUED, "Matched"}
RUNNING = frozenset({"Running", "Stalled", "Completing"})
UNKNOWN = "Unknown"
KILL_COMMAND_SPACING = 1.1  # seconds: DIRAC keys a job's commands by their reception time, to the second


class BackendError(Exception):
    """A back-end call failed (a DIRAC ``S_ERROR``, an exception inside DIRAC, a local run problem)."""


class NoOutput(BackendError):
    """The job has no output sandbox, or the file is not in it."""


@dataclass
class JobState:
    """What a back-end knows about one job; times are Unix seconds (None when unknown)."""

    job_id: str
    status: str
    site: str | None = None
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None


class Backend(Protocol):
    """The interface the agents use. ``in_jobdb``: the back-end's jobs appear in the configured JobDB."""

    name: str
    in_jobdb: bool

    def submit(self, job: Any, target: Target) -> str:
        """Submit a DIRAC ``Job``; return its ID."""

    def status(self, job_ids: list[str]) -> dict[str, JobState]:
        """Current state of the given jobs (status ``Unknown`` for jobs the back-end no longer knows)."""

    def kill(self, job_id: str) -> None:
        """Kill the job and delete it."""

    def read_output(self, job_id: str, name: str, limit: int) -> str:
        """The first ``limit`` bytes of file ``name`` of the job's output sandbox (:class:`NoOutput` if absent)."""


def _epoch(value: Any) -> float | None:
    """DIRAC time (datetime or 'YYYY-mm-dd HH:MM:SS', UTC) to Unix seconds."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    return None


class DiracBackend:
    """The real DIRAC WMS through ``DIRAC.Interfaces.API.Dirac.Dirac``; every ``S_ERROR`` → BackendError."""

    name = "dirac"
    in_jobdb = True

    def __init__(self, config_files: list[str] | None = None, require_auth: bool = True) -> None:
        try:
            initialize(config_files or [], require_auth=require_auth)
        except DiracError as exc:
            raise BackendError(str(exc)) from None

    @staticmethod
    def _call(what: str, method: str, *args, **kw) -> Any:
        """``method`` of DIRAC's ``Dirac`` API (or, ``monitoring=True``, of the JobMonitoring client it uses)."""
        from DIRAC.Interfaces.API.Dirac import Dirac, JobMonitoringClient

        client = JobMonitoringClient() if kw.pop("monitoring", False) else Dirac()
        try:
            result = getattr(client, method)(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - DIRAC clients can raise instead of returning S_ERROR
            raise BackendError(f"{what}: DIRAC raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                               ) from None
        try:
            return check_result(result, what)
        except DiracError as exc:
            raise BackendError(str(exc)) from None

    def submit(self, job: Any, target: Target) -> str:
        value = self._call(f"submitting the probe job for {target}", "submitJob", job)
        if isinstance(value, list):
            if len(value) != 1:
                raise BackendError(f"submitting the probe job for {target}: DIRAC returned {len(value)} job IDs")
            value = value[0]
        return str(int(value))

    def status(self, job_ids: list[str]) -> dict[str, JobState]:
        if not job_ids:
            return {}
        ids = [int(j) for j in job_ids]
        # Not Dirac.getJobSummary: in DIRAC 9.1 it looks the service's answer up by integer job ID while the
        # keys arrive over DISET as strings, so every job reads "None" (seen on a real server). The
        # JobMonitoring call it wraps answers every column, start and end times included.
        summary = self._call(f"job summary of {len(ids)} probe job(s)", "getJobsSummary", ids, monitoring=True)
        summary = summary or {}
        out = {}
        for jid in ids:
            info = summary.get(jid) or summary.get(str(jid)) or {}
            status = info.get("Status")
            out[str(jid)] = JobState(
                job_id=str(jid), status=status if status and status != "None" else UNKNOWN,
                site=info.get("Site") if info.get("Site") not in (None, "None") else None,
                submitted=_epoch(info.get("SubmissionTime")), started=_epoch(info.get("StartExecTime")),
                ended=_epoch(info.get("EndExecTime")) or _epoch(info.get("LastUpdateTime")))
        return out

    def kill(self, job_id: str) -> None:
        """Kill and delete with DIRAC's ``deleteJob``: the JobManager kills the job (Kill command, ``Killed``)
        and deletes it if its status before allowed that (Received, Checking, Waiting...). A Running, Matched or
        Stalled job is only killed: a second ``deleteJob``, in a later second, deletes it. (``killJob`` then
        ``deleteJob`` within one second fails: both insert a Kill JobCommand with the same ReceptionTime, a
        duplicate key, "Some jobs failed deletion", as seen on a real DIRAC 9.1 server.)"""
        jid, what = int(job_id), f"killing and deleting probe job {job_id}"
        self._call(what, "deleteJob", jid)
        states = self._call(f"status of probe job {job_id}", "getJobsStatus", [jid], monitoring=True) or {}
        if (states.get(jid) or states.get(str(jid)) or {}).get("Status") == "Killed":
            time.sleep(KILL_COMMAND_SPACING)
            self._call(what, "deleteJob", jid)

    def read_output(self, job_id: str, name: str, limit: int) -> str:
        """Download the output sandbox archive (never unpacked: a worker node builds it) and read one member."""
        from DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient import SandboxStoreClient, ZstdCompatibleTarFile

        what = f"output sandbox of probe job {job_id}"
        try:
            result = SandboxStoreClient().downloadSandboxForJob(int(job_id), "Output", unpack=False)
        except Exception as exc:  # noqa: BLE001 - DIRAC clients can raise instead of returning S_ERROR
            raise BackendError(f"{what}: DIRAC raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                               ) from None
        try:
            archives = check_result(result, what) or []
        except DiracError as exc:  # DIRAC's words for a job without an output sandbox, else an outage
            raise (NoOutput if "No Output sandbox found" in str(exc) else BackendError)(str(exc)) from None
        try:
            for archive in reversed(archives):  # the newest sandbox first
                with ZstdCompatibleTarFile(archive, mode="r") as tf:
                    member = next((m for m in tf.getmembers() if m.isfile()
                                   and os.path.basename(m.name) == name), None)
                    fh = tf.extractfile(member) if member is not None else None
                    if fh is not None:
                        return fh.read(limit).decode(errors="replace")
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise BackendError(f"{what}: unreadable archive ({' '.join(str(exc).split())[:200]})") from None
        finally:
            for archive in archives:  # DIRAC leaves each archive in its own TMSB.* temporary directory
                if os.path.basename(os.path.dirname(str(archive))).startswith("TMSB."):
                    shutil.rmtree(os.path.dirname(str(archive)), ignore_errors=True)
        raise NoOutput(f"{what}: no {name} in it")


def venv_bin() -> str:
    """The directory of this Python's scripts (holds ``dirac-jobexec`` in the project venv)."""
    return os.path.dirname(sys.executable)


class LocalBackend:
    """Runs each probe job through DIRAC's local mode in a detached child; state in ``workdir/job_<n>/``."""

    name = "local"
    in_jobdb = False
    keep_finished = 20

    def __init__(self, workdir: Path, targets: list[Target], setup: str = "BESProbe", vo: str = "bes") -> None:
        self.workdir = Path(workdir)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.cfg = write_local_cfg(targets, self.workdir / "dirac.cfg", setup, vo)
            initialize([self.cfg], require_auth=False)
        except OSError as exc:
            raise BackendError(f"local back-end work directory {self.workdir}: {exc.strerror}") from None
        except DiracError as exc:
            raise BackendError(str(exc)) from None
        self._procs: dict[str, subprocess.Popen] = {}

    def _dir(self, job_id: str) -> Path:
        if not job_id.startswith("local-") or not job_id[6:].isdigit():
            raise BackendError(f"{job_id!r} is not a local back-end job ID")
        return self.workdir / f"job_{job_id[6:]}"

    def _next_id(self) -> str:
        numbers = [int(p.name[4:]) for p in self.workdir.glob("job_*") if p.name[4:].isdigit()]
        counter = self.workdir / "last_id"
        try:
            last = int(counter.read_text())
        except (OSError, ValueError):
            last = 0
        n = max([last, *numbers]) + 1
        counter.write_text(f"{n}\n")
        return f"local-{n}"

    def environment(self) -> dict[str, str]:
        """The job's environment: ``dirac-jobexec`` on PATH, DIRAC's local configuration."""
        env = dict(os.environ)
        env["PATH"] = venv_bin() + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env["DIRACSYSCONFIG"] = str(self.cfg)
        return env

    def submit(self, job: Any, target: Target) -> str:
        self._prune()
        job_id = self._next_id()
        jobdir = self._dir(job_id)
        try:
            jobdir.mkdir()
            with open(jobdir / "job.pkl", "wb") as fh:
                pickle.dump(job, fh)
            with open(jobdir / "run.log", "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "probe_pushgateway.agent.localrun", str(jobdir)],
                    cwd=jobdir, env=self.environment(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
        except (OSError, pickle.PicklingError) as exc:
            raise BackendError(f"starting the local run of the probe job for {target}: {exc}") from None
        self._procs[job_id] = proc
        info = {"pid": proc.pid, "site": target.site, "ce": target.ce, "submitted": time.time()}
        (jobdir / "info.json").write_text(json.dumps(info))
        return job_id

    def _alive(self, job_id: str, pid: int) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"probe_pushgateway.agent.localrun" in cmdline and str(self._dir(job_id)).encode() in cmdline

    def status(self, job_ids: list[str]) -> dict[str, JobState]:
        out = {}
        for job_id in job_ids:
            jobdir = self._dir(job_id)
            try:
                info = json.loads((jobdir / "info.json").read_text())
            except (OSError, ValueError):
                out[job_id] = JobState(job_id, UNKNOWN)
                continue
            state = JobState(job_id, "Running", info.get("site"), info.get("submitted"), info.get("submitted"))
            try:
                result = json.loads((jobdir / "result.json").read_text())
                state.status, state.ended = result["status"], result.get("finished")
            except (OSError, ValueError, KeyError):
                if not self._alive(job_id, int(info.get("pid", 0))):
                    # died without a result (or its result just appeared: read once more)
                    try:
                        state.status = json.loads((jobdir / "result.json").read_text())["status"]
                    except (OSError, ValueError, KeyError):
                        state.status = "Failed"
            out[job_id] = state
        return out

    def kill(self, job_id: str) -> None:
        jobdir = self._dir(job_id)
        try:
            info = json.loads((jobdir / "info.json").read_text())
        except (OSError, ValueError):
            return
        pid = int(info.get("pid", 0))
        if pid and self._alive(job_id, pid):
            try:
                os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while self._alive(job_id, pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self._alive(job_id, pid):
                    os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                raise BackendError(f"killing local probe job {job_id} (pid {pid}): {exc.strerror}") from None
        proc = self._procs.pop(job_id, None)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(jobdir, ignore_errors=True)

    def read_output(self, job_id: str, name: str, limit: int) -> str:
        """``name`` from the job's working directory, which DIRAC's local mode keeps (``Local_*_JobDir``):
        the file the job wrapper would have put in the output sandbox."""
        found = sorted(self._dir(job_id).glob(f"Local_*_JobDir/{name}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise NoOutput(f"output of local probe job {job_id}: no {name} (no output sandbox)")
        try:
            with open(found[-1], "rb") as fh:
                return fh.read(limit).decode(errors="replace")
        except OSError as exc:
            raise BackendError(f"output of local probe job {job_id}: {exc.strerror}") from None

    def _prune(self) -> None:
        """Remove the directories of all but the newest finished local jobs."""
        finished = []
        for p in self.workdir.glob("job_*"):
            if (p / "result.json").exists() and p.name[4:].isdigit():
                finished.append((int(p.name[4:]), p))
        for _, p in sorted(finished)[:-self.keep_finished or None]:
            shutil.rmtree(p, ignore_errors=True)
            self._procs.pop(f"local-{p.name[4:]}", None)


def make_backend(cfg, targets: list[Target] | None) -> Backend:
    """The back-end named in the configuration (``targets`` feed the local back-end's DIRAC cfg)."""
    b = cfg.backend
    if b["type"] == "local":
        workdir = Path(b["workdir"]) if b["workdir"] else cfg.state_dir / "local"
        return LocalBackend(workdir, targets or [], b["setup"], b["vo"])
    return DiracBackend(b["config_files"], b["require_auth"])
