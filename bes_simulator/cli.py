"""``bes-simulate``: a live BES3-like DIRAC workload with injected faults, written into MariaDB.

    bes-simulate --generation 8.0 --speed 60 --warmup 2h --scenario heartbeat-loss@3h
    bes-simulate --once --duration 6h --speed 100 --scenario black-hole-host@1h   # one batch, then exit
    bes-simulate --report --alerts http://127.0.0.1:9093                          # lead times

Exit codes: 0 done, 1 database problem, 2 bad option/topology/timeline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import pymysql

from dirac_db.schema import GENERATIONS, SchemaError

from . import database, report
from .clock import EPOCH, DbClock, SimClock
from .cvmfs import FakeCvmfs
from .engine import Engine
from .events import EventLog
from .scenarios import PARAMS, TARGET_KIND, load_timeline, parse_spec, resolve
from .topology import SCENARIO_NAMES, ConfigError, load_topology, parse_duration
from .writer import DiracWriter

PROG = "bes-simulate"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{PROG}: {message}; see '{PROG} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Simulate a BES3-like DIRAC workload (with faults) in MariaDB.",
                epilog="Durations: 90, 90s, 30m, 2h, 1h30m (simulated time). Scenarios: "
                       + ", ".join(SCENARIO_NAMES) + ".")
    db = p.add_argument_group("database")
    db.add_argument("--generation", choices=sorted(GENERATIONS), default="9.1",
                    help="DIRAC schema generation: 9.1 (current) or 8.0 (v6-v8, what BES3 runs)")
    db.add_argument("--db-prefix", default="sim_", help="database name prefix (default sim_: sim_JobDB, ...)")
    db.add_argument("--db-host", default="127.0.0.1")
    db.add_argument("--db-port", type=int, default=3306)
    db.add_argument("--db-user", default="root")
    db.add_argument("--db-password-file", help="file holding the password (else $BES_SIMULATE_DB_PASSWORD)")
    db.add_argument("--reset", action="store_true", help="drop and re-create the prefix's databases first")
    run = p.add_argument_group("workload")
    run.add_argument("--topology", help="topology YAML (default: the packaged BES3-like topology.yml)")
    run.add_argument("--scale", type=float, default=1.0, help="multiply every CE's slots (load), default 1")
    run.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)")
    run.add_argument("--duration", help="simulated time to run (default: until stopped; 1h with --once)")
    run.add_argument("--warmup", default="0", help="simulated time written at once, in the past, at start")
    run.add_argument("--once", action="store_true",
                     help="write the whole --duration as one batch ending now, then exit (tests)")
    run.add_argument("--pilot-history", default="0", metavar="D",
                     help="finished pilots written for D before the start (e.g. 1d, what RSS's pilot efficiency reads)")
    run.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run.add_argument("--rss", choices=("enforce", "record"), default="enforce",
                     help="enforce: RSS decisions are written and obeyed; record: only logged in the events file")
    flt = p.add_argument_group("faults")
    flt.add_argument("--scenario", action="append", default=[], metavar="NAME[:TARGET][@T][+D]",
                     help="inject a fault at simulated time T (default 0) for D (default: to the end); repeatable")
    flt.add_argument("--timeline", help="YAML timeline of scenarios (see docs/simulator.md)")
    flt.add_argument("--list-scenarios", action="store_true", help="print the scenarios and default targets")
    out = p.add_argument_group("output")
    out.add_argument("--state-dir", help="fake CVMFS roots and default events file (default /tmp/bes-simulate/PREFIX)")
    out.add_argument("--events", help="events JSON file (default STATE_DIR/events.json)")
    out.add_argument("--report", action="store_true", help="print lead times from --events and --alerts, exit")
    out.add_argument("--alerts", help="Alertmanager URL or a JSON file of its alerts (with --report)")
    out.add_argument("--json", action="store_true", help="with --report: JSON instead of a table")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _state_dir(args) -> Path:
    return Path(args.state_dir) if args.state_dir else Path("/tmp/bes-simulate") / (args.db_prefix or "default")


def _password(args) -> str:
    if args.db_password_file:
        try:
            return Path(args.db_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--db-password-file {args.db_password_file}: cannot read it ({exc.strerror})") from None
    return os.environ.get("BES_SIMULATE_DB_PASSWORD", "")


def _fmt(t: float) -> str:
    m = int(t // 60)
    return f"{m // 60}h{m % 60:02d}m"


def list_scenarios(args) -> int:
    topo = load_topology(args.topology)
    for name in SCENARIO_NAMES:
        kind = TARGET_KIND[name]
        target = topo.scenario_targets.get(name, "-") if kind else "all sites"
        options = ", ".join(f"{k}={_option(v)}" for k, v in PARAMS[name].items())
        print(f"{name:16s} target {kind or '-':5s} default {target:20s} {'options ' + options if options else ''}"
              .rstrip())
    return 0


def _option(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:g}" for v in value) + "]"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def run_report(args) -> int:
    events = args.events or str(_state_dir(args) / "events.json")
    doc = report.load_events(events)
    alerts = report.load_alerts(args.alerts) if args.alerts else None
    rows = report.build(doc, alerts)
    print(json.dumps(rows, indent=1) if args.json else report.render(rows))
    return 0


def simulate(args) -> int:
    if args.speed <= 0 or args.speed > 100000:
        raise ConfigError("--speed: must be between 0 and 100000 simulated seconds per real second")
    if args.scale <= 0:
        raise ConfigError("--scale: must be greater than 0")
    duration = parse_duration(args.duration, "--duration") if args.duration else (3600.0 if args.once else None)
    if duration is not None and duration <= 0:
        raise ConfigError("--duration: must be greater than 0")
    warmup = parse_duration(args.warmup, "--warmup")
    pilot_history = parse_duration(args.pilot_history, "--pilot-history")
    topo = load_topology(args.topology, scale=args.scale)
    specs = [parse_spec(s) for s in args.scenario]
    if args.timeline:
        specs += load_timeline(args.timeline)
    scenarios = [resolve(s, topo) for s in specs]
    for sc in scenarios:
        if duration is not None and sc.spec.at >= duration:
            raise ConfigError(f"--scenario {sc.name}@{_fmt(sc.spec.at)} starts after --duration {_fmt(duration)}; "
                              "start it earlier or run longer")
    database.names(args.db_prefix, args.generation)  # validates the prefix before connecting
    conn = database.connect(args.db_host, args.db_port, args.db_user, _password(args))
    database.lock(conn, args.db_prefix)
    dbs, reused = database.prepare(conn, args.db_prefix, args.generation, reset=args.reset)
    db_clock = DbClock(conn)
    writer = DiracWriter(conn, dbs, clock=lambda: EPOCH + dt.timedelta(seconds=int(db_clock.now())))
    leftovers = database.end_leftovers(conn, dbs, writer) if reused else (0, 0)
    clock = SimClock(db_clock, args.speed, head_start=duration if args.once else min(warmup, duration or warmup))
    state = _state_dir(args)
    events_path = Path(args.events) if args.events else state / "events.json"
    try:
        cvmfs = FakeCvmfs(state / "cvmfs", [s.name for s in topo.sites], topo.cvmfs_repositories)
        events_path.parent.mkdir(parents=True, exist_ok=True)
        events_path.touch()
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename or state}: {exc.strerror}; fix --state-dir/--events") from None
    meta = {"generation": args.generation, "seed": args.seed, "topology": topo.source, "scale": args.scale,
            "databases": {"JobDB": dbs.jobdb, "PilotAgentsDB": dbs.pilotdb, "JobLoggingDB": dbs.logdb,
                          "ResourceStatusDB": dbs.rssdb},
            "cvmfs_root": str(state / "cvmfs"), "rss": args.rss, "dirac": topo.dirac,
            "sites": [s.name for s in topo.sites]}
    log = EventLog(events_path, clock, meta, scenarios)
    engine = Engine(topo, writer, clock, random.Random(args.seed), log, scenarios, cvmfs,
                    rss_enforce=args.rss == "enforce", pilot_history=pilot_history)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"{PROG}: {msg}", file=sys.stderr, flush=True))
    how = "created"
    if reused:
        how = "reused" + (f"; ended {leftovers[0]} jobs and {leftovers[1]} pilots left over" if any(leftovers) else "")
    names = ", ".join(n for n in (dbs.jobdb, dbs.pilotdb, dbs.logdb, dbs.rssdb) if n)
    say(f"DIRAC {args.generation} databases {names} ({how})")
    say(f"{len(topo.sites)} sites, {topo.slots} slots; speed {args.speed:g}x; events {events_path}; "
        f"CVMFS roots {state / 'cvmfs'}")

    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda *_: stop.append(1)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        done_t = _loop(engine, conn, db_clock, clock, log, duration, args.speed, stop, say)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.note(done_t, "simulator stopped")
    log.flush(force=True)
    say(_progress(engine, done_t) + " - stopped")
    conn.close()
    return 0


def _loop(engine: Engine, conn, db_clock: DbClock, clock: SimClock, log: EventLog, duration: float | None,
          speed: float, stop: list[int], say: Callable[[str], None]) -> float:
    """Follow the database clock: each step of simulated time is one transaction, never ahead of it."""
    step = max(60.0, speed)  # simulated seconds per transaction
    done_t = 0.0
    last_sync = last_say = last_warn = last_note = time.monotonic()
    caught_up = False
    engine.w.begin()  # journaled: a transient MariaDB error (deadlock, lock table full) rebuilds the step
    engine.start()
    engine.w.commit()
    while not stop:
        target = clock.sim_now()
        if duration is not None:
            target = min(target, duration)
        while done_t < target and not stop:
            done_t = min(target, done_t + step)
            engine.w.begin()
            engine.run_until(done_t)
            engine.w.commit()
            log.flush()
        if duration is not None and done_t >= duration:
            break
        now = time.monotonic()
        lag = (clock.sim_now() - done_t) / speed  # real seconds behind the database clock
        if caught_up and lag >= 2 and now - last_note > 5:  # every age read meanwhile is off by lag * speed
            last_note = now
            log.note(done_t, "behind the database clock", seconds=round(lag, 1),
                     real_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        caught_up = caught_up or lag < 2
        if caught_up and lag > 10 and now - last_warn > 60:
            last_warn = now
            print(f"{PROG}: falling {lag:.0f} s behind the database clock: heartbeats and waits look older than "
                  "they are; lower --speed or --scale", file=sys.stderr, flush=True)
        if now - last_sync > 60:
            db_clock.resync()
            last_sync = now
        if now - last_say > 30:
            last_say = now
            say(_progress(engine, done_t))
        time.sleep(0.2)
    return done_t


def _progress(engine: Engine, t: float) -> str:
    c = engine.counts
    running = sum(1 for j in engine.tracked.values() if j.db == "Running")
    replayed = f"; {engine.w.recovered} transactions replayed after a MariaDB error" if engine.w.recovered else ""
    return (f"t={_fmt(t)} simulated: {c['jobs']} jobs submitted, {running} running, {c['done']} done, "
            f"{c['failed']} failed; {c['pilots']} pilots{replayed}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list_scenarios:
            return list_scenarios(args)
        if args.report:
            return run_report(args)
        return simulate(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (database.DatabaseError, SchemaError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except pymysql.err.MySQLError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        print(f"{PROG}: database error ({reason}); check that MariaDB is up and the databases are intact "
              "(--reset re-creates them)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
