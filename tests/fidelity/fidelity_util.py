"""The fidelity tests' moving parts: the exporter as a real server, a scrape loop that runs while DIRAC
writes, a gate that lets scrapes in only between DIRAC actions, and the comparison with ground truth."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dirac_harness import MISSING_SANDBOX_ERROR
from metrics_util import Samples, http_scrape

from bes_exporter.labels import site_label

# DIRAC's failure MinorStatus strings written by the scenarios -> reason codes of docs/metrics.md.
REASONS = {
    "Application Finished With Errors": "application_error",
    "Job stalled: pilot not running": "stalled_pilot_not_running",
    "Stalling for more than 1 sec": "stalling",
    "Job has reached the CPU limit of the queue": "cpu_limit",
    "Exception During Execution": "exception_during_execution",
    "Maximum of reschedulings reached": "max_reschedulings",
}
# Failures before running written by the scenarios: (MinorStatus, ApplicationStatus) -> (stage, reason);
# an ApplicationStatus of None stands for any.
BEFORE_RUNNING = {
    ("JobSanity optimizer", MISSING_SANDBOX_ERROR): ("JobSanity", "sandbox_not_available"),
    ("Maximum of reschedulings reached", None): ("other", "max_reschedulings"),
}
HISTOGRAMS = ("dirac_job_wait_seconds",)  # counter-like histograms (not the gauge histograms)


def is_counter_sample(name: str) -> bool:
    return name.endswith("_total") or any(name in (f"{h}_bucket", f"{h}_count", f"{h}_sum") for h in HISTOGRAMS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExporterProcess:
    """``bes-exporter --config.file F --web.listen-address 127.0.0.1:PORT`` as a subprocess."""

    def __init__(self, config: dict, folder: Path, name: str = "exporter"):
        self.config_file = folder / f"{name}.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.log_file = folder / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> ExporterProcess:
        exe = Path(sys.executable).with_name("bes-exporter")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bes_exporter"]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen([*cmd, "--config.file", str(self.config_file),
                                          "--web.listen-address", f"127.0.0.1:{self.port}"],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bes-exporter exited with {self.proc.returncode}: {self.log_file.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"bes-exporter did not listen on {self.port} within {timeout} s")

    def scrape(self) -> Samples:
        for attempt in range(3):
            try:
                return http_scrape(self.url, timeout=30)
            except urllib.error.URLError:
                if attempt == 2:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class Scrape:
    started: float
    ended: float
    samples: Samples
    where: str


@dataclass
class History:
    """Every scrape of one exporter process, in order."""

    scrapes: list[Scrape] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, scrape: Scrape) -> None:
        with self.lock:
            self.scrapes.append(scrape)

    def count_since(self, t: float) -> int:
        with self.lock:
            return sum(1 for s in self.scrapes if s.started > t)

    def decreases(self) -> list[str]:
        """Counter samples that went down, or vanished, from one scrape to the next."""
        bad: list[str] = []
        last: dict = {}
        for s in self.scrapes:
            now = {k: v for k, v in s.samples.items() if is_counter_sample(k[0])}
            for key, value in last.items():
                if key not in now:
                    bad.append(f"{key[0]}{dict(key[1])} vanished at {s.where}")
                elif now[key] < value:
                    bad.append(f"{key[0]}{dict(key[1])} {value} -> {now[key]} at {s.where}")
            last = now
        return bad


class Gate:
    """Scrapes and DIRAC actions take turns: actions (several at once, from several threads) share the
    gate, a scrape has it alone, so a scrape never sees an action half applied."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.actions = 0
        self.scraping = False
        self.scrapes_waiting = 0

    @contextmanager
    def action(self):
        with self.cond:
            while self.scraping or self.scrapes_waiting:
                self.cond.wait()
            self.actions += 1
        try:
            yield
        finally:
            with self.cond:
                self.actions -= 1
                self.cond.notify_all()

    @contextmanager
    def closed(self):
        """Exclusive: no action is in flight while the body runs."""
        with self.cond:
            self.scrapes_waiting += 1
            while self.scraping or self.actions:
                self.cond.wait()
            self.scrapes_waiting -= 1
            self.scraping = True
        try:
            yield
        finally:
            with self.cond:
                self.scraping = False
                self.cond.notify_all()


class ScrapeLoop(threading.Thread):
    """Scrape ``exporter`` every 50-250 ms until stopped (bounded in count and time)."""

    def __init__(self, exporter: ExporterProcess, history: History, gate: Gate, rng: random.Random,
                 max_scrapes: int = 3000, max_seconds: float = 150.0):
        super().__init__(daemon=True)
        self.exporter, self.history, self.gate, self.rng = exporter, history, gate, rng
        self.max_scrapes, self.max_seconds = max_scrapes, max_seconds
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        try:
            for n in range(self.max_scrapes):
                if self.stop_event.is_set() or time.monotonic() > deadline:
                    return
                with self.gate.closed():
                    t0 = time.time()
                    samples = self.exporter.scrape()
                    self.history.add(Scrape(t0, time.time(), samples, f"loop#{n}"))
                self.stop_event.wait(self.rng.uniform(0.05, 0.25))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=60)
        if self.error is not None:
            raise self.error


# ---- programs: one job or pilot life as a generator of DIRAC actions --------------------------------

class Wait:
    """What a program waits for before its next action."""

    def ready(self) -> bool:
        return True


@dataclass
class After(Wait):
    at: float

    def ready(self) -> bool:
        return time.time() >= self.at


@dataclass
class Scraped(Wait):
    """Until a scrape that started after this point has finished (the exporter saw the state)."""

    history: History
    since: float

    def ready(self) -> bool:
        return self.history.count_since(self.since) > 0


Program = Iterator[Wait | None]


class Scheduler:
    """Run programs in ``workers`` threads, one DIRAC action per turn, interleaved at random (seeded
    choices); actions hold the gate shared, checkpoints hold it alone."""

    def __init__(self, gate: Gate, rng: random.Random, checkpoint: Callable[[str], None] | None = None,
                 checkpoint_every: int = 150, workers: int = 4):
        self.gate, self.rng, self.checkpoint = gate, rng, checkpoint
        self.every, self.workers = checkpoint_every, workers
        self.ready: list[tuple[Program, Wait]] = []
        self.running = 0
        self.turns = 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def add(self, program: Program) -> None:
        self.ready.append((program, Wait()))

    def _take(self, deadline: float) -> Program | None:
        with self.cond:
            while True:
                if self.error is not None or (not self.ready and not self.running):
                    return None
                if time.monotonic() > deadline:
                    self.error = TimeoutError(f"scenario unfinished after {self.turns} turns")
                    return None
                now = [i for i, (_, w) in enumerate(self.ready) if w.ready()]
                if now:
                    program, _ = self.ready.pop(self.rng.choice(now))
                    self.running += 1
                    return program
                self.cond.wait(0.02)

    def _work(self, deadline: float) -> None:
        while (program := self._take(deadline)) is not None:
            done, wait = False, None
            try:
                with self.gate.action():
                    wait = next(program)
            except StopIteration:
                done = True
            except BaseException as exc:  # noqa: BLE001 - re-raised by run()
                with self.cond:
                    self.error = self.error or exc
            with self.cond:
                self.running -= 1
                if not done and self.error is None:
                    self.ready.append((program, wait or Wait()))
                self.turns += 1
                check = self.checkpoint is not None and self.turns % self.every == 0
                self.cond.notify_all()
            if check:
                with self.gate.closed():
                    self.checkpoint(f"turn {self.turns}")

    def run(self, max_seconds: float = 120.0) -> None:
        deadline = time.monotonic() + max_seconds
        threads = [threading.Thread(target=self._work, args=(deadline,), daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max_seconds + 60)
        if self.error is not None:
            raise self.error


# ---- ground truth vs metrics --------------------------------------------------------------------------

def expected_finished(lives) -> tuple[Counter, Counter]:
    """({(site, status): n}, {(site, reason): n}) for non-probe lives that ran."""
    fin: Counter = Counter()
    fail: Counter = Counter()
    for life in lives:
        if life.probe or not life.ran:
            continue
        site = site_label(life.site)
        fin[(site, life.status)] += 1
        if life.status == "Failed":
            fail[(site, REASONS.get(life.minor, "Other"))] += 1
    return fin, fail


def expected_owners(lives) -> tuple[Counter, Counter, Counter]:
    """The owners scraper's counters for non-probe lives (every owner exported): ({(site, owner, group,
    status): n} of the lives that ran, {(owner, group, reason): n} of those that failed, {(owner, group,
    stage, reason): n} of the lives that failed without running)."""
    fin: Counter = Counter()
    fail: Counter = Counter()
    before: Counter = Counter()
    for life in lives:
        if life.probe:
            continue
        if life.ran:
            fin[(site_label(life.site), *life.owner, life.status)] += 1
            if life.status == "Failed":
                fail[(*life.owner, REASONS.get(life.minor, "Other"))] += 1
        elif life.status == "Failed":
            stage_reason = BEFORE_RUNNING.get((life.minor, life.app)) or BEFORE_RUNNING.get((life.minor, None))
            before[(*life.owner, *(stage_reason or ("other", "Other")))] += 1
    return fin, fail, before


def exported(samples: Samples, name: str, *names: str) -> Counter:
    """Non-zero samples of ``name`` keyed by the values of the labels ``names``."""
    return samples.nonzero(name, *names)


def diff(expected: Counter, got: Counter) -> str:
    keys = sorted(set(expected) | set(got))
    rows = [f"  {k}: expected {expected.get(k, 0)}, exported {got.get(k, 0)}" for k in keys
            if expected.get(k, 0) != got.get(k, 0)]
    return "\n".join(rows)
