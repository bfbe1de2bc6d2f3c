"""The simulator's fast writer (bes_simulator.writer.DiracWriter, direct SQL) against DIRAC's own
code: one short identical scenario through both, compared action by action on the column-effect
pattern the exporter depends on: which Jobs (and PilotAgents) columns change, whether LastUpdateTime
moves, the Status and MinorStatus (pilots: StatusReason) it leaves, and which LoggingInfo records
(final statuses, "Job Rescheduled") are added.

Each action runs at the start of a fresh second for both writers, so a LastUpdateTime write is always
visible (1 s resolution)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pytest
from dirac_harness import (
    FINAL,
    MAX_RESCHEDULING,
    MISSING_SANDBOX,
    MISSING_SANDBOX_ERROR,
    ROW_COLUMNS,
    DiracHarness,
    Row,
)

from bes_simulator.writer import DiracWriter

SITE, CE, QUEUE = "BES.USTC.cn", "ce.ustc.edu.cn", "long"
OTHER_SITE = "BES.UCAS.cn"
COMPARED = [c for c in ROW_COLUMNS if c not in ("LastUpdateTime", "SubmissionTime", "JobGroup")]
PILOT_COLUMNS = ("Status", "StatusReason", "GridSite", "DestinationSite", "Queue", "GridType", "BenchMark",
                 "CurrentJobID", "LastUpdateTime", "SubmissionTime")


@dataclass(frozen=True)
class Effect:
    """What one action did to one row."""

    changed: frozenset[str]
    lut_moved: bool
    logged: tuple[str, ...]  # LoggingInfo records added: the final status, "rescheduled" or "other"
    state: tuple = ()  # (Status, MinorStatus) of the job row after it, (Status, StatusReason) of a pilot row


def next_second() -> None:
    """Sleep until 50 ms into the next wall-clock second (the database runs on the same clock)."""
    now = time.time()
    time.sleep(1.05 - (now % 1.0))


def log_rows(env, job: int | None) -> list[tuple[str, str]]:
    if job is None:
        return []
    return list(env.query(f"SELECT Status, MinorStatus FROM `{env.dbs.logdb}`.LoggingInfo WHERE JobID=%s"
                          " ORDER BY SeqNum", (job,)))


def last_record(env, job: int) -> tuple:
    """(Status, MinorStatus, ApplicationStatus, StatusSource) of the job's latest LoggingInfo record."""
    return env.query(f"SELECT Status, MinorStatus, ApplicationStatus, StatusSource FROM `{env.dbs.logdb}`.LoggingInfo"
                     " WHERE JobID=%s ORDER BY SeqNum DESC LIMIT 1", (job,))[0]


def significant(rows: list[tuple[str, str]]) -> list[str]:
    """The LoggingInfo records the exporter reads (lives rescheduled between two scrapes): final statuses
    and the "Job Rescheduled" markers."""
    return ["rescheduled" if m == "Job Rescheduled" else s for s, m in rows if s in FINAL or m == "Job Rescheduled"]


def effect(before: Row | None, after: Row | None, log: list[str]) -> Effect:
    if before is None or after is None:
        gone = "row removed" if after is None else "row inserted"
        return Effect(frozenset({gone}), False, tuple(log))
    changed = frozenset(c for c in COMPARED if getattr(before, c) != getattr(after, c))
    return Effect(changed, after.LastUpdateTime != before.LastUpdateTime, tuple(log),
                  (after.Status, after.MinorStatus))


def pilot_effect(before: tuple, after: tuple) -> Effect:
    changed = frozenset(c for c, b, a in zip(PILOT_COLUMNS, before, after) if b != a and c != "LastUpdateTime")
    return Effect(changed, before[-2] != after[-2], (), pilot_state(after))


def pilot_state(row: tuple) -> tuple[str, str]:
    return row[PILOT_COLUMNS.index("Status")], row[PILOT_COLUMNS.index("StatusReason")]


@pytest.fixture(scope="module")
def effects(module_env) -> dict[str, tuple[Effect, Effect]]:
    """{action: (DIRAC's effect, DiracWriter's effect)} over one scenario run through both."""
    env = module_env
    h: DiracHarness = env.harness()
    w = DiracWriter(env.conn, env.dbs)
    out: dict[str, tuple[Effect, Effect]] = {}
    state = {"jd": None, "jw": None}

    def pilot_row(pid_or_ref) -> tuple:
        col = "PilotJobReference" if isinstance(pid_or_ref, str) else "PilotID"
        return env.query(f"SELECT {', '.join(PILOT_COLUMNS)} FROM `{env.dbs.pilotdb}`.PilotAgents"
                         f" WHERE {col}=%s", (pid_or_ref,))[0]

    def compare(name: str, dirac, writer) -> None:
        next_second()
        jd, jw = state["jd"], state["jw"]
        bd, bw = (h.row(jd) if jd else None), (h.row(jw) if jw else None)
        nd, nw = len(log_rows(env, jd)), len(log_rows(env, jw))
        dirac()
        writer()
        jd, jw = state["jd"], state["jw"]
        ld, lw = significant(log_rows(env, jd)[nd:]), significant(log_rows(env, jw)[nw:])
        out[name] = (effect(bd, h.row(jd), ld), effect(bw, h.row(jw), lw))

    def submit_d(site: str | list[str] = SITE) -> None:
        state["jd"] = h.submit(site)

    def submit_w(site: str = SITE) -> None:
        state["jw"] = w.submit(site=site, job_group="bes_analysis")

    def to_running() -> None:
        """Optimizers, match (with the pilots above) and a Running report on both sides, not compared."""
        h.optimize(state["jd"])
        w.optimize(state["jw"])
        h.match(state["jd"], SITE, pilot_d, CE)
        w.match(state["jw"], SITE, pilot_id=pilot_w, ce=CE)
        h.report(state["jd"], "Running", "Job Initialization")
        w.set_status(state["jw"], "Running", "Job Initialization")

    next_second()
    pilot_d = h.submit_pilots(SITE, CE, QUEUE, 1)[0]
    pilot_w = w.submit_pilot(SITE, CE, QUEUE)
    out["pilot submission: pilot row"] = tuple(
        Effect(frozenset(c for c, v in zip(PILOT_COLUMNS, row) if v not in (None, "", 0, 0.0, "Unknown")),
               row[-2] == row[-1], (), pilot_state(row)) for row in (pilot_row(pilot_d), pilot_row(pilot_w)))
    compare("submit", submit_d, submit_w)
    submitted = (h.row(state["jd"]), h.row(state["jw"]))
    compare("optimize", lambda: h.optimize(state["jd"]), lambda: w.optimize(state["jw"]))
    pd0, pw0 = pilot_row(pilot_d), pilot_row(pilot_w)
    compare("match", lambda: h.match(state["jd"], SITE, pilot_d, CE),
            lambda: w.match(state["jw"], SITE, pilot_id=pilot_w, ce=CE))
    out["match: pilot row"] = (pilot_effect(pd0, pilot_row(pilot_d)), pilot_effect(pw0, pilot_row(pilot_w)))
    compare("report Running", lambda: h.report(state["jd"], "Running", "Job Initialization"),
            lambda: w.set_status(state["jw"], "Running", "Job Initialization", source="JobWrapper"))
    compare("heartbeat", lambda: h.heartbeat(state["jd"]), lambda: w.heartbeat(state["jw"]))
    compare("report minor only", lambda: h.report(state["jd"], minor="Application"),
            lambda: w.set_status(state["jw"], minor="Application"))
    compare("report application status only", lambda: h.report(state["jd"], app="Running"),
            lambda: w.set_status(state["jw"], app="Running"))
    compare("report Done", lambda: h.report(state["jd"], "Done", "Execution Complete", app="Finished"),
            lambda: w.set_status(state["jw"], "Done", "Execution Complete", "Finished"))
    compare("heartbeat after Done", lambda: h.heartbeat(state["jd"]), lambda: w.heartbeat(state["jw"]))
    compare("StalledJobAgent: Stalled", lambda: h.mark_stalled(state["jd"]), lambda: w.stall(state["jw"]))
    pd0, pw0 = pilot_row(pilot_d), pilot_row(pilot_w)
    compare("pilot status update", lambda: h.pilot_status(pilot_d, "Done"),
            lambda: w.set_pilot_status(pilot_w, "Done", "Updated by SiteDirector"))
    out["pilot status update: pilot row"] = (pilot_effect(pd0, pilot_row(pilot_d)),
                                             pilot_effect(pw0, pilot_row(pilot_w)))
    compare("StalledJobAgent: Failed", lambda: h.fail_stalled(state["jd"]), lambda: w.fail_stalled(state["jw"]))
    compare("reschedule", lambda: h.reschedule(state["jd"]), lambda: w.reschedule(state["jw"]))
    h.optimize(state["jd"])
    w.optimize(state["jw"])
    compare("kill", lambda: h.kill(state["jd"]), lambda: w.kill(state["jw"]))
    compare("delete (phase 1)", lambda: h.delete(state["jd"]), lambda: w.delete(state["jw"]))
    compare("remove (phase 2)", lambda: h.remove(state["jd"]), lambda: w.remove(state["jw"]))
    # a second life: a JDL naming two sites, rescheduled while Running, then deleted while Waiting
    compare("submit to several sites", lambda: submit_d([SITE, OTHER_SITE]), lambda: submit_w("Multiple"))
    to_running()
    compare("reschedule while Running (Site from the JDL)", lambda: h.reschedule(state["jd"]),
            lambda: w.reschedule(state["jw"]))
    h.optimize(state["jd"])
    w.optimize(state["jw"])
    compare("delete while Waiting (killed first)", lambda: h.delete(state["jd"]), lambda: w.delete(state["jw"]))
    # a third: deleted while Running, which DIRAC only kills
    submit_d()
    submit_w()
    to_running()
    compare("delete while Running (ends Killed)", lambda: h.delete(state["jd"]), lambda: w.delete(state["jw"]))
    # a fourth: JobPath passes it on, JobSanity fails it (its input sandbox was never uploaded)
    state["jd"] = h.submit(SITE, sandbox=MISSING_SANDBOX)
    h.run_executor(state["jd"], "JobPath")
    state["jw"] = w.submit(site=SITE, job_group="bes_analysis")
    w.set_attributes(state["jw"], Status="Checking", MinorStatus="JobSanity")
    compare("optimizer failure (JobSanity)", lambda: h.run_executor(state["jd"], "JobSanity"),
            lambda: w.fail_optimizer(state["jw"], "JobSanity", MISSING_SANDBOX_ERROR))
    out["optimizer failure: ApplicationStatus, LoggingInfo record"] = tuple(
        Effect(frozenset(), False, (), (h.row(job).ApplicationStatus, *last_record(env, job)))
        for job in (state["jd"], state["jw"]))
    # a fifth: the JobWrapper cannot download its input sandbox (JobWrapperUtilities.rescheduleFailedJob: the
    # JobReport's stored records in one setJobStatusBulk, then JobManager.rescheduleJob), until MaxRescheduling
    submit_d()
    submit_w()
    to_running()

    def wrapper_d() -> None:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        updates = [{"MinorStatus": "Downloading InputSandbox"}, {"MinorStatus": "Failed Downloading InputSandbox"},
                   {"ApplicationStatus": "Failed Downloading InputSandbox "},
                   {"Status": "Rescheduled", "MinorStatus": "Downloading InputSandbox"}]
        h.report_bulk(state["jd"], [(now + dt.timedelta(microseconds=10 * i), {**u, "Source": "JobWrapper"})
                                    for i, u in enumerate(updates)])
        h.reschedule(state["jd"])

    nd, nw = (len(log_rows(env, state[k])) for k in ("jd", "jw"))
    stored = ("Downloading InputSandbox", "Failed Downloading InputSandbox")
    compare("JobWrapper reschedule (input sandbox)", wrapper_d,
            lambda: w.wrapper_reschedule(state["jw"], "Downloading InputSandbox", stored=stored))
    out["JobWrapper reschedule: LoggingInfo records, ApplicationStatus"] = tuple(
        Effect(frozenset(), False, tuple(env.query(
            f"SELECT Status, MinorStatus, ApplicationStatus, StatusSource FROM `{env.dbs.logdb}`.LoggingInfo"
            " WHERE JobID=%s ORDER BY SeqNum", (job,))[n:]), (h.row(job).ApplicationStatus,))
        for job, n in ((state["jd"], nd), (state["jw"], nw)))
    w.max_rescheduling = MAX_RESCHEDULING  # the harness's JobDB MaxRescheduling
    for _ in range(MAX_RESCHEDULING - 1):
        h.reschedule(state["jd"])
        w.reschedule(state["jw"])
    compare("reschedule beyond MaxRescheduling (Failed)", lambda: h.reschedule(state["jd"]),
            lambda: w.reschedule(state["jw"]))
    # submission: the columns the exporter reads are set, and LastUpdateTime = SubmissionTime
    d, wr = submitted
    out["submit: LastUpdateTime = SubmissionTime"] = tuple(
        Effect(frozenset(c for c in ("Status", "MinorStatus", "Site", "JobGroup") if getattr(r, c)),
               r.LastUpdateTime == r.SubmissionTime, ()) for r in (d, wr))
    return out


ACTIONS = [
    "pilot submission: pilot row", "submit", "submit: LastUpdateTime = SubmissionTime", "optimize", "match",
    "match: pilot row", "report Running", "heartbeat", "report minor only", "report application status only",
    "report Done", "heartbeat after Done", "StalledJobAgent: Stalled", "pilot status update: pilot row",
    "StalledJobAgent: Failed", "reschedule", "kill", "delete (phase 1)", "remove (phase 2)",
    "submit to several sites",
    "reschedule while Running (Site from the JDL)",
    "delete while Waiting (killed first)", "delete while Running (ends Killed)",
    "optimizer failure (JobSanity)", "optimizer failure: ApplicationStatus, LoggingInfo record",
    "JobWrapper reschedule (input sandbox)", "JobWrapper reschedule: LoggingInfo records, ApplicationStatus",
    "reschedule beyond MaxRescheduling (Failed)",
]


@pytest.mark.parametrize("action", ACTIONS)
def test_writer_has_dirac_column_effects(effects, action):
    dirac, writer = effects[action]
    assert writer == dirac, f"{action}: DIRAC {dirac}, DiracWriter {writer}"


def test_writer_actions_on_both_schema_generations(dirac):
    """The same fixed actions on the 9.1 and the 8.0 schema (there is no DIRAC 8 here to compare with): every
    statement fits both, and 8.0's JobParameters go to the attic on a reschedule as DIRAC 8's rescheduleJob
    moves them."""
    w, q = dirac.writer, dirac.query
    jobs, pilots = f"`{dirac.dbs.jobdb}`", f"`{dirac.dbs.pilotdb}`"
    pilot = w.submit_pilot(SITE, CE, QUEUE)
    assert q(f"SELECT Status, StatusReason, GridSite, DestinationSite, Queue FROM {pilots}.PilotAgents"
             " WHERE PilotID=%s", (pilot,)) == (("Submitted", "Successfully submitted by the SiteDirector", SITE,
                                                   CE, QUEUE),)
    job = w.submit()
    w.optimize(job)
    w.match(job, SITE, pilot_id=pilot, ce=CE)
    assert q(f"SELECT Status, StatusReason, CurrentJobID, BenchMark > 0 FROM {pilots}.PilotAgents WHERE PilotID=%s",
             (pilot,)) == (("Running", "Not given", job, 1),)
    assert q(f"SELECT PilotID FROM {pilots}.JobToPilotMapping WHERE JobID=%s", (job,)) == ((pilot,),)
    w.set_status(job, "Running", "Job Initialization")
    w.set_job_parameters(job, {"HostName": "wn01.ihep.ac.cn"})
    row = "SELECT Status, MinorStatus, ApplicationStatus, Site, RescheduleCounter, HeartBeatTime IS NOT NULL," \
          f" StartExecTime IS NOT NULL FROM {jobs}.Jobs WHERE JobID=%s"
    assert q(row, (job,)) == (("Running", "Job Initialization", "Unknown", SITE, 0, 1, 1),)
    w.stall(job)
    w.fail_stalled(job)
    assert q(f"SELECT Command FROM {jobs}.JobCommands WHERE JobID=%s", (job,)) == (("Kill",),)
    w.reschedule(job)
    assert q(row, (job,)) == (("Received", "Job Rescheduled", "Unknown", "ANY", 1, 1, 1),)
    if w.old:
        assert q(f"SELECT COUNT(*) FROM {jobs}.JobParameters WHERE JobID=%s", (job,)) == ((0,),)
        assert q(f"SELECT Name, Value, RescheduleCycle FROM {jobs}.AtticJobParameters WHERE JobID=%s",
                 (job,)) == (("HostName", "wn01.ihep.ac.cn", 0),)
    w.optimize(job)
    w.delete(job)
    assert q(row, (job,))[0][:2] == ("Deleted", "Checking accounting")
    w.remove(job)
    assert q(f"SELECT COUNT(*) FROM {jobs}.Jobs WHERE JobID=%s", (job,)) == ((0,),)
