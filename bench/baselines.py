"""What we compare against: the minimal indexed queries (mysql client) and the naive sql-exporter.

The *minimal* queries compute what our enabled scrapers need, each along an index of DIRAC's schema,
over the same change window as the exporter, in time proportional to the active and changed rows;
they are timed inside one ``mysql`` client session (SYSDATE(6) before and after, so neither process
start nor login is counted).

The *naive* baseline is Debian's ``prometheus-sql-exporter`` (justwatchcom/sql_exporter) with the
queries a user would write: GROUP BY Site, Status over Jobs, the per-host join Jobs x JobParameters
over the last 24 h as BES3's DIRAC extension (IHEPDIRAC WorkNodeIHEPCommand) did it, and the plain
GROUP BYs for pilots, running jobs with an old heartbeat and the site mask. One collection cycle is one
start of the process (its jobs run once at start, then every ``interval``).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import yaml

from .dataset import PROBE_GROUP, Dataset
from .generate import mysql_cmd
from .measure import BenchError, Counters, Stats, free_port, stop, wait_http

ACTIVE = ("Submitting", "Received", "Checking", "Staging", "Scouting", "Waiting", "Matched", "Rescheduled",
          "Running", "Stalled", "Completing")
FINAL = ("Done", "Completed", "Failed", "Killed")
_IN_ACTIVE = ", ".join(f"'{s}'" for s in ACTIVE)
_IN_FINAL = ", ".join(f"'{s}'" for s in FINAL)


def minimal_queries(ds: Dataset, scrapers: list[str], window_s: int, new_pilots: int = 10) -> list[str]:
    """The least database work behind each enabled scraper's metrics (one statement each)."""
    j, p = f"`{ds.jobdb}`", f"`{ds.pilotdb}`"
    out = []
    if {"jobs", "heartbeat"} & set(scrapers):
        # one pass over the active rows (StatusSite range + one row read each): active counts, probe
        # counts and heartbeat buckets together, in time proportional to the active jobs only
        out.append(f"SELECT Status, Site, JobGroup = '{PROBE_GROUP}' AS probe,"
                   f" IF(Status IN ('Running', 'Completing'), INTERVAL(TIMESTAMPDIFF(SECOND,"
                   f" COALESCE(HeartBeatTime, StartExecTime, LastUpdateTime), UTC_TIMESTAMP()) - 1,"
                   f" 300, 900, 1800, 2700, 3600, 4500, 7200, 11700), -1) AS b, COUNT(*)"
                   f" FROM {j}.Jobs FORCE INDEX (StatusSite) WHERE Status IN ({_IN_ACTIVE})"
                   f" GROUP BY Status, Site, probe, b")
    if {"finished", "wait"} & set(scrapers):
        out.append(f"SELECT JobID, Site, Status, MinorStatus, JobGroup, RescheduleCounter, LastUpdateTime,"
                   f" SubmissionTime, StartExecTime, EndExecTime FROM {j}.Jobs"
                   f" WHERE LastUpdateTime >= UTC_TIMESTAMP() - INTERVAL {window_s} SECOND")
    if "site_status" in scrapers:
        out.append(f"SELECT Site, Status FROM {j}.SiteMask" if ds.old else
                   f"SELECT Name, Status FROM `{ds.rssdb}`.SiteStatus WHERE StatusType = 'all'")
    if "hosts" in scrapers and ds.old:
        out.append(f"SELECT J.JobID, J.Site, J.Status, JP.Value FROM {j}.Jobs J JOIN {j}.JobParameters JP"
                   f" ON JP.JobID = J.JobID AND JP.Name = 'HostName'"
                   f" WHERE J.LastUpdateTime >= UTC_TIMESTAMP() - INTERVAL {window_s} SECOND"
                   f" AND J.Status IN ({_IN_FINAL})")
    if "pilots" in scrapers:  # active pilots grouped in the server; pilots created since the last look
        out.append(f"SELECT GridSite, DestinationSite, Status, COUNT(*), MIN(SubmissionTime) FROM {p}.PilotAgents"
                   f" WHERE Status IN ('Submitted', 'Waiting', 'Running', 'Unknown', 'Scheduled')"
                   f" GROUP BY GridSite, DestinationSite, Status")
        out.append(f"SELECT PilotID, GridSite, DestinationSite, Status FROM {p}.PilotAgents"
                   f" WHERE PilotID > (SELECT MAX(PilotID) FROM {p}.PilotAgents) - {new_pilots}")
    return out


def run_minimal(db: dict, user: str, password: str, queries: list[str], repeats: int, timeout: float,
                warmup: int = 0) -> dict:
    """Time the minimal queries ``repeats`` times (after ``warmup`` untimed runs, as the exporter's
    warm-up scrapes), each run in one fresh mysql client session."""
    script = "SET @t0 = SYSDATE(6);\n" + ";\n".join(queries) + ";\n" \
             "SELECT CONCAT('elapsed_us=', TIMESTAMPDIFF(MICROSECOND, @t0, SYSDATE(6)));\n"
    cfg = {**db, "user": user}
    times = []
    deadline = time.monotonic() + timeout
    for i in range(warmup + repeats):
        if time.monotonic() > deadline:
            break
        try:
            out = subprocess.run(mysql_cmd(cfg) + ["--skip-column-names"], input=script, capture_output=True,
                                 text=True, timeout=max(1.0, deadline - time.monotonic()),
                                 env={"MYSQL_PWD": password, "PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired:
            raise BenchError(f"the minimal queries did not finish within {timeout:.0f} s") from None
        if out.returncode != 0:
            raise BenchError(f"mysql client (minimal queries): {out.stderr.strip().splitlines()[-1]}")
        last = [ln for ln in out.stdout.splitlines() if ln.startswith("elapsed_us=")][-1]
        if i >= warmup:
            times.append(int(last.split("=", 1)[1]) / 1e6)
    return {"runs_s": [round(t, 6) for t in times], "median_s": statistics.median(times) if times else None}


def naive_queries(ds: Dataset) -> list[dict]:
    """The straightforward sql-exporter queries for the same metrics (what a user would write)."""
    j, p = f"`{ds.jobdb}`", f"`{ds.pilotdb}`"
    qs = [
        {"name": "dirac_jobs", "help": "Jobs per site and status.", "labels": ["site", "status"], "values": ["jobs"],
         "query": f"SELECT Site AS site, Status AS status, COUNT(*) AS jobs FROM {j}.Jobs GROUP BY Site, Status"},
    ]
    if ds.old:  # label "node": sql_exporter adds its own "host" (the database server) to every series
        qs.append({
            "name": "dirac_host_jobs_24h", "help": "Jobs per worker node that ended in the last 24 hours.",
            "labels": ["site", "node", "status"], "values": ["jobs"],
            "query": f"SELECT J.Site AS site, JP.Value AS node, J.Status AS status, COUNT(*) AS jobs"
                     f" FROM {j}.Jobs J, {j}.JobParameters JP WHERE J.JobID = JP.JobID AND JP.Name = 'HostName'"
                     f" AND J.EndExecTime >= DATE_SUB(UTC_TIMESTAMP(), INTERVAL 24 HOUR)"
                     f" GROUP BY J.Site, JP.Value, J.Status"})
    qs += [
        {"name": "dirac_running_jobs_no_heartbeat", "help": "Running jobs without a heartbeat for 75 minutes.",
         "labels": ["site"], "values": ["jobs"],
         "query": f"SELECT Site AS site, COUNT(*) AS jobs FROM {j}.Jobs WHERE Status = 'Running'"
                  f" AND HeartBeatTime < UTC_TIMESTAMP() - INTERVAL 4500 SECOND GROUP BY Site"},
        {"name": "dirac_pilots", "help": "Pilots per site, CE and status.", "labels": ["site", "ce", "status"],
         "values": ["pilots"],
         "query": f"SELECT GridSite AS site, DestinationSite AS ce, Status AS status, COUNT(*) AS pilots"
                  f" FROM {p}.PilotAgents GROUP BY GridSite, DestinationSite, Status"},
        {"name": "dirac_site_mask", "help": "Site mask.", "labels": ["site", "status"], "values": ["up"],
         "query": (f"SELECT Site AS site, Status AS status, 1 AS up FROM {j}.SiteMask" if ds.old else
                   f"SELECT Name AS site, Status AS status, 1 AS up FROM `{ds.rssdb}`.SiteStatus")},
    ]
    return qs


def naive_config(ds: Dataset, user: str, password: str, db: dict) -> dict:
    return {"jobs": [{
        "name": "dirac", "interval": "1h",
        "connections": [f"mysql://{user}:{password}@tcp({db['host']}:{db['port']})/{ds.jobdb}"],
        "queries": naive_queries(ds),
    }]}


def run_naive(db: dict, ds: Dataset, stats: Stats, user: str, password: str, workdir: Path, cycles: int,
              timeout: float, log=print) -> dict:
    """Start prometheus-sql-exporter ``cycles`` times; each start runs every query once: record the
    account's busy time and rows read per cycle, and the wall time until the cycle ended."""
    queries = naive_queries(ds)
    cfg_path = workdir / "sql-exporter.yml"
    cfg_path.write_text(yaml.safe_dump(naive_config(ds, user, password, db), sort_keys=False))
    cfg_path.chmod(0o600)
    out = {"queries": {q["name"]: q["query"] for q in queries}, "cycles": []}
    for i in range(cycles):
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        before = stats.account(user)
        t0 = time.perf_counter()
        proc = subprocess.Popen(["prometheus-sql-exporter", "-config.file", str(cfg_path),
                                 "-web.listen-address", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(workdir / "sql-exporter.log", "ab"),
                                env={"LOGLEVEL": "warn", "PATH": "/usr/bin:/bin"})
        try:
            wait_http(url, proc, 30)
            deadline = time.monotonic() + timeout
            while True:  # the cycle ends when every query has run and the account is idle again
                now = stats.account(user) - before
                if now.selects >= len(queries) and not stats.busy(user):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"naive cycle {i + 1} did not finish within {timeout:.0f} s")
                if proc.poll() is not None:
                    raise BenchError(f"prometheus-sql-exporter exited ({proc.returncode}); see {workdir}")
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            delta: Counters = stats.account(user) - before
        finally:
            stop(proc)
        out["cycles"].append({"db_s": round(delta.busy_s, 4), "cpu_s": round(delta.cpu_s, 4),
                              "rows_examined": delta.rows_read, "wall_s": round(wall, 3), "selects": delta.selects})
        log(f"naive: cycle {i + 1}/{cycles}: {delta.busy_s:.3f} s database time, {delta.rows_read} rows examined")
    per = out["cycles"]
    out["cycle_db_s"] = statistics.median(c["db_s"] for c in per)
    out["rows_examined_per_cycle"] = int(statistics.median(c["rows_examined"] for c in per))
    out["cycle_wall_s"] = statistics.median(c["wall_s"] for c in per)
    return out


def explain(conn, queries: list[str]) -> list[dict]:
    """EXPLAIN of each statement (key used, rows estimate), for the report."""
    out = []
    with conn.cursor() as cur:
        for q in queries:
            cur.execute("EXPLAIN " + q)
            cols = [d[0] for d in cur.description]
            out.append({"query": " ".join(q.split()),
                        "plan": [{k: v for k, v in zip(cols, row) if k in ("table", "type", "key", "rows", "Extra")}
                                 for row in cur.fetchall()]})
    return out
