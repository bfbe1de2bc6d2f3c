"""A fidelity scenario written by DIRAC's services themselves (tests/fidelity drives DIRAC's DB classes).

A small mixed workload goes through the real server (JobManager, optimizers, Matcher, a JobAgent and its
job wrapper, JobStateUpdate; user deletions through the JobManager) while ``bes-exporter``, a real
server process on the same databases, is scraped every 50-250 ms with no coordination at all: a scrape
can land anywhere inside a service's writes. Ground truth, as in tests/fidelity: each life's first final
LoggingInfo record, for the lives that ran at a site (jobs deleted while waiting never ran: counted nowhere).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from real_dirac_fixtures import CLIENT, IDLE_SITE, ROOT, WORKER_SITE, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fidelity"))  # fidelity_util
from fidelity_util import ExporterProcess, History, Scrape, ScrapeLoop, diff, exported  # noqa: E402

from bes_exporter.labels import FINAL_STATES  # noqa: E402

SEED = 20261205
TIMEOUT = 240


def first_finals(real_dirac, job_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Per job, (Status, MinorStatus) of its first final LoggingInfo record (single-life jobs here; DIRAC
    writes MinorStatus "idem" when it did not change)."""
    out = {}
    for jid in job_ids:
        rows = real_dirac.query(f"SELECT Status, MinorStatus FROM `{real_dirac.db('JobLoggingDB')}`.LoggingInfo"
                                " WHERE JobID=%s ORDER BY StatusTimeOrder, SeqNum", (jid,))
        final = next(((s, m) for s, m in rows if s in FINAL_STATES), None)
        if final:
            out[jid] = final
    return out


def test_exporter_counts_what_dirac_services_wrote(real_dirac, tmp_path):
    config = {**real_dirac.exporter_config(),
              "jobs": {"overlap_seconds": 120, "resync_seconds": 1, "page_rows": 100}}
    exporter = ExporterProcess(config, tmp_path).start()
    history = History()
    try:
        t = time.time()
        history.add(Scrape(t, t, exporter.scrape(), "first"))  # the baseline: lives ending later are counted
        loop = ScrapeLoop(exporter, history, _NoGate(), random.Random(SEED), max_seconds=TIMEOUT + 60)
        loop.start()
        try:
            proc = subprocess.run([sys.executable, str(CLIENT), str(real_dirac.cfg), "workload", WORKER_SITE,
                                   IDLE_SITE, str(TIMEOUT), str(SEED)], env=real_dirac.env(real_dirac.user_proxy),
                                  capture_output=True, text=True, timeout=TIMEOUT + 60, cwd=ROOT)
        finally:
            loop.stop()
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert not result.get("unfinished") and "jobs" in result, (result, real_dirac.log_tail("optimizers"))
        jobs = {int(k): v for k, v in result["jobs"].items()}

        # Ground truth from what DIRAC wrote.
        logged = first_finals(real_dirac, list(jobs))
        want: Counter = Counter()
        failed: Counter = Counter()
        for jid, kind in jobs.items():
            row = real_dirac.job(jid)
            if kind == "deleted":
                assert row["Status"] == "Deleted" and jid not in logged, (jid, row, logged.get(jid))
                # deleted while waiting: it never ran at the site, so it is no site's (docs/metrics.md)
            else:
                status = logged[jid][0]
                assert status == ("Done" if kind == "done" else "Failed"), (jid, kind, logged[jid])
                want[(row["Site"], status)] += 1
                if status == "Failed":  # the reason comes from the job's MinorStatus (LoggingInfo says "idem")
                    assert row["MinorStatus"] == "Application Finished With Errors", row
                    failed[(row["Site"], "application_error")] += 1
        assert want == Counter({(WORKER_SITE, "Done"): 2, (WORKER_SITE, "Failed"): 1})
        assert sum(kind == "deleted" for kind in jobs.values()) == 3  # deleted while waiting at IDLE_SITE

        # The exporter, after its window caught up, counts exactly those lives.
        def counted():
            s = exporter.scrape()
            history.add(Scrape(0, 0, s, "final"))
            got = exported(s, "dirac_jobs_finished_total", "site", "status")
            return s if got == want else None

        final = wait_for(counted, 30)
        last = history.scrapes[-1].samples
        assert final is not None, diff(want, exported(last, "dirac_jobs_finished_total", "site", "status"))
        assert exported(final, "dirac_jobs_failed_total", "site", "reason") == failed
        assert not history.decreases()
        assert len(history.scrapes) > 20  # scrapes really landed while the services wrote
    finally:
        exporter.stop()


class _NoGate:
    """No turn-taking: DIRAC's services write when they write, the exporter scrapes when it scrapes."""

    def closed(self):
        from contextlib import nullcontext

        return nullcontext()
