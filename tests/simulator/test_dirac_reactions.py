"""DIRAC's reactions as the engine models them (issue #19), each against the rule read from DIRAC's code and,
where DIRAC's class runs without services, against DIRAC's own class: the JobWrapper's reschedules, the
StalledJobAgent, PilotEfficiency, the RSSMachine and the opt-in JobEfficiency. No database: a recording writer."""

from __future__ import annotations

import random

import pytest
from sim_helpers import SMALL

from bes_simulator import engine as eng
from bes_simulator import report
from bes_simulator.clock import SimClock
from bes_simulator.engine import Engine, Job, Pilot
from bes_simulator.events import EventLog
from bes_simulator.scenarios import parse_spec, resolve
from bes_simulator.topology import load_topology
from bes_simulator.writer import MAX_RESCHEDULING


class FixedDb:
    """A database clock standing still (the engine only maps simulated seconds onto it)."""

    def now(self) -> float:
        return 1.8e9


class RecordingWriter:
    """Records each DIRAC write as (simulated second, method, args); keeps JobDB's RescheduleCounter."""

    old = False
    last_pilot_reference = "htcondor://ce/1"

    def __init__(self, engine_now):
        self.now, self.calls, self.counter = engine_now, [], {}

    def reschedule(self, job_id, *, source="JobManager", when=None):
        self.calls.append((self.now(), "reschedule", (job_id, source)))
        n = self.counter.get(job_id, 0) + 1
        if n > MAX_RESCHEDULING:
            return False
        self.counter[job_id] = n
        return True

    def wrapper_reschedule(self, job_id, minor, *, stored=(), when=None):
        self.calls.append((self.now(), "wrapper_reschedule", (job_id, minor, stored)))
        return self.reschedule(job_id, when=when)

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((self.now(), name, args))
        return record


def _engine(job_efficiency: bool = False, scenarios=()) -> Engine:
    topo = load_topology(SMALL)
    topo.dirac["job_efficiency"] = job_efficiency
    clock = SimClock(FixedDb(), 1.0)
    scs = [resolve(parse_spec(s), topo) for s in scenarios]
    log = EventLog(None, clock, {}, scs)
    engine = Engine(topo, None, clock, random.Random(3), log, scs)
    engine.w = RecordingWriter(lambda: engine.now)
    return engine


def _running(engine: Engine, job: Job, site_name: str, t: float) -> Job:
    """The job matched to a pilot on the site's first worker node, Running since ``t``."""
    site = engine.topo.site(site_name)
    ce = site.ces[0]
    pilot = Pilot(len(engine.pilots) + 1, ce, "ref")
    pilot.host, pilot.state, pilot.db = ce.hosts[0], "running", "Running"
    ce.active += 1
    ce.hosts[0].used += 1
    engine.pilots[pilot.id] = pilot
    job.site, job.host, job.pilot, job.phase, job.db, job.last, job.started = (
        site, ce.hosts[0], pilot, "running", "Running", t, t)
    engine.tracked[job.id] = job
    return job


def _calls(engine: Engine, name: str) -> list:
    return [c for c in engine.w.calls if c[1] == name]


# ---- JobWrapper: rescheduleFailedJob, RescheduleDelays, MaxRescheduling, Site reset ---------------------------

def test_input_fetch_reschedules_with_delays_then_fails_at_max_rescheduling():
    engine = _engine(scenarios=["input-fetch:BES.WHU.cn@0"])
    sc = engine.scenarios[0]
    engine._scenario_start(sc)
    site = engine.topo.site("BES.WHU.cn")
    job = Job(7, site, 0.0)
    for attempt in range(MAX_RESCHEDULING + 1):
        job = _running(engine, job, "BES.WHU.cn", engine.now)
        engine.after(0, engine._wrapper_reschedule, job, "sandbox", sc)
        engine.run_until(engine.now + 5000)
        assert job.phase == "ended" and job.pilot.state == "ended"  # StopOnApplicationFailure: the pilot stops
        if attempt < MAX_RESCHEDULING:  # back in the site's queue: the JDL's Site (target) is the site again
            job = engine.site_queue[site].pop()
            assert (job.id, job.target, job.reschedules, job.db) == (7, site, attempt + 1, "Waiting")
    holds, releases = _calls(engine, "hold"), _calls(engine, "release")
    assert [c[2] for c in holds] == [(7, 1), (7, 2), (7, 3)]
    assert [r[0] - h[0] for h, r in zip(holds, releases)] == pytest.approx([60.0, 180.0, 300.0])
    wrapper = _calls(engine, "wrapper_reschedule")
    assert len(wrapper) == 4 and {c[2][1:] for c in wrapper} == {
        ("Downloading InputSandbox", ("Downloading InputSandbox", "Failed Downloading InputSandbox"))}
    assert sc.record["reschedules"] == {"rescheduled": 3, "failed": 1}
    assert job.db == "Failed" and engine.counts["failed"] == 1
    assert sc.record["dirac_actions"]["JobWrapper:Failed"]["minor"] == "Maximum of reschedulings reached"
    assert sc.record["dirac_actions"]["JobWrapper:Rescheduled"]["count"] == 3


def test_input_fetch_on_a_host_and_for_input_data():
    engine = _engine(scenarios=["input-fetch:wn01.whu.edu.cn@0"])
    sc = engine.scenarios[0]
    engine._scenario_start(sc)
    assert sc.host is not None and engine.fetch_broken == {sc.host: sc}
    job = _running(engine, Job(8, None, 0.0), "BES.WHU.cn", 0.0)
    engine._wrapper_reschedule(job, "data", sc)
    assert _calls(engine, "wrapper_reschedule")[0][2] == (8, "Input Data Resolution", ("Input Data Resolution",))
    engine.run_until(2000)
    assert [j.id for j in engine.any_queue] == [8]  # an ANY job: back in the common queue, Site 'ANY' again


def test_stalled_job_agent_kick_counts_against_max_rescheduling():
    engine = _engine()
    job = _running(engine, Job(9, None, 0.0), "BES.USTC.cn", 0.0)
    job.phase, job.db = "matched", "Matched"
    engine.w.counter[9] = MAX_RESCHEDULING
    engine.now = 7201.0
    engine._stalled_agent()
    assert _calls(engine, "reschedule")[0][2] == (9, "StalledJobAgent")
    assert job.db == "Failed" and 9 not in engine.tracked


# ---- StalledJobAgent -----------------------------------------------------------------------------------------

def test_stalled_job_agent_ages_by_the_later_of_heartbeat_and_update():
    engine = _engine()
    st, ft = engine.dirac["stalled_time"], engine.dirac["failed_time"]
    quiet = _running(engine, Job(1, None, 0.0), "BES.USTC.cn", 0.0)
    updated = _running(engine, Job(2, None, 0.0), "BES.USTC.cn", 0.0)
    engine.now = st - 100
    engine._report(updated, None, "Application")  # a status report moves LastUpdateTime, not the heartbeat
    engine.now = st + 1
    engine._stalled_agent()
    assert (quiet.db, updated.db) == ("Stalled", "Running")
    assert [c[2] for c in _calls(engine, "stall")] == [(1,)]
    # Marked this cycle, judged at the next one: pilot still Running -> Failed only failedTime after the mark.
    engine.now += 3600
    engine._stalled_agent()
    assert quiet.db == "Stalled"
    engine.now = st + 1 + ft + 1
    engine._stalled_agent()
    assert quiet.db == "Failed"
    assert _calls(engine, "fail_stalled")[-1][2] == (1,)
    assert engine.log.doc["dirac_actions"][-1]["minor"] == f"Stalling for more than {int(ft)} sec"


def test_stalled_job_fails_at_the_next_cycle_when_its_pilot_is_not_running():
    engine = _engine()
    job = _running(engine, Job(3, None, 0.0), "BES.USTC.cn", 0.0)
    engine.now = engine.dirac["stalled_time"] + 1
    engine._stalled_agent()
    assert job.db == "Stalled"
    job.pilot.db = "Done"
    engine.now += engine.dirac["stalled_agent_period"]
    engine._stalled_agent()
    assert job.db == "Failed" and engine.log.doc["dirac_actions"][-1]["minor"] == "Job stalled: pilot not running"


# ---- RSS: PilotEfficiency, RSSMachine, JobEfficiency (opt-in) ------------------------------------------------

@pytest.mark.parametrize(("open_pilots", "failed", "recent", "eff", "status"), [
    (0, 0, [], None, "Unknown"),             # no pilot: no record, no decision
    (1, 0, [True], 50.0, "Banned"),          # two pilots are enough: DIRAC has no minimum count
    (0, 0, [True] * 2 + [False] * 18, 90.0, "Degraded"),
    (5, 4, [True], 90.0, "Degraded"),        # Failed pilots count whatever their age, open ones too
    (0, 0, [True] + [False] * 19, 95.0, "Active"),
])
def test_pilot_efficiency_as_pilot_agents_db_and_the_policy_compute_it(open_pilots, failed, recent, eff, status):
    got = eng.pilot_efficiency(open_pilots, failed, recent)
    assert got is None if eff is None else got == pytest.approx(eff)
    assert eng.pilot_efficiency_status(eff) == status
    pytest.importorskip("DIRAC")
    from DIRAC.ResourceStatusSystem.Policy.PilotEfficiencyPolicy import PilotEfficiencyPolicy
    value = [{"PilotJobEff": eff}] if eff is not None else []
    assert PilotEfficiencyPolicy._evaluate({"OK": True, "Value": value})["Value"]["Status"] == status


@pytest.mark.parametrize(("done", "failed"), [(5, 4), (9, 1), (8, 2), (4, 6), (5, 5), (19, 1), (30, 0)])
def test_job_efficiency_rule_is_dirac_policy(done, failed):
    pytest.importorskip("DIRAC")
    from DIRAC.ResourceStatusSystem.Policy.JobEfficiencyPolicy import JobEfficiencyPolicy
    result = JobEfficiencyPolicy._evaluate({"OK": True, "Value": [{"Done": done, "Completed": 0, "Failed": failed}]})
    assert eng.job_efficiency_status(done, failed) == result["Value"]["Status"]


@pytest.mark.parametrize("current", ["Active", "Degraded", "Probing", "Banned", "Unknown"])
@pytest.mark.parametrize("candidate", ["Active", "Degraded", "Probing", "Banned", "Error"])
def test_rss_transitions_are_dirac_rss_machine(current, candidate):
    pytest.importorskip("DIRAC")
    from DIRAC.ResourceStatusSystem.PolicySystem.StateMachine import RSSMachine
    assert eng.rss_next(current, candidate) == RSSMachine(current).getNextState(candidate)["Value"]


def _fail_jobs(engine: Engine, site_name: str, n: int) -> None:
    site = engine.topo.site(site_name)
    engine.site_finals[site].extend((engine.now, False) for _ in range(n))


def test_job_efficiency_does_nothing_by_default():
    engine = _engine()
    _fail_jobs(engine, "BES.USTC.cn", 30)
    engine._rss()
    assert set(engine.site_status.values()) == {"Active"}
    assert not [a for a in engine.log.doc["dirac_actions"] if a["action"].startswith("JobEfficiency")]
    assert not _calls(engine, "set_site_status")


def test_job_efficiency_when_opted_in_bans_then_probes_then_reactivates():
    engine = _engine(job_efficiency=True)
    site = engine.topo.site("BES.USTC.cn")
    _fail_jobs(engine, site.name, 12)
    engine._rss()
    assert engine.site_status[site] == "Banned" and not engine._matchable(site)
    engine.now += 600  # the failures still in the 30-min window: still Banned
    engine._rss()
    assert engine.site_status[site] == "Banned"
    engine.now += engine.dirac["job_efficiency_window"]  # window empty: Unknown, combined with AlwaysActive
    engine._rss()
    assert engine.site_status[site] == "Probing" and not engine._matchable(site)
    engine.now += engine.dirac["rss_period"]
    engine._rss()
    assert engine.site_status[site] == "Active" and engine._matchable(site)
    actions = [a["action"] for a in engine.log.doc["dirac_actions"] if a.get("site") == site.name]
    assert actions == ["JobEfficiency Banned", "JobEfficiency Probing", "JobEfficiency Active"]
    assert [c[2][:2] for c in _calls(engine, "set_site_status")] == [
        (site.name, "Banned"), (site.name, "Probing"), (site.name, "Active")]


def test_pilot_efficiency_bans_a_ce_and_it_leaves_banned_only_through_probing():
    engine = _engine()
    ce = engine.topo.ce("ce01.whu.edu.cn")
    engine.ce_finals[ce].extend((engine.now, True) for _ in range(2))  # two aborted pilots: 0 %
    engine._rss()
    assert engine.ce_status[ce] == "Banned"
    engine.now += engine.dirac["pilot_efficiency_window"] + 1  # aborts a day old: no record, Unknown
    engine._rss()
    assert engine.ce_status[ce] == "Probing"
    engine.now += engine.dirac["rss_period"]
    engine._rss()
    assert engine.ce_status[ce] == "Active"


# ---- the report's "DIRAC reacts" ------------------------------------------------------------------------------

def test_report_uses_only_the_modelled_reactions():
    def sc(actions: dict) -> dict:
        return {"name": "input-fetch", "target": {"site": "BES.WHU.cn"}, "params": {}, "started": {"sim": 0.0},
                "ended": None, "dirac_expected": {}, "dirac_actions": actions}

    doc = {"clock": {"origin_epoch": 1.7e9, "speed": 60.0}, "scenarios": [
        sc({"Operator:Banned": {"sim": 10.0}, "JobWrapper:Rescheduled": {"sim": 50.0},
            "JobWrapper:Failed": {"sim": 900.0}}),
        sc({"RSS:SomethingElse Banned": {"sim": 10.0}})]}
    first, other = report.build(doc, [])
    assert (first["dirac_reacts"], first["dirac_reacts_after"]) == ("JobWrapper:Rescheduled", 50.0)
    assert (first["dirac_decides"], first["dirac_decides_after"]) == ("JobWrapper:Failed", 900.0)
    assert other["dirac_reacts"] == other["dirac_decides"] == "none"
