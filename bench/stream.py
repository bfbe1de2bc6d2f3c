"""A steady stream of DIRAC status transitions between scrapes, written the way DIRAC writes them
(``DiracWriter``): submissions, optimizers, matching, starts with the Watchdog's HostName and a
heartbeat, Done/Failed ends, plus the rarer stall, kill and reschedule, and pilot status changes.

Every step moves one job one stage on, picking uniformly among the stages that have jobs, so
submissions and ends balance and the number of active jobs stays where the dataset put it.
"""

from __future__ import annotations

import random
import time

from bes_simulator.writer import Databases, DiracWriter

from .dataset import SITE_WEIGHTS, SITES, hosts_of
from .generate import FAIL_MIX, _cum

# (stage, weight): the five stages of a job's life, then rarer events
STEPS = (("submit", 18), ("optimize", 18), ("match", 18), ("start", 18), ("finish", 18), ("heartbeat", 5),
         ("stall", 1), ("fail_stalled", 1), ("kill", 1), ("reschedule", 1))


class _Pool:
    """Job IDs (with their site) in one stage; random removal in O(1)."""

    def __init__(self):
        self.items: list[tuple[int, str]] = []

    def add(self, job: int, site: str) -> None:
        self.items.append((job, site))

    def take(self, rng: random.Random) -> tuple[int, str]:
        i = rng.randrange(len(self.items))
        self.items[i], self.items[-1] = self.items[-1], self.items[i]
        return self.items.pop()

    def peek(self, rng: random.Random) -> tuple[int, str]:
        return self.items[rng.randrange(len(self.items))]

    def __len__(self) -> int:
        return len(self.items)


class LiveDirac:
    """DIRAC's write traffic over one connection (autocommit), against a benchmark dataset."""

    def __init__(self, conn, jobdb: str, pilotdb: str, generation: str, seed: int = 7, logdb: str | None = None):
        self.conn = conn
        self.rng = random.Random(seed)
        self.w = DiracWriter(conn, Databases(jobdb=jobdb, pilotdb=pilotdb, logdb=logdb, generation=generation))
        self.jobdb, self.pilotdb = jobdb, pilotdb
        self.pools = {k: _Pool() for k in ("received", "waiting", "matched", "running", "stalled", "failed")}
        self.pilots = {k: _Pool() for k in ("Submitted", "Running")}
        self.hosts = {s: hosts_of(i) for i, s in enumerate(SITES)}
        self.site_names, self.site_cum = list(SITES), _cum(zip(SITES, SITE_WEIGHTS))[1]
        self.fail_names, self.fail_cum = _cum(FAIL_MIX)
        self.counts: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        """The dataset's active jobs and pilots, by stage (read before any measurement starts)."""
        stage = {"Received": "received", "Checking": "received", "Waiting": "waiting", "Staging": "waiting",
                 "Rescheduled": "waiting", "Matched": "matched", "Running": "running", "Completing": "running",
                 "Stalled": "stalled"}
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT JobID, Status, Site FROM `{self.jobdb}`.Jobs WHERE Status IN %s "
                        "AND JobGroup <> 'bes_probe'", (tuple(stage),))
            for job, status, site in cur.fetchall():
                self.pools[stage[status]].add(job, site)
            cur.execute(f"SELECT PilotID, Status, GridSite FROM `{self.pilotdb}`.PilotAgents WHERE Status IN "
                        "('Submitted', 'Waiting', 'Running')")
            for pid, status, site in cur.fetchall():
                self.pilots["Running" if status == "Running" else "Submitted"].add(pid, site)

    def active(self) -> int:
        return sum(len(p) for k, p in self.pools.items() if k != "failed")

    def tick(self, transitions: int, pilot_transitions: int, deadline: float) -> int:
        """Apply up to ``transitions`` job and ``pilot_transitions`` pilot transitions before
        ``deadline`` (time.monotonic()); returns how many were applied."""
        done = 0
        names, weights = zip(*STEPS)
        for _ in range(transitions):
            if time.monotonic() >= deadline:
                break
            for _attempt in range(10):  # a stage may be empty: pick again (bounded)
                step = self.rng.choices(names, weights)[0]
                if getattr(self, f"_{step}")():
                    self.counts[step] = self.counts.get(step, 0) + 1
                    done += 1
                    break
        for _ in range(pilot_transitions):
            if time.monotonic() >= deadline:
                break
            self._pilot()
            done += 1
        return done

    def _site(self) -> str:
        return self.rng.choices(self.site_names, cum_weights=self.site_cum)[0]

    def _submit(self) -> bool:
        job = self.w.submit(job_group="00000000", owner="user001", owner_group="bes_user", job_name="bench")
        self.pools["received"].add(job, "ANY")
        return True

    def _optimize(self) -> bool:
        if not self.pools["received"]:
            return False
        job, site = self.pools["received"].take(self.rng)
        self.w.optimize(job)
        self.pools["waiting"].add(job, site)
        return True

    def _match(self) -> bool:
        if not self.pools["waiting"]:
            return False
        job, _ = self.pools["waiting"].take(self.rng)
        site = self._site()
        self.w.match(job, site)
        self.pools["matched"].add(job, site)
        return True

    def _start(self) -> bool:
        if not self.pools["matched"]:
            return False
        job, site = self.pools["matched"].take(self.rng)
        self.w.set_status(job, "Running", "Application", "Running")
        hosts = self.hosts.get(site) or ["wn0000.unknown.site"]
        self.w.set_host(job, hosts[self.rng.randrange(len(hosts))])
        self.w.heartbeat(job)
        self.pools["running"].add(job, site)
        return True

    def _finish(self) -> bool:
        if not self.pools["running"]:
            return False
        job, site = self.pools["running"].take(self.rng)
        if self.rng.random() < 0.85:
            self.w.set_status(job, "Done", "Execution Complete", "Finished")
        else:
            reason = self.rng.choices(self.fail_names, cum_weights=self.fail_cum)[0]
            self.w.set_status(job, "Failed", reason, "Error")
            self.pools["failed"].add(job, site)
            if len(self.pools["failed"]) > 1000:
                self.pools["failed"].take(self.rng)
        return True

    def _heartbeat(self) -> bool:
        if not self.pools["running"]:
            return False
        job, _ = self.pools["running"].peek(self.rng)
        self.w.heartbeat(job)
        return True

    def _stall(self) -> bool:
        if not self.pools["running"]:
            return False
        job, site = self.pools["running"].take(self.rng)
        self.w.stall(job)
        self.pools["stalled"].add(job, site)
        return True

    def _fail_stalled(self) -> bool:
        if not self.pools["stalled"]:
            return False
        job, site = self.pools["stalled"].take(self.rng)
        self.w.fail_stalled(job)
        self.pools["failed"].add(job, site)
        return True

    def _kill(self) -> bool:
        if not self.pools["waiting"]:
            return False
        job, _ = self.pools["waiting"].take(self.rng)
        self.w.kill(job)
        return True

    def _reschedule(self) -> bool:
        if not self.pools["failed"]:
            return False
        job, _ = self.pools["failed"].take(self.rng)
        if self.w.reschedule(job):  # past MaxRescheduling the job stays Failed, and leaves the stream
            self.pools["received"].add(job, "ANY")
        return True

    def _pilot(self) -> None:
        """One pilot step: submit, start or end (Done 85 %, else Aborted), balanced like the jobs."""
        step = self.rng.randrange(3)
        if step == 1 and self.pilots["Submitted"]:
            pid, site = self.pilots["Submitted"].take(self.rng)
            self.w.set_pilot_status(pid, "Running", "Not given")
            self.pilots["Running"].add(pid, site)
        elif step == 2 and self.pilots["Running"]:
            pid, _ = self.pilots["Running"].take(self.rng)
            status = "Done" if self.rng.random() < 0.85 else "Aborted"
            self.w.set_pilot_status(pid, status, "Normal exit" if status == "Done" else "Job aborted")
        else:
            site = self._site()
            ce = f"ce01.{site.lower().split('.', 1)[1]}"
            pid = self.w.submit_pilot(site, ce, f"{ce}-condor-bes")
            self.pilots["Submitted"].add(pid, site)
