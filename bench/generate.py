"""Fill a real MariaDB with DIRAC's own schema (generation 8.0 or 9.1) and N jobs, fast.

    python -m bench.generate --jobs 1000000 [--generation 8.0] [--active 10000] [--force]

How it is fast: DIRAC's tables are created from DIRAC's own .sql files, untouched. Rows are produced
in JobID order by a Python process and streamed through named pipes into one ``LOAD DATA LOCAL INFILE``
per table (the ``mysql`` client), each in one transaction on an *empty* table with ``unique_checks``
and ``foreign_key_checks`` off: MariaDB (>= 10.6) then builds the primary and every secondary index by
sorting instead of row-by-row B-tree inserts. Jobs, JobParameters and PilotAgents load in parallel.

The mix: jobs submitted evenly over 30 days in JobID order; ``active`` of them (default 1 %) in
non-final states, 90 % among the newest and 10 % older stragglers (the rest finished: Done 84 %,
Failed 11 %, Killed 3 %, Completed 1 %, Deleted 1 %); 30 sites with Zipf-like weights, ~5000 worker
nodes, 1 % "black hole" nodes that fail jobs within minutes; ~0.2 % probe jobs; for generation 8.0
JobParameters rows (HostName, GridCE, WallClockTime(s)) for every job that started; pilots
(``--pilots-per-job``, default 0.5) with as many active as 3/4 of the active jobs; the site mask
(8.0) or ResourceStatusDB.SiteStatus (9.1); JobLoggingDB with DIRAC's schema, empty (the exporter
reads LoggingInfo only by primary key, for jobs the live stream touches, which it logs). JobJDLs
stays empty (neither exporter reads it); its AUTO_INCREMENT is moved past the loaded JobIDs so that
DIRAC-like submissions continue the sequence.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymysql

from dirac_db.schema import SchemaError, create_databases

from .dataset import (
    BANNED_SITES,
    PROBE_GROUP,
    SITE_WEIGHTS,
    SITES,
    Dataset,
    ces_of,
    drop,
    hosts_of,
    read_meta,
    write_meta,
)
from .measure import OneLineParser

SPAN = 30 * 86400
CHUNK = 20000
LOAD_TIMEOUT = 4 * 3600  # a bound, not an expectation: 10 M jobs load in minutes
PARAMS = ("GridCE", "HostName", "WallClockTime(s)")  # sorted: rows go in primary-key order (JobID, Name)

ACTIVE_MIX = (("Received", 2), ("Checking", 1), ("Waiting", 30), ("Staging", 0.5), ("Matched", 3),
              ("Rescheduled", 0.5), ("Running", 55), ("Stalled", 2), ("Completing", 2))
FINAL_MIX = (("Done", 84), ("Failed", 11), ("Killed", 3), ("Completed", 1), ("Deleted", 1))
FAIL_MIX = (("Application Finished With Errors", 40), ("Job stalled: pilot not running", 12),
            ("Watchdog identified this job as stalled", 6), ("Input Data Not Available", 5),
            ("Pending Requests", 4), ("Job has reached the CPU limit of the queue", 5),
            ("Job has exceeded maximum wall clock time", 5), ("Exception During Execution", 4),
            ("Failed Downloading InputSandbox", 3), ("Payload failed", 6), ("Maximum of reschedulings reached", 2),
            ("Stalling for more than 4500 sec", 3), ("Some site-specific error nobody listed", 5))
FAST_FAIL = ("Application Finished With Errors", "Exception During Execution", "Payload failed")
MINOR = {"Received": ("Job accepted", "Unknown"), "Checking": ("JobSanity", "Unknown"),
         "Waiting": ("Pilot Agent Submission", "Unknown"), "Staging": ("Request Sent", "Unknown"),
         "Matched": ("Assigned", "Unknown"), "Rescheduled": ("Job Rescheduled", "Unknown"),
         "Running": ("Application", "Running"), "Completing": ("Uploading Output Sandbox", "Finished"),
         "Stalled": ("Job stalled: pilot not running", "Running"), "Done": ("Execution Complete", "Finished"),
         "Completed": ("Execution Complete", "Finished"), "Killed": ("Marked for termination", "Unknown"),
         "Deleted": ("Execution Complete", "Finished")}
UNMATCHED = ("Received", "Checking", "Waiting", "Staging", "Rescheduled")
PILOT_ACTIVE_MIX = (("Submitted", 15), ("Waiting", 15), ("Running", 68), ("Unknown", 2))
PILOT_FINAL_MIX = (("Done", 78), ("Failed", 7), ("Aborted", 12), ("Deleted", 3))
PILOT_REASON = {"Submitted": "Successfully submitted by the SiteDirector", "Waiting": "Idle",
                "Running": "Not given", "Unknown": "Unknown", "Done": "Normal exit", "Failed": "Payload failed",
                "Aborted": "Held: job submission failed", "Deleted": "Removed by the SiteDirector"}

JOB_COLS = ("JobID, JobType, JobGroup, Site, JobName, Owner, OwnerGroup, @sub, @resch, @lut, @start, @hb, @end,"
            " Status, MinorStatus, ApplicationStatus, UserPriority, RescheduleCounter, VerifiedFlag, AccountedFlag")
JOB_SET = ("SubmissionTime = FROM_UNIXTIME(@sub), RescheduleTime = FROM_UNIXTIME(@resch),"
           " LastUpdateTime = FROM_UNIXTIME(@lut), StartExecTime = FROM_UNIXTIME(@start),"
           " HeartBeatTime = FROM_UNIXTIME(@hb), EndExecTime = FROM_UNIXTIME(@end)")
PILOT_COLS = ("PilotID, InitialJobID, CurrentJobID, PilotJobReference, PilotStamp, DestinationSite, Queue, GridSite,"
              " GridType, BenchMark, @sub, @lut, Status, StatusReason, AccountingSent")
PILOT_SET = "SubmissionTime = FROM_UNIXTIME(@sub), LastUpdateTime = FROM_UNIXTIME(@lut)"


def _cum(mix) -> tuple[list, list[float]]:
    names, weights = zip(*mix)
    total, cum = 0.0, []
    for w in weights:
        total += w
        cum.append(total)
    return list(names), cum


def _pick_active(rng: random.Random, total: int, active: int, day_items: float) -> set[int]:
    """IDs (1..total) of the active items: 90 % among the newest 3 x active, 10 % older (<= 7 days)."""
    recent = min(total, 3 * active)
    n_recent = min(recent, active - active // 10)
    chosen = set(rng.sample(range(total - recent + 1, total + 1), n_recent))
    old_lo = max(1, total - recent - int(7 * day_items))
    old_hi = total - recent
    rest = active - len(chosen)
    if rest and old_hi >= old_lo:
        chosen.update(rng.sample(range(old_lo, old_hi + 1), min(rest, old_hi - old_lo + 1)))
    rest = active - len(chosen)
    if rest:  # tiny datasets: fill from whatever is left
        free = [i for i in range(total, 0, -1) if i not in chosen]
        chosen.update(free[:rest])
    return chosen


class _Topology:
    """Sites, their worker nodes (1 % of them black holes) and CEs."""

    def __init__(self):
        self.hosts = [hosts_of(i) for i in range(len(SITES))]
        self.ces = [ces_of(i) for i in range(len(SITES))]
        self.black = [{h for j, h in enumerate(hs) if (j * 7919 + i) % 100 == 0} for i, hs in enumerate(self.hosts)]
        total, self.site_cum = 0.0, []
        for w in SITE_WEIGHTS:
            total += w
            self.site_cum.append(total)


def _jobs_chunk(ds: Dataset, t0: int, lo: int, hi: int, seed: int, active: set[int], topo: _Topology,
                jobs_out, params_out) -> None:
    """Write the Jobs (and JobParameters) TSV lines of JobIDs lo..hi."""
    rng = random.Random(seed * 1_000_003 + lo)
    step = SPAN / ds.jobs
    n = hi - lo + 1
    sites = rng.choices(range(len(SITES)), cum_weights=topo.site_cum, k=n)
    fnames, fcum = _cum(FINAL_MIX)
    finals = rng.choices(fnames, cum_weights=fcum, k=n)
    anames, acum = _cum(ACTIVE_MIX)
    rnames, rcum = _cum(FAIL_MIX)
    reasons = rng.choices(rnames, cum_weights=rcum, k=n)
    if ds.old:
        tail = "\tBES-Production\t/C=CN/O=HEP/O=IHEP/OU=CC/CN={owner}\n"
    else:
        tail = "\tbes\n"
    jl: list[str] = []
    pl: list[str] = []
    rand = rng.random
    for k in range(n):
        job = lo + k
        sub = t0 - SPAN + int((job - 1 + rand()) * step)
        s = sites[k]
        site = SITES[s]
        probe = rand() < 0.002
        if probe:
            group, owner, ogroup, jtype, name = PROBE_GROUP, "besprobe", "bes_probe", "User", "bes_probe"
        elif rand() < 0.3:
            g = int(rand() * 300)
            group, owner, ogroup, jtype, name = f"{g + 1000:08d}", "besprod", "bes_production", "MCSimulation", \
                f"sim_{g}_{job % 100000}"
        else:
            u = int(rand() ** 2 * 150)
            group, owner, ogroup, jtype, name = "00000000", f"user{u:03d}", "bes_user", "User", f"ana_{u}_{job % 997}"
        hosts = topo.hosts[s]
        host = hosts[int(rand() * len(hosts))]
        ce = topo.ces[s][int(rand() * len(topo.ces[s]))]
        rc = 0
        resch = None
        if job in active:
            status = rng.choices(anames, cum_weights=acum)[0]
            age = max(t0 - sub, 60)
            start = hb = end = None
            if status in UNMATCHED:
                site = "ANY" if rand() < 0.95 else "Multiple"
                lut = sub + min(age, 30 + int(rand() * 60)) if status != "Rescheduled" else t0 - int(rand() * 600)
                if status == "Rescheduled":
                    rc, resch = 1, lut
            elif status == "Matched":
                lut = t0 - int(rand() * min(age, 600))
            else:
                start = sub + int(age * (0.05 + 0.5 * rand()))
                lut = start + int(rand() * 5)
                if status == "Stalled":
                    hb = t0 - 4500 - int(rand() * 7000)
                    lut = max(lut, min(t0, hb + 4500))
                elif status == "Completing":
                    hb = t0 - int(rand() * 600)
                else:
                    hb = t0 - (1800 + int(rand() * 2600) if rand() < 0.03 else int(rand() * 1200))
                hb = max(hb, start)
            minor, app = MINOR[status]
            accounted = "False"
        else:
            status = finals[k]
            if t0 - sub < 900:
                sub = t0 - 900 - int(rand() * 300)
            wait = min(int(rng.expovariate(1 / 1800)), 2 * 86400)
            run = 60 + int(rand() * 240) if probe else min(int(rng.lognormvariate(8.6, 1.0)), 36 * 3600)
            if host in topo.black[s] and rand() < 0.8:
                status, run = "Failed", 5 + int(rand() * 235)
                minor = FAST_FAIL[int(rand() * 3)]
            elif status == "Failed":
                minor = reasons[k]
            else:
                minor = MINOR[status][0]
            app = "Error" if status == "Failed" else MINOR[status][1]
            start = sub + wait
            end = start + run
            if end > t0 - 60:
                end = t0 - 60 - int(rand() * 600)
                start = max(sub, end - run)
                if start > end:
                    start = end = sub
            hb = end - int(rand() * min(1800, max(run, 1)))
            hb = max(hb, start)
            lut = end + int(rand() * 30)
            if status == "Killed":
                if rand() < 0.5:
                    start = hb = None
                lut, end = end, None
            elif status == "Deleted":
                if end + 7 * 86400 < t0 - 3600:
                    lut = end + 7 * 86400 + int(rand() * 3600)
                else:
                    status = "Done"
            r = rand()
            if r < 0.035:
                rc = 1 if r < 0.03 else 2
                resch = sub + wait // 2
            accounted = "True"
        jl.append(f"{job}\t{jtype}\t{group}\t{site}\t{name}\t{owner}\t{ogroup}\t{sub}\t{_n(resch)}\t{lut}\t"
                  f"{_n(start)}\t{_n(hb)}\t{_n(end)}\t{status}\t{minor}\t{app}\t1\t{rc}\tTrue\t{accounted}"
                  + tail.format(owner=owner))
        if ds.old and start is not None:
            wall = (end if end is not None else t0) - start
            pl.append(f"{job}\tGridCE\t{ce}\n{job}\tHostName\t{host}\n{job}\tWallClockTime(s)\t{wall}\n")
    jobs_out.write("".join(jl))
    if params_out is not None:
        params_out.write("".join(pl))


def _n(v) -> str:
    return "\\N" if v is None else str(v)


def _pilots(ds: Dataset, t0: int, total: int, active_n: int, seed: int, topo: _Topology, out) -> None:
    rng = random.Random(seed * 7 + 13)
    active = _pick_active(rng, total, active_n, total / 30) if total else set()
    step = SPAN / max(total, 1)
    anames, acum = _cum(PILOT_ACTIVE_MIX)
    fnames, fcum = _cum(PILOT_FINAL_MIX)
    tail = "\t/C=CN/O=HEP/O=IHEP/OU=CC/CN=besprod\tbes_pilot\n" if ds.old else "\tbes\n"
    rand = rng.random
    for lo in range(1, total + 1, CHUNK):
        hi = min(total, lo + CHUNK - 1)
        n = hi - lo + 1
        sites = rng.choices(range(len(SITES)), cum_weights=topo.site_cum, k=n)
        finals = rng.choices(fnames, cum_weights=fcum, k=n)
        lines = []
        for k in range(n):
            pid = lo + k
            sub = t0 - SPAN + int((pid - 1 + rand()) * step)
            s = sites[k]
            ce = topo.ces[s][int(rand() * len(topo.ces[s]))]
            if pid in active:
                status = rng.choices(anames, cum_weights=acum)[0]
                sub = min(sub, t0 - 60)
                lut = sub + int((t0 - sub) * rand()) if status != "Submitted" else sub
            else:
                status = finals[k]
                sub = min(sub, t0 - 7200)
                life = 300 + int(rand() * 40000) if status in ("Done", "Deleted") else 60 + int(rand() * 3600)
                lut = min(sub + life, t0 - 60)
            queue = "long" if rand() < 0.3 else "bes"
            lines.append(f"{pid}\t0\t0\thtcondorce://{ce}:9619/{pid}\t{pid:032x}\t{ce}\t{ce}-condor-{queue}\t"
                         f"{SITES[s]}\tHTCondorCE\t{1 + rand() * 20:.2f}\t{sub}\t{lut}\t{status}\t"
                         f"{PILOT_REASON[status]}\t{'True' if status in ('Done', 'Failed') else 'False'}" + tail)
        out.write("".join(lines))


def _load_sql(fifo: Path, table: str, cols: str, set_clause: str | None) -> str:
    set_part = f" SET {set_clause}" if set_clause else ""
    return ("SET SESSION foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00';"
            f" BEGIN; LOAD DATA LOCAL INFILE '{fifo}' INTO TABLE `{table}` ({cols}){set_part}; COMMIT;")


def mysql_cmd(db: dict, database: str | None = None) -> list[str]:
    cmd = ["mysql", "--protocol=tcp", "-h", db["host"], "-P", str(db["port"]), "-u", db["user"], "--batch"]
    return cmd + ([database] if database else [])


def mysql_env(db: dict) -> dict:
    env = dict(os.environ)
    env["MYSQL_PWD"] = db.get("password") or ""
    return env


def generate(db: dict, ds: Dataset, *, seed: int = 1, pilots_per_job: float = 0.5, log=print) -> dict:
    """Drop and (re)create the dataset's databases and fill them; returns the metadata written."""
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db.get("password") or "",
                           autocommit=True)
    t_start = time.monotonic()
    t0 = int(time.time()) - 60
    try:
        drop(conn, ds)
        names = {"JobDB": ds.jobdb, "PilotAgentsDB": ds.pilotdb, "JobLoggingDB": ds.logdb}
        if ds.rssdb:
            names["ResourceStatusDB"] = ds.rssdb
        create_databases(conn, ds.generation, names)
        write_meta(conn, ds, {"complete": False})
        pilots = round(ds.jobs * pilots_per_job)
        tmp = Path(tempfile.mkdtemp(prefix="bes-bench-gen-"))
        try:
            counts = _stream(db, ds, tmp, t0, seed, pilots, log)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _finish(conn, ds, t0)
        meta = {"complete": True, "jobs": ds.jobs, "active": ds.active, "generation": ds.generation, "seed": seed,
                "t0": t0, "pilots": pilots, "job_parameters": counts.get("params", 0),
                "load_seconds": round(time.monotonic() - t_start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                             time.gmtime())}
        write_meta(conn, ds, meta)
        return meta
    finally:
        conn.close()


def _stream(db: dict, ds: Dataset, tmp: Path, t0: int, seed: int, pilots: int, log) -> dict:
    """Run the producers and one ``mysql`` LOAD DATA client per table, all concurrently, bounded in time."""
    targets = [("jobs", ds.jobdb, "Jobs", JOB_COLS + (", DIRACSetup, OwnerDN" if ds.old else ", VO"), JOB_SET)]
    if ds.old:
        targets.append(("params", ds.jobdb, "JobParameters", "JobID, Name, Value", None))
    targets.append(("pilots", ds.pilotdb, "PilotAgents",
                    PILOT_COLS + (", OwnerDN, OwnerGroup" if ds.old else ", VO"), PILOT_SET))
    clients = {}
    for key, dbname, table, cols, set_clause in targets:
        fifo = tmp / f"{key}.tsv"
        os.mkfifo(fifo, 0o600)
        clients[key] = subprocess.Popen(
            mysql_cmd(db, dbname) + ["--local-infile=1", "-e", _load_sql(fifo, table, cols, set_clause)],
            env=mysql_env(db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ctx = multiprocessing.get_context("fork")
    producers = [ctx.Process(target=_produce_jobs, args=(ds, t0, seed, tmp), name="jobs"),
                 ctx.Process(target=_produce_pilots, args=(ds, t0, seed, pilots, tmp), name="pilots")]
    for p in producers:
        p.start()
    deadline = time.monotonic() + LOAD_TIMEOUT
    errors: list[str] = []
    try:
        while time.monotonic() < deadline:
            failed = [k for k, c in clients.items() if c.poll() not in (None, 0)]
            if failed:  # a client died: its producer would block on the pipe forever
                for key in failed:
                    err = clients[key].stderr.read().strip()
                    errors.append(f"LOAD DATA into {key}: {err.splitlines()[-1] if err else 'failed'}")
                break
            if all(c.poll() == 0 for c in clients.values()) and not any(p.is_alive() for p in producers):
                break
            time.sleep(0.2)
        else:
            errors.append(f"loading did not finish within {LOAD_TIMEOUT} s")
        for p in producers:
            p.join(1)
            if not errors and p.exitcode != 0:
                errors.append(f"producer {p.name} failed (exit {p.exitcode})")
    finally:
        for p in producers:
            if p.is_alive():
                p.kill()
        for proc in clients.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if errors:
        raise RuntimeError("; ".join(errors))
    counts = {"jobs": ds.jobs, "pilots": pilots}
    stat = tmp / "params.count"
    if stat.exists():
        counts["params"] = int(stat.read_text())
    extra = f", {counts['params']} job parameters" if "params" in counts else ""
    log(f"generate: loaded {ds.jobs} jobs, {pilots} pilots{extra}")
    return counts


def _produce_jobs(ds: Dataset, t0: int, seed: int, tmp: Path) -> None:
    rng = random.Random(seed)
    active = _pick_active(rng, ds.jobs, ds.active, ds.jobs / 30)
    topo = _Topology()
    params = open(tmp / "params.tsv", "w", buffering=1 << 20) if ds.old else None
    with open(tmp / "jobs.tsv", "w", buffering=1 << 20) as jobs_out:
        counter = _Counting(params) if params else None
        for lo in range(1, ds.jobs + 1, CHUNK):
            _jobs_chunk(ds, t0, lo, min(ds.jobs, lo + CHUNK - 1), seed, active, topo, jobs_out, counter)
    if params:
        params.close()
        (tmp / "params.count").write_text(str(counter.lines))


def _produce_pilots(ds: Dataset, t0: int, seed: int, pilots: int, tmp: Path) -> None:
    with open(tmp / "pilots.tsv", "w", buffering=1 << 20) as out:
        _pilots(ds, t0, pilots, round(ds.active * 0.75), seed, _Topology(), out)


class _Counting:
    """A file wrapper that counts the lines written through it."""

    def __init__(self, f):
        self.f = f
        self.lines = 0

    def write(self, text: str) -> None:
        self.lines += text.count("\n")
        self.f.write(text)


def _finish(conn, ds: Dataset, t0: int) -> None:
    """Site status rows, JobJDLs' AUTO_INCREMENT past the loaded jobs, fresh index statistics."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0))
    with conn.cursor() as cur:
        if ds.old:
            cur.executemany(
                f"INSERT INTO `{ds.jobdb}`.SiteMask (Site, Status, LastUpdateTime, Author, Comment)"
                " VALUES (%s, %s, %s, 'bes-bench', '')",
                [(s, "Banned" if s in BANNED_SITES else "Active", when) for s in SITES])
        else:
            cur.executemany(
                f"INSERT INTO `{ds.rssdb}`.SiteStatus (Name, StatusType, VO, Status, Reason, DateEffective,"
                " ElementType, LastCheckTime) VALUES (%s, 'all', 'all', %s, 'bes-bench', %s, 'Site', %s)",
                [(s, "Banned" if s in BANNED_SITES else "Degraded" if s == SITES[-3] else "Active", when, when)
                 for s in SITES])
        cur.execute(f"ALTER TABLE `{ds.jobdb}`.JobJDLs AUTO_INCREMENT = {ds.jobs + 1}")
        for table in [f"`{ds.jobdb}`.Jobs", f"`{ds.pilotdb}`.PilotAgents"] + (
                [f"`{ds.jobdb}`.JobParameters"] if ds.old else []):
            cur.execute(f"ANALYZE TABLE {table}")
            cur.fetchall()


def ensure(db: dict, ds: Dataset, *, force: bool = False, max_age_hours: float = 24, seed: int = 1,
           pilots_per_job: float = 0.5, log=print) -> tuple[dict, bool]:
    """Reuse the dataset when it exists, completed and is younger than ``max_age_hours``; else generate.
    Returns (metadata, reused)."""
    conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db.get("password") or "",
                           autocommit=True)
    try:
        meta = None if force else read_meta(conn, ds)
        if meta and time.time() - meta.get("t0", 0) <= max_age_hours * 3600:
            log(f"generate: reusing {ds.jobdb} (generated {meta.get('created')}, {meta.get('load_seconds')} s)")
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (ds.logdb,))
                if not cur.fetchone()[0]:  # datasets made before JobLoggingDB was part of them
                    create_databases(conn, ds.generation, {"JobLoggingDB": ds.logdb})
            return meta, True
    finally:
        conn.close()
    log(f"generate: filling {ds.jobdb} with {ds.jobs} jobs ({ds.active} active), DIRAC {ds.generation} schema")
    return generate(db, ds, seed=seed, pilots_per_job=pilots_per_job, log=log), False


def default_active(jobs: int) -> int:
    return max(1, math.ceil(jobs / 100))


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, required=True, help="number of jobs (1000 .. 100000000)")
    p.add_argument("--active", type=int, help="jobs in non-final states (default 1 %% of --jobs)")
    p.add_argument("--generation", default="8.0", help="DIRAC schema generation: 8.0 (default) or 9.1")
    p.add_argument("--prefix", default="bes_bench", help="database name prefix (default bes_bench)")
    p.add_argument("--pilots-per-job", type=float, default=0.5, help="pilots per job (default 0.5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--force", action="store_true", help="regenerate even if a complete dataset exists")
    p.add_argument("--drop", action="store_true", help="drop the dataset's databases and exit")
    p.add_argument("--db-host", default="127.0.0.1")
    p.add_argument("--db-port", type=int, default=3306)
    p.add_argument("--db-user", default="root")
    args = p.parse_args(argv)
    db = {"host": args.db_host, "port": args.db_port, "user": args.db_user,
          "password": os.environ.get("BES_BENCH_DB_PASSWORD", "")}
    try:
        ds = Dataset(args.jobs, args.active or default_active(args.jobs), args.generation, args.prefix)
        if not 0 <= args.pilots_per_job <= 10:
            raise ValueError(f"--pilots-per-job {args.pilots_per_job}: give a number from 0 to 10")
        if args.drop:
            conn = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"])
            drop(conn, ds)
            conn.close()
            print(f"generate: dropped {', '.join(ds.databases)}")
            return 0
        meta, _ = ensure(db, ds, force=args.force, seed=args.seed, pilots_per_job=args.pilots_per_job)
    except (ValueError, RuntimeError, SchemaError, pymysql.MySQLError, OSError) as exc:
        print(f"bench.generate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
