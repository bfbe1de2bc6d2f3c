"""100 000 active jobs: DIRAC's own code writes, also without moving LastUpdateTime, while the exporter
re-reads the active jobs a share per scrape; once a whole pass of its sweep started after the writes
(``dirac_jobs_last_resync_timestamp_seconds``), the gauges equal a direct GROUP BY, within two passes.

Driving 100 k lives through DIRAC's classes would take many minutes, so the rows are written in bulk *as
DIRAC writes them*: one template job per status is taken there by DIRAC's own actions (JobManager
submission, JobPath/JobSanity, the Matcher, JobReport, the Watchdog's heartbeat, StalledJobAgent), and its
``JobJDLs`` and ``Jobs`` rows are copied with new JobIDs (``INSERT ... SELECT`` over MariaDB's SEQUENCE
engine), statuses interleaved by JobID, the site varied among the scenario's sites, the last update an
hour back (a steady state, not 100 k changes in the last minute) and the heartbeats of the
Running/Completing copies spread 0, 1000 and 2000 s back (far from every bucket bound for the test's
duration). After the exporter's first scrape DIRAC's own code writes again, on copies and on fresh jobs."""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections import Counter

from dirac_harness import PROBE_GROUP, SITES
from fidelity_util import diff
from metrics_util import Exporter
from scenario import running

from bes_exporter.labels import site_label

N = 100_000
SLOTS = 20  # a copy's status is its JobID's slot among 20: 10 Running, 6 Waiting, one each of the others
STATUS_SLOTS = {"Running": range(0, 10), "Waiting": range(10, 16), "Matched": (16,), "Stalled": (17,),
                "Completing": (18,), "Received": (19,)}
ACTIVE = ("Received", "Checking", "Waiting", "Matched", "Running", "Stalled", "Completing")
BUCKETS = (300, 900, 1800, 2700, 3600, 4500, 7200, 11700)
ROWS = {"jobs": 1000, "heartbeat": 1500}  # the defaults: rows of each sweep per scrape

COPY_JDL = """
INSERT INTO `{db}`.JobJDLs (JobID, JDL, JobRequirements, OriginalJDL)
SELECT {base} + seq, JDL, JobRequirements, OriginalJDL FROM `{db}`.JobJDLs t JOIN seq_1_to_{n} s
WHERE t.JobID = %s AND MOD(seq, {slots}) IN ({slots_in})
"""
COPY_JOB = """
INSERT INTO `{db}`.Jobs ({cols}, JobID, Site, HeartBeatTime, LastUpdateTime)
SELECT {cols}, {base} + seq, ELT(1 + MOD(seq DIV {slots}, {n_sites}), {sites}),
       HeartBeatTime - INTERVAL MOD(seq DIV 100, 3) * 1000 SECOND, LastUpdateTime - INTERVAL 1 HOUR
FROM `{db}`.Jobs t JOIN seq_1_to_{n} s
WHERE t.JobID = %s AND MOD(seq, {slots}) IN ({slots_in})
"""


def templates(h) -> dict[str, int]:
    """One job per status, taken there by DIRAC's own actions."""
    site, ce = "BES.UCAS.cn", SITES["BES.UCAS.cn"]
    out = {"Received": h.submit(site)}
    out["Waiting"] = h.submit(site)
    h.optimize(out["Waiting"])
    out["Matched"] = h.submit(site)
    h.optimize(out["Matched"])
    h.match(out["Matched"], site, h.submit_pilots(site, ce, "long", 1)[0], ce)
    out["Running"], _ = running(h, site, ce)
    out["Completing"], _ = running(h, site, ce)
    h.report(out["Completing"], "Completing", "Uploading Output Sandbox")
    out["Stalled"], _ = running(h, site, ce)
    deadline = time.monotonic() + 10
    time.sleep(1.1)  # StalledJobAgent's stalledTime here: no sign of life for a second
    while not h.mark_stalled(out["Stalled"]):
        assert time.monotonic() < deadline, "the template job never stalled"
        time.sleep(0.3)
    return out


def copy(env, template: int, slots, base: int) -> None:
    cols = [c for (c,) in env.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
                                    " AND TABLE_NAME = 'Jobs'", (env.dbs.jobdb,))
            if c not in ("JobID", "Site", "HeartBeatTime", "LastUpdateTime")]
    fmt = {"db": env.dbs.jobdb, "base": base, "n": N, "slots": SLOTS, "slots_in": ", ".join(map(str, slots)),
           "cols": ", ".join(f"`{c}`" for c in cols), "n_sites": len(SITES),
           "sites": ", ".join(f"'{s}'" for s in SITES)}
    with env.conn.cursor() as cur:
        cur.execute(COPY_JDL.format(**fmt), (template,))
        cur.execute(COPY_JOB.format(**fmt), (template,))


def group_by(env) -> tuple[Counter, Counter]:
    """(site, status) counts of the active non-probe jobs and of the probe jobs, straight from JobDB."""
    rows = env.query(f"SELECT Site, Status, JobGroup = %s, COUNT(*) FROM `{env.dbs.jobdb}`.Jobs"
                     f" WHERE Status IN ({', '.join(['%s'] * len(ACTIVE))}) GROUP BY Site, Status, JobGroup = %s",
                     (PROBE_GROUP, *ACTIVE, PROBE_GROUP))
    jobs, probes = Counter(), Counter()
    for site, status, probe, n in rows:
        (probes if probe else jobs)[(site_label(site), status)] += n
    return jobs, probes


def heartbeat_buckets(env) -> Counter:
    """(site, bucket bound) counts of the non-probe Running/Completing jobs by their heartbeat age now."""
    rows = env.query(
        f"SELECT Site, INTERVAL(GREATEST(TIMESTAMPDIFF(SECOND, COALESCE(HeartBeatTime, StartExecTime, LastUpdateTime),"
        f" UTC_TIMESTAMP()), 0) - 1, {', '.join(map(str, BUCKETS))}), COUNT(*) FROM `{env.dbs.jobdb}`.Jobs"
        " WHERE Status IN ('Running', 'Completing') AND JobGroup <> %s GROUP BY 1, 2", (PROBE_GROUP,))
    out: Counter = Counter()
    for site, b, n in rows:
        out[(site_label(site), str((*BUCKETS, "+Inf")[b]))] += n
    return out


def exported_buckets(s) -> Counter:
    """The same from the exporter's gauge histogram (its cumulative buckets made per-bucket again)."""
    out: Counter = Counter()
    for site in {labels["site"] for labels in s.series("dirac_running_jobs_heartbeat_age_seconds_gcount")}:
        below = 0
        for bound in (*map(str, BUCKETS), "+Inf"):
            cumulative = s.v("dirac_running_jobs_heartbeat_age_seconds_bucket", site=site, le=bound)
            if cumulative - below:
                out[(site, bound)] += int(cumulative - below)
            below = cumulative
    return out


def rows_examined(exp: Exporter) -> int:
    return sum(int(v) for _, v in exp.collector.db.query("SHOW SESSION STATUS LIKE 'Handler_read%'"))


def test_gauges_equal_group_by_after_a_pass_with_100k_active_jobs(env):
    h = env.harness()
    made = templates(h)
    probe = h.submit("BES.JINR.ru", group=PROBE_GROUP)
    h.optimize(probe)
    h.match(probe, "BES.JINR.ru", h.submit_pilots("BES.JINR.ru", SITES["BES.JINR.ru"], "long", 1)[0],
            SITES["BES.JINR.ru"])
    h.report(probe, "Running", "Application", app="Running")
    h.heartbeat(probe)
    base = probe + 1000
    for status, slots in STATUS_SLOTS.items():
        copy(env, made[status], slots, base)
    copy(env, probe, (9,), base + N)  # 5 000 Running probe jobs besides
    exp = Exporter(env.exporter_config(resync_seconds=1800, resync_rows=ROWS["jobs"], page_rows=5000,
                                       max_rows_per_scrape=200_000)
                   | {"heartbeat": {"rows": ROWS["heartbeat"], "period_seconds": 1200}})
    s = exp.scrape()  # the baseline: every active job, once
    jobs, probes = group_by(env)
    assert sum(jobs.values()) > N and sum(probes.values()) == 5001
    assert s.nonzero("dirac_jobs", "site", "status") == jobs
    assert s.nonzero("dirac_probe_jobs", "site", "status") == probes

    # DIRAC writes again. Without moving LastUpdateTime: the Watchdog's heartbeat on 100 Stalled copies
    # and on 5 jobs already Done (Status back to Running); with it: StalledJobAgent, kills, new lives.
    copies = range(base + 1, base + N + 1)
    stalled = [j for j in copies if (j - base) % SLOTS == 17][:100]
    waiting = [j for j in copies if (j - base) % SLOTS == 10][:20]
    beating = [j for j in copies if (j - base) % SLOTS == 0 and (j - base) // 100 % 3 == 2][:20]  # 2000 s
    done = [running(h)[0] for _ in range(5)]
    for job in done:
        h.report(job, "Done", "Execution Complete", app="Finished")
    exp.scrape()
    for job in stalled + done:
        h.heartbeat(job)
    for job in waiting:
        h.kill(job)
    for job in beating:  # 2000 s without a heartbeat: StalledJobAgent marks them at once
        assert h.mark_stalled(job)
    fresh = [h.submit("BES.USTC.cn") for _ in range(5)]
    for job in fresh[:3]:
        h.optimize(job)
    written = env.query("SELECT UTC_TIMESTAMP()")[0][0]
    assert env.query(f"SELECT COUNT(*) FROM `{env.dbs.jobdb}`.Jobs WHERE Status = 'Running' AND JobID IN"
                     f" ({', '.join(map(str, stalled + done))})") == ((105,),)
    jobs, probes = group_by(env)
    hb = heartbeat_buckets(env)

    # Scrape until a pass of both sweeps started after the writes: within two passes of the slower one.
    n_running = sum(n for (_, status), n in jobs.items() if status in ("Running", "Completing"))
    passes = max(math.ceil((n_running + 5001) / ROWS["heartbeat"]), math.ceil((sum(jobs.values()) - n_running)
                                                                              / ROWS["jobs"]))
    costs, exact_from = [], None
    for i in range(2 * passes + 2):
        before = rows_examined(exp)
        s = exp.scrape()
        costs.append(rows_examined(exp) - before)
        resynced = dt.datetime.fromtimestamp(s.v("dirac_jobs_last_resync_timestamp_seconds"), dt.timezone.utc)
        if resynced.replace(tzinfo=None) > written:  # a whole pass started after the writes: exact from here on
            exact_from = i if exact_from is None else exact_from
            got = s.nonzero("dirac_jobs", "site", "status")
            assert got == jobs, f"scrape {i}:\n{diff(jobs, got)}"
            assert s.nonzero("dirac_probe_jobs", "site", "status") == probes
            assert exported_buckets(s) == hb, diff(hb, exported_buckets(s))
    assert exact_from is not None, f"no pass of the sweeps started after the writes in {2 * passes + 2} scrapes"
    assert exact_from <= 2 * passes
    # each scrape read a share of the active jobs, not all of them: the two sweeps' rows and what changed
    assert statistics.median(costs) < 2 * sum(ROWS.values()), costs
    print(f"100 k active: exact after {exact_from + 1} scrapes (a pass: {passes}), rows examined per scrape"
          f" median {statistics.median(costs):.0f}, max {max(costs)}")
