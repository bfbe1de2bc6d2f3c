"""bench/alerts: the alert campaign. Many faults of every scenario kind, at random targets and times, watched
by the whole suite; how often and how fast the shipped rules page the right target, and how often they page
for nothing.

    bench/alerts --json campaign.json [--seed N] [--days 3] [--per-kind 6]    # ~75 real minutes
    bench/alerts --quick --json quick.json                                    # every kind once, ~4 minutes

1. Plans a seeded timeline (``bes-simulate --timeline`` format): every scenario kind ``bes_simulator.scenarios``
   knows (read at run time, so a new kind joins by itself), ``--per-kind`` times each, at random targets of
   the simulator's topology (a probe-only fault on a probed site), random starts and durations. Faults on the
   same site (or owner) never overlap and are ``PLACE_GAP`` apart; a fault hitting every site overlaps nothing
   and keeps ``GRACE`` from every other; the grid is healthy for the first ``WARMUP`` and the last ``GRACE``.
2. Runs the demo stack on it (``bes_demo.cli``: the simulator at ``--speed`` 60x, the real exporter,
   Pushgateway, probe agents, Prometheus with the shipped rules on the demo's compressed clock, Alertmanager,
   the alert log) on free loopback ports, its own directory and uniquely named databases, until the planned
   end; then stops everything and drops the databases, also on error or Ctrl-C.
3. Scores with ``bes_simulator.report``: per fault, the first alert naming its target within its run plus
   ``GRACE``, DIRAC's first and decisive reactions, the pages in the wrong place; false alarms are alerts
   after ``WARMUP`` that no fault active then (or ended less than ``GRACE`` before) accounts for.

Cost: one simulated day is 24 real minutes at 60x; the stack takes about a core and a half of a 2-core machine
(the simulator's pace, a probe job every simulated hour on four sites). The simulator notes every stall behind
the database clock; false alarms right after one are counted apart (a stall ages every heartbeat).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pymysql
import yaml

from bes_demo import cli, services
from bes_simulator import report, scenarios
from bes_simulator.owners import USERS
from bes_simulator.topology import Topology, load_topology

from .measure import OneLineParser, machine

PROG = "bench/alerts"
WARMUP = 6000.0  # simulated s from the simulator's start: 1h warm-up written at once, the stack up by ~1h20m
GRACE = 3600.0  # a fault's alerts may come this long after it ends (30-min windows, `for:`, the next probe)
PLACE_GAP = 7200.0  # healthy stretch between two faults on the same site or owner
PROBE_ONLY = ("cvmfs-broken",)  # kinds only the probes see: their targets are probed sites
DURATION = (5400, 16200)  # a per-place fault lasts 1h30m-4h30m (simulated seconds)
GLOBAL_DURATION = (1200, 3600)  # a fault of every site, 20 min-1 h
QUICK_DURATION = (5400, 6600)  # --quick: every per-place fault at once for 1h30m-1h50m, then each global one
QUICK_GAP = 1200.0  # --quick: before and after each global fault
STALL_BEFORE, STALL_AFTER = 90.0, 5.0  # real s: an alert this soon after (before) a stall may be the stall's


class CampaignError(Exception):
    """The campaign could not run; one line that says what to do."""


@dataclass
class Fault:
    kind: str
    at: float
    duration: float
    target: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    places: frozenset[str] = frozenset()

    @property
    def end(self) -> float:
        return self.at + self.duration

    @property
    def name(self) -> str:
        return fault_name(self.kind, self.target, self.at)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.kind, "at": hm(self.at), "duration": hm(self.duration)}
        if self.target:
            out["target"] = self.target
        return {**out, **self.params}


def hm(seconds: float) -> str:
    """Simulated seconds as ``26h05m`` (what timelines and the simulator's durations read)."""
    m = int(round(seconds / 60))
    return f"{m // 60}h{m % 60:02d}m"


def fault_name(kind: str, target: str | None, at: float) -> str:
    """``KIND[:TARGET]@T``, as ``bes-simulate --scenario`` writes a fault."""
    return f"{kind}{':' + target if target else ''}@{hm(at)}"


def kinds() -> list[str]:
    """Every scenario kind the simulator knows now."""
    return list(scenarios.PARAMS)


def is_global(kind: str) -> bool:
    """The kind hits every site (no target)."""
    return kind in scenarios.TARGET_KIND and scenarios.TARGET_KIND[kind] is None


def pick_target(kind: str, rng: random.Random, topo: Topology,
                probe_sites: list[str]) -> tuple[str | None, dict[str, Any], frozenset[str]]:
    """A random target for ``kind`` (of one of its target kinds, e.g. ``host|site``), its timeline options and
    the places it occupies (``site:``, ``owner:``; ``*`` for every site). Options stay at their defaults but for
    ``user-broken``'s focus site."""
    what = scenarios.TARGET_KIND.get(kind, "?")
    options = scenarios.PARAMS.get(kind, {})
    if what is None:
        return None, {}, frozenset({"*"})
    what = rng.choice(what.split("|"))
    if what == "host":
        host = rng.choice([h for s in topo.sites for c in s.ces for h in c.hosts])
        return host.name, {}, frozenset({f"site:{host.ce.site.name}"})
    if what == "ce":
        ce = rng.choice([c for s in topo.sites for c in s.ces])
        return ce.name, {}, frozenset({f"site:{ce.site.name}"})
    if what == "site":
        site = rng.choice(probe_sites if kind in PROBE_ONLY else [s.name for s in topo.sites])
        return site, {}, frozenset({f"site:{site}"})
    if what == "owner":  # a usual analysis user (a burst at every site, then its share) or a new one
        usual = sorted({o for o, g in USERS if g == "bes_user"})
        owner = rng.choice(usual) if rng.random() < 0.5 else f"user{rng.randrange(100, 1000)}"
        places, params = {f"owner:{owner}"}, {}
        if rng.random() < 0.5 and "site" in options and "concentration" in options:  # "mostly one site"
            site = rng.choice(topo.sites).name
            params = {"site": site, "concentration": 0.8}
            places.add(f"site:{site}")
        return owner, params, frozenset(places)
    target = topo.scenario_targets.get(kind)  # a target kind this campaign does not know: the default one
    return target, {}, frozenset({f"{kind}:{target}"})


def _clashes(new: Fault, faults: list[Fault], gap: float, global_gap: float) -> bool:
    for f in faults:
        wide = "*" in new.places or "*" in f.places
        if not wide and not new.places & f.places:
            continue
        g = global_gap if wide else gap
        if new.at < f.end + g and f.at < new.end + g:
            return True
    return False


def plan(seed: int, topo: Topology, probe_sites: list[str], quick: bool, days: float,
         per_kind: int) -> tuple[list[Fault], float]:
    """The faults (sorted by start) and the campaign's end, in simulated seconds since the simulator's start."""
    rng = random.Random(seed)
    names = kinds()
    faults: list[Fault] = []
    if quick:
        for kind in [k for k in names if not is_global(k)]:
            for _ in range(200):
                target, params, places = pick_target(kind, rng, topo, probe_sites)
                lo, hi = QUICK_DURATION
                f = Fault(kind, WARMUP + rng.randrange(0, 601, 60), rng.randrange(lo, hi + 1, 300), target, params,
                          places)
                if not _clashes(f, faults, 0, 0):
                    faults.append(f)
                    break
        t = max((f.end for f in faults), default=WARMUP) + QUICK_GAP
        for kind in [k for k in names if is_global(k)]:
            faults.append(Fault(kind, t, GLOBAL_DURATION[0], None, {}, frozenset({"*"})))
            t += GLOBAL_DURATION[0] + QUICK_GAP
        return sorted(faults, key=lambda f: f.at), t
    end = WARMUP + days * 86400
    todo = [k for k in names for _ in range(per_kind)]
    rng.shuffle(todo)
    todo.sort(key=lambda k: not is_global(k))  # the faults of every site first: they need the widest room
    for kind in todo:
        for _ in range(500):
            lo, hi = GLOBAL_DURATION if is_global(kind) else DURATION
            duration = rng.randrange(lo, hi + 1, 300)
            latest = int(end - GRACE - duration)
            if latest <= WARMUP:
                break
            target, params, places = pick_target(kind, rng, topo, probe_sites)
            f = Fault(kind, rng.randrange(int(WARMUP), latest, 300), duration, target, params, places)
            if not _clashes(f, faults, PLACE_GAP, GRACE):
                faults.append(f)
                break
        else:
            print(f"{PROG}: no room left for one more {kind}; it is left out", file=sys.stderr)
    return sorted(faults, key=lambda f: f.at), end


# ---- running the demo stack -------------------------------------------------------------------------------


def _settings(workdir: Path, timeline: Path, args: argparse.Namespace) -> cli.Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BES_DEMO_") or k.startswith("BES_DEMO_DB_")}
    env.update(BES_DEMO_DIR=str(workdir), BES_DEMO_SPEED=f"{args.speed:g}", BES_DEMO_SCALE=f"{args.scale:g}",
               BES_DEMO_TIMELINE=str(timeline), BES_DEMO_SEED=str(args.seed), BES_DEMO_WARMUP="1h",
               BES_DEMO_DB_PREFIX=args.db_prefix)
    env.update({f"BES_DEMO_{name.upper()}_PORT": str(services.free_port()) for name in cli.DAEMONS})
    try:
        return cli.settings(env)
    except cli.DemoError as exc:
        raise CampaignError(str(exc)) from None


def _drop(s: cli.Settings) -> None:
    conn = pymysql.connect(host=s.db["host"], port=s.db["port"], user=s.db["user"], password=s.db["password"],
                           connect_timeout=5, read_timeout=60, autocommit=True)
    try:
        with conn.cursor() as cur:
            for name in ("JobDB", "PilotAgentsDB", "JobLoggingDB", "ResourceStatusDB", "bes_simulate"):
                cur.execute(f"DROP DATABASE IF EXISTS `{s.db_prefix}{name}`")
    finally:
        conn.close()


def stop(s: cli.Settings) -> None:
    """Stop what the demo started (``bes_demo down``: components, probe jobs), its lines on stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        cli.down(s)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(line.strip() for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _sim_clock(s: cli.Settings) -> Callable[[], float]:
    """The run's simulated time now (the simulator's clock mapping, from its events file)."""
    clock = json.loads(s.events.read_text())["clock"]
    return lambda: (time.time() - clock["origin_epoch"]) * clock["speed"]


def run_stack(s: cli.Settings, end: float) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """Start the demo stack on ``s``, let it run to simulated second ``end``, stop it; the events file, every
    alert seen and the simulated second at which the stack was up."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            cli.up(s)
        sim_now = _sim_clock(s)
        up_at = sim_now()
        expected = set(cli.STOP_ORDER) - ({"agent-submit", "agent-reap"} if not s.probe_sites else set())
        last_say = 0.0
        while (now := sim_now()) < end:
            missing = expected - set(cli.running(s))
            if missing:
                name = sorted(missing)[0]
                raise CampaignError(f"{name} stopped at t={hm(now)} simulated: {_tail(s.logs / f'{name}.log')}")
            if time.monotonic() - last_say > 60:
                last_say = time.monotonic()
                print(f"{PROG}: t={hm(now)} of {hm(end)} simulated", file=sys.stderr, flush=True)
            time.sleep(min(5.0, max(0.5, (end - now) / s.speed)))
        time.sleep(5)  # the simulator writes the last steps, the alert log polls once more
    finally:
        stop(s)
    alerts = report.load_alerts(str(s.alert_log)) if s.alert_log.exists() else []
    return report.load_events(str(s.events)), alerts, up_at


# ---- scoring ----------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    return round(sorted(values)[math.ceil(0.9 * len(values)) - 1], 1) if values else None


def _target_of(sc: dict[str, Any]) -> str | None:
    target = sc.get("target", {})
    return next((target[k] for k in ("owner", "host", "ce", "site") if k in target), None)


def score(doc: dict[str, Any], alerts: list[dict[str, Any]], end: float) -> dict[str, Any]:
    """The campaign's figures from the events file and every alert seen (simulated seconds)."""
    alerts = [a for a, t in zip(alerts, report.alert_times(doc, alerts)) if t <= end]
    rows = report.build(doc, alerts, linger=GRACE)
    started = [sc for sc in doc["scenarios"] if sc.get("started")]
    faults = []
    for sc, row in zip(started, rows):
        faults.append({"name": fault_name(sc["name"], _target_of(sc), sc["start_sim"]), "kind": sc["name"],
                       "target": row["target"], "at_s": sc["start_sim"],
                       "duration_s": (sc["end_sim"] or end) - sc["start_sim"],
                       **{k: row[k] for k in ("alert", "alert_after", "dirac_reacts", "dirac_reacts_after",
                                              "dirac_reacts_lead", "dirac_decides", "dirac_decides_after",
                                              "dirac_decides_lead")},
                       "wrong_place": row["wrong_place"]})
    out_kinds = {}
    for kind in kinds():
        mine = [f for f in faults if f["kind"] == kind]
        found = [f["alert_after"] for f in mine if f["alert_after"] is not None]
        out_kinds[kind] = {
            "injected": len(mine), "detected": len(found),
            "median_first_alert_s": _median(found), "p90_first_alert_s": _p90(found),
            "median_lead_first_reaction_s": _median([f["dirac_reacts_lead"] for f in mine
                                                     if f["dirac_reacts_lead"] is not None]),
            "median_lead_decisive_s": _median([f["dirac_decides_lead"] for f in mine
                                               if f["dirac_decides_lead"] is not None]),
            "dirac_reacted": sum(f["dirac_reacts_after"] is not None for f in mine),
            "dirac_decided": sum(f["dirac_decides_after"] is not None for f in mine),
            "wrong_place": sum(len(f["wrong_place"]) for f in mine),
        }
    wrong = {(w["alert"], w.get("site"), w.get("host"), w.get("owner"), round(f["at_s"] + w["after"]))
             for f in faults for w in f["wrong_place"]}
    speed = doc["clock"]["speed"]
    stalls = [(e["sim"], e.get("seconds", 0.0)) for e in doc.get("log", []) if e.get("event") ==
              "behind the database clock"]
    unexplained = report.unexplained(doc, alerts, WARMUP, GRACE)
    for a in unexplained:
        a["after_stall"] = any(a["at"] - STALL_BEFORE * speed <= t <= a["at"] + STALL_AFTER * speed for t, _ in stalls)
    false = [a for a in unexplained if a["blame"] != "monitoring"]
    days = (end - WARMUP) / 86400
    return {
        "simulated_days": round(days, 3), "warmup_s": WARMUP, "grace_s": GRACE, "speed": speed,
        "kinds": out_kinds,
        "false_alarms_per_day": round(len(false) / days, 2), "false_alarms": false,
        "false_alarms_after_stall": sum(a["after_stall"] for a in false),
        "monitoring_alerts": [a for a in unexplained if a["blame"] == "monitoring"],
        "wrong_target_alerts": len(wrong),
        "missed": [f["name"] for f in faults if f["alert_after"] is None],
        "stalls": {"count": len(stalls), "longest_s": max((s for _, s in stalls), default=0.0)},
        "faults": faults,
    }


def render(res: dict[str, Any]) -> str:
    head = ("scenario", "injected", "detected", "first alert p50", "p90", "lead on DIRAC's 1st reaction p50",
            "lead on decisive p50", "wrong place")
    dur = report.fmt_duration
    table = [head] + [(k, str(v["injected"]), str(v["detected"]), dur(v["median_first_alert_s"]),
                       dur(v["p90_first_alert_s"]), dur(v["median_lead_first_reaction_s"]),
                       dur(v["median_lead_decisive_s"]), str(v["wrong_place"])) for k, v in res["kinds"].items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    stalls = res["stalls"]
    lines += [
        "(simulated time after the fault started; lead = DIRAC's action - first alert, - where DIRAC never "
        "reacted or nothing alerted)",
        f"simulated days {res['simulated_days']:g} (after a {hm(res['warmup_s'])} warm-up) at {res['speed']:g}x, "
        f"seed {res['seed']}, {res['real_seconds'] / 60:.1f} real minutes",
        f"false alarms: {len(res['false_alarms'])} ({res['false_alarms_per_day']:g} per simulated day; "
        f"{res['false_alarms_after_stall']} right after a simulator stall); wrong-target alerts: "
        f"{res['wrong_target_alerts']}; monitoring alerts: {len(res['monitoring_alerts'])}",
        f"simulator stalls behind the database clock: {stalls['count']} (longest {stalls['longest_s']:g} s)",
        f"missed: {', '.join(res['missed']) or 'none'}",
    ]
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description="The alert campaign: many random faults of every scenario kind on the "
                      "demo stack; detection, time to the first alert, lead on DIRAC, false alarms.")
    p.add_argument("--json", required=True, metavar="FILE", help="write the results here")
    p.add_argument("--quick", action="store_true", help="every kind once, a few minutes (the test suite's run)")
    p.add_argument("--seed", type=int, default=1, help="seed of the timeline and the simulator (default 1)")
    p.add_argument("--days", type=float, default=3.0, help="simulated days after the warm-up (default 3)")
    p.add_argument("--per-kind", type=int, default=6, help="faults of each kind (default 6)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (1-60, default 60)")
    p.add_argument("--scale", type=float, default=0.3, help="the simulated grid's size (default 0.3, as the demo)")
    p.add_argument("--dir", help="working directory (default: a new one under the system's temp directory)")
    p.add_argument("--keep", action="store_true", help="keep the working directory (logs, events, alerts)")
    p.add_argument("--db-prefix", default=f"bes_campaign_{uuid.uuid4().hex[:8]}_",
                   help="prefix of the campaign's databases (default: a new one; dropped at the end)")
    args = p.parse_args(argv)
    if not args.quick and not (0 < args.days <= 30):
        p.error(f"--days {args.days:g}: must be more than 0 and at most 30")
    if not 1 <= args.per_kind <= 100:
        p.error(f"--per-kind {args.per_kind}: must be from 1 to 100")
    if not 1 <= args.speed <= 60:
        p.error(f"--speed {args.speed:g}: must be from 1 to 60 (DATETIME has 1-s resolution)")
    if not 0.05 <= args.scale <= 4:
        p.error(f"--scale {args.scale:g}: must be from 0.05 to 4")
    return args


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.json)
    workdir = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="bes-campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    ok = False
    s = None
    try:
        timeline = workdir / "timeline.yml"
        timeline.write_text("scenarios: []\n")  # settings() checks that it loads; the plan needs its probe sites
        s = _settings(workdir, timeline, args)
        faults, end = plan(args.seed, load_topology(scale=args.scale), s.probe_sites, args.quick, args.days,
                           args.per_kind)
        timeline.write_text(yaml.safe_dump({"scenarios": [f.spec() for f in faults]}, sort_keys=False))
        print(f"{PROG}: {len(faults)} faults until {hm(end)} simulated (about {(end - 3600) / args.speed / 60 + 1:.0f} "
              f"real minutes); timeline {timeline}; logs {s.logs}", file=sys.stderr, flush=True)
        doc, alerts, up_at = run_stack(s, end)
        res = {"seed": args.seed, "quick": args.quick, "scale": args.scale, "machine": machine(),
               "real_seconds": 0.0, "stack_up_s": round(up_at), **score(doc, alerts, end)}
        res["real_seconds"] = round(time.monotonic() - started, 1)
        out.write_text(json.dumps(res, indent=1) + "\n")
        print(render(res))
        ok = True
        return 0
    except (CampaignError, cli.DemoError, services.ServiceError) as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if s is not None:
            with contextlib.suppress(cli.DemoError):
                stop(s)
            with contextlib.suppress(pymysql.err.MySQLError):
                _drop(s)
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"{PROG}: logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
