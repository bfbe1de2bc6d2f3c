"""`make demo` / `make demo-down`: a living DIRAC instance and the whole suite watching it, on loopback.

    python -m bes_demo up       # start everything in the background, wait until healthy, print URLs
    python -m bes_demo status   # what runs
    python -m bes_demo down     # stop everything

``up`` starts, with logs in ``<dir>/logs`` and pid files in ``<dir>/run`` (``<dir>`` = ``$BES_DEMO_DIR``,
default ``.demo``): bes-simulate (DIRAC 8.0 schemas, faults from ``timeline.yml``), bes-exporter,
a Pushgateway, the probe agents (local back-end: DIRAC's job wrapper runs the real bes-probe.pyz; or, with
``BES_DEMO_PROBE_BACKEND=dirac``, the dirac back-end on a real DIRAC server, ``scripts/dirac-server.sh``),
Prometheus with the demo rules (the shipped rules on a compressed clock, :mod:`.rules`) and
Alertmanager with ``alerts/alertmanager.yml``. A second ``up`` finds the running stack and only prints
its URLs. Every setting comes from a ``BES_DEMO_*`` environment variable (see :data:`ENV`).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import pymysql
import yaml

from bes_simulator.scenarios import load_timeline
from bes_simulator.topology import ConfigError, load_topology, parse_duration

from . import rules as demo_rules
from . import services, stack

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_TIMELINE = Path(__file__).with_name("timeline.yml")
PROG = "demo"
# name -> (default, meaning). Ports are fixed so the URLs stay the same between runs; none is a default
# port of the Prometheus tools (9090, 9091, 9093) nor the exporter's 9875.
ENV: dict[str, tuple[str, str]] = {
    "BES_DEMO_DIR": (".demo", "state, logs and pid files (relative to the repository)"),
    "BES_DEMO_SPEED": ("60", "simulated seconds per real second (1-60)"),
    "BES_DEMO_SCALE": ("0.3", "the simulated grid's size (bes-simulate --scale; 1 = ~2500 job slots)"),
    "BES_DEMO_WARMUP": ("1h", "simulated time written at once before the live run"),
    "BES_DEMO_TIMELINE": ("", f"bes-simulate timeline of faults (default {DEFAULT_TIMELINE.name})"),
    "BES_DEMO_PROBE_SITES": ("BES.IHEP-PBS.cn,BES.USTC.cn,BES.JINR.ru,BES.SJTU.cn",
                             "sites the probe agents probe (comma-separated; 'none' for no agents; with "
                             "BES_DEMO_PROBE_BACKEND=dirac: the server's sites, default those with a worker node)"),
    "BES_DEMO_PROBE_BACKEND": ("local", "how probe jobs run: 'local' (DIRAC's job wrapper on this machine) or "
                               "'dirac' (through the WMS of a real DIRAC server on loopback, in <dir>/dirac-server)"),
    "BES_DEMO_SCRAPE_INTERVAL": ("2s", "Prometheus scrape and rule evaluation interval (and scrape timeout)"),
    "BES_DEMO_EXPORTER_PORT": ("19875", "bes-exporter port"),
    "BES_DEMO_PUSHGATEWAY_PORT": ("19091", "Pushgateway port"),
    "BES_DEMO_PROMETHEUS_PORT": ("19090", "Prometheus port"),
    "BES_DEMO_ALERTMANAGER_PORT": ("19093", "Alertmanager port"),
    "BES_DEMO_DB_HOST": ("127.0.0.1", "MariaDB host"),
    "BES_DEMO_DB_PORT": ("3306", "MariaDB port"),
    "BES_DEMO_DB_USER": ("root", "MariaDB account (creates the demo databases)"),
    "BES_DEMO_DB_PASSWORD_FILE": ("", "file holding that account's password (default: none)"),
    "BES_DEMO_DB_PREFIX": ("bes_demo_", "prefix of the demo's databases (bes_demo_JobDB, ...)"),
    "BES_DEMO_SEED": ("1", "the simulator's random seed"),
}
DAEMONS = ("exporter", "pushgateway", "alertmanager", "prometheus")
# Stop order: nothing new is submitted or written while the rest goes down.
STOP_ORDER = ("agent-submit", "agent-reap", "simulator", "prometheus", "alertlog", "alertmanager", "pushgateway",
              "exporter")
START_TIMEOUT = 300.0  # real seconds for the whole stack to become healthy


class DemoError(Exception):
    """A problem worded as one line that says what to change."""


@dataclass
class Settings:
    """The demo's settings, from the ``BES_DEMO_*`` environment variables."""

    dir: Path
    speed: float
    scale: float
    warmup: str
    timeline: Path
    probe_sites: list[str]
    interval: str
    ports: dict[str, int]
    db: dict[str, object] = field(repr=False)
    db_prefix: str = "bes_demo_"
    seed: int = 1
    probe_backend: str = "local"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def events(self) -> Path:
        return self.dir / "simulator" / "events.json"

    @property
    def alert_log(self) -> Path:
        return self.dir / "alerts.json"

    @property
    def dirac_dir(self) -> Path:
        """The demo's own DIRAC server instance (``BES_DEMO_PROBE_BACKEND=dirac``)."""
        return self.dir / "dirac-server"

    @property
    def uses_dirac(self) -> bool:
        return self.probe_backend == "dirac" and bool(self.probe_sites)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def _env(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    return value or ENV[name][0]


def settings(env: dict[str, str] | None = None) -> Settings:
    """Read and check the settings; a bad value is a :class:`DemoError` naming the variable."""
    env = dict(os.environ if env is None else env)
    base = Path(_env(env, "BES_DEMO_DIR"))
    base = (base if base.is_absolute() else ROOT / base).resolve()
    try:
        speed = float(_env(env, "BES_DEMO_SPEED"))
    except ValueError:
        speed = -1.0
    if not 1 <= speed <= 60:
        raise DemoError(f"BES_DEMO_SPEED={_env(env, 'BES_DEMO_SPEED')}: must be a number from 1 to 60 (simulated "
                        "seconds per real second; DATETIME has 1-s resolution), e.g. BES_DEMO_SPEED=30")
    try:
        scale = float(_env(env, "BES_DEMO_SCALE"))
    except ValueError:
        scale = -1.0
    if not 0.05 <= scale <= 4:
        raise DemoError(f"BES_DEMO_SCALE={_env(env, 'BES_DEMO_SCALE')}: must be a number from 0.05 to 4, e.g. 0.5")
    warmup = _env(env, "BES_DEMO_WARMUP")
    try:
        parse_duration(warmup, "BES_DEMO_WARMUP")
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    timeline = Path(_env(env, "BES_DEMO_TIMELINE") or DEFAULT_TIMELINE)
    try:
        load_timeline(str(timeline))
    except ConfigError as exc:
        raise DemoError(f"BES_DEMO_TIMELINE: {exc}") from None
    backend = _env(env, "BES_DEMO_PROBE_BACKEND")
    if backend not in ("local", "dirac"):
        raise DemoError(f"BES_DEMO_PROBE_BACKEND={backend}: must be 'local' (probe jobs on this machine) or 'dirac' "
                        "(through a real DIRAC server), e.g. BES_DEMO_PROBE_BACKEND=dirac")
    topo = load_topology()
    raw_sites = _env(env, "BES_DEMO_PROBE_SITES")
    if backend == "dirac":
        known, worker = dirac_sites()
        raw_sites = env.get("BES_DEMO_PROBE_SITES", "").strip() or ",".join(worker)
        where = "the DIRAC server (dirac_server/topology.py)"
    else:
        known, where = [s.name for s in topo.sites], str(topo.source)
    sites = [] if raw_sites.lower() == "none" else [s.strip() for s in raw_sites.split(",") if s.strip()]
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise DemoError(f"BES_DEMO_PROBE_SITES: {unknown[0]} is not a site of {where} (BES_DEMO_PROBE_BACKEND="
                        f"{backend}); use names from {', '.join(known) if backend == 'dirac' else where} or 'none'")
    interval = _env(env, "BES_DEMO_SCRAPE_INTERVAL")
    try:
        if not 0.2 <= demo_rules.duration_seconds(interval) <= 60:
            raise ValueError
    except ValueError:
        raise DemoError(f"BES_DEMO_SCRAPE_INTERVAL={interval}: use a Prometheus duration from 200ms to 60s, "
                        "e.g. 1s") from None
    ports = {}
    for name in DAEMONS:
        var = f"BES_DEMO_{name.upper()}_PORT"
        value = _env(env, var)
        if not value.isdigit() or not 1024 <= int(value) <= 65535:
            raise DemoError(f"{var}={value}: must be a TCP port from 1024 to 65535")
        ports[name] = int(value)
    if len(set(ports.values())) != len(ports):
        raise DemoError("BES_DEMO_*_PORT: the four ports must differ")
    prefix = _env(env, "BES_DEMO_DB_PREFIX")
    if not prefix.replace("_", "a").isalnum() or len(prefix) > 40:
        raise DemoError(f"BES_DEMO_DB_PREFIX={prefix}: use letters, digits and '_' only (at most 40)")
    password_file = _env(env, "BES_DEMO_DB_PASSWORD_FILE")
    password = ""
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise DemoError(f"BES_DEMO_DB_PASSWORD_FILE={password_file}: cannot read it ({exc.strerror})") from None
    db_port = _env(env, "BES_DEMO_DB_PORT")
    if not db_port.isdigit():
        raise DemoError(f"BES_DEMO_DB_PORT={db_port}: must be a TCP port number")
    seed = _env(env, "BES_DEMO_SEED")
    if not seed.isdigit():
        raise DemoError(f"BES_DEMO_SEED={seed}: must be a whole number")
    db = {"host": _env(env, "BES_DEMO_DB_HOST"), "port": int(db_port), "user": _env(env, "BES_DEMO_DB_USER"),
          "password": password, "password_file": password_file}
    return Settings(dir=base, speed=speed, scale=scale, warmup=warmup, timeline=timeline.resolve(), probe_sites=sites,
                    interval=interval, ports=ports, db=db, db_prefix=prefix, seed=int(seed), probe_backend=backend)


def dirac_sites() -> tuple[list[str], list[str]]:
    """The real DIRAC server's sites and those of them with a worker node (:mod:`dirac_server.topology`)."""
    try:
        from dirac_server import topology
    except ImportError:
        raise DemoError("BES_DEMO_PROBE_BACKEND=dirac: run the demo from the repository (make demo); "
                        "dirac_server is not importable here") from None
    if importlib.util.find_spec("DIRAC") is None:
        raise DemoError("BES_DEMO_PROBE_BACKEND=dirac needs DIRAC in the venv: run 'make dirac' "
                        "(or use BES_DEMO_PROBE_BACKEND=local)")
    return [s.name for s in topology.SITES], [s.name for s in topology.worker_sites()]


# ---- processes ------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _ours(pid: int, marker: str) -> bool:
    """The process exists and its command line names ``marker`` (so a reused pid is never touched)."""
    return pid > 0 and marker.encode() in _cmdline(pid)


def running(s: Settings) -> dict[str, int]:
    """Components alive now: name -> pid (from the pid files, checked against /proc)."""
    out = {}
    for pid_file in sorted(s.run.glob("*.pid")) if s.run.is_dir() else []:
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _ours(pid, str(s.dir)):
            out[pid_file.stem] = pid
    return out


def _gone(pid: int) -> bool:
    """The process has ended (a zombie has closed its files and sockets too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1].startswith(("Z", "X"))
    except OSError:
        return True


def _kill_group(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``pid`` (a session leader we started and whose command line names
    ``marker``), SIGKILL after ``timeout``; returns once it has ended."""
    if not _ours(pid, marker):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.1)


def spawn(s: Settings, name: str, argv: list[str], env: dict[str, str] | None = None,
          nice: int = 0) -> subprocess.Popen:
    """Start ``argv`` in its own session (niced by ``nice``), output to ``logs/<name>.log``, pid in
    ``run/<name>.pid``."""
    log_path = s.logs / f"{name}.log"
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=s.dir,
                                env=env, start_new_session=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)  # noqa: PLW1509
    (s.run / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def _daemon(s: Settings, name: str, daemon: services.Daemon) -> services.Daemon:
    """A services.Daemon with its log and pid file in the demo's logs/ and run/ directories."""
    daemon.log_path = s.logs / f"{name}.log"
    daemon.pid_path = s.run / f"{name}.pid"
    return daemon


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemons do: TIME_WAIT is no user
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _get(url: str, timeout: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own loopback URLs
            return resp.read()
    except (OSError, urllib.error.URLError):
        return None


def _wait(what: Callable[[], object], timeout: float, message: str, alive: Callable[[], str | None]) -> object:
    """Poll ``what()`` (bounded) until truthy; a dead component (``alive()`` names it) ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        result = what()
        if result:
            return result
        dead = alive()
        if dead:
            raise DemoError(dead)
        if time.monotonic() > deadline:
            raise DemoError(f"{message} within {timeout:.0f} s")
        time.sleep(1.0)


# ---- configuration files ----------------------------------------------------------------------------------


def _connect(s: Settings, db: str | None = None) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(host=s.db["host"], port=s.db["port"], user=s.db["user"], password=s.db["password"],
                               database=db, connect_timeout=5, read_timeout=30, autocommit=True)
    except pymysql.err.MySQLError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise DemoError(f"cannot connect to MariaDB at {s.db['host']}:{s.db['port']} as {s.db['user']} ({reason}); "
                        "run 'make setup', or set BES_DEMO_DB_USER / BES_DEMO_DB_PASSWORD_FILE") from None


def _db_section(s: Settings) -> dict:
    db = {"host": s.db["host"], "port": s.db["port"], "user": s.db["user"]}
    if s.db["password_file"]:
        db["password_file"] = str(Path(str(s.db["password_file"])).resolve())
    else:
        db["password"] = s.db["password"]
    return db


def exporter_config(s: Settings) -> dict:
    """bes-exporter's configuration: the simulator's databases, time settings divided by the speed."""
    return {"database": {**_db_section(s), "jobdb": f"{s.db_prefix}JobDB", "pilotdb": f"{s.db_prefix}PilotAgentsDB",
                         "logdb": f"{s.db_prefix}JobLoggingDB"},
            **demo_rules.exporter_time_settings(s.speed)}


# ---- the real DIRAC server (BES_DEMO_PROBE_BACKEND=dirac) --------------------------------------------------

DIRAC_UP_TIMEOUT = 600.0  # real seconds for the server's `up` (a few minutes the first time)
DIRAC_MIN_TIMEOUT = 300   # real seconds a probe may wait or run at the real WMS, whatever the demo's speed


@dataclass(frozen=True)
class DiracServer:
    """What the probe agents need of a running DIRAC server: its client cfg, the probe identity's proxy, JobDB."""

    cfg: Path
    proxy: Path
    database: dict[str, object]
    owner: tuple[str, str]  # the probe identity's DIRAC user and group (JobDB Owner, OwnerGroup)

    @classmethod
    def read(cls, cfg: Path, proxy: Path, state_file: Path) -> DiracServer:
        """From the paths ``scripts/dirac-server.sh up`` prints (dirac-cfg, probe-proxy, state)."""
        from dirac_server import topology

        state = json.loads(state_file.read_text())
        database = {"host": state["db_host"], "port": state["db_port"], "user": state["db_user"], "password": "",
                    "jobdb": state["databases"]["JobDB"]}
        return cls(cfg=cfg, proxy=proxy, database=database, owner=(topology.PROBE_USER, topology.PROBE_GROUP))


def _dirac(s: Settings, command: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``python -m dirac_server COMMAND --dir <dir>/dirac-server`` (what
    scripts/dirac-server.sh runs once `make demo` has installed DIRAC)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return [sys.executable, "-m", "dirac_server", command, "--dir", str(s.dirac_dir)], env


def dirac_running(s: Settings) -> bool:
    """The demo's DIRAC server runs (``dirac_server status``)."""
    if not (s.dirac_dir / "state.json").exists():
        return False
    argv, env = _dirac(s, "status")
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=60).returncode == 0


def _dirac_server(s: Settings, proc: subprocess.Popen, dead: Callable[[], str | None]) -> DiracServer:
    """Wait (bounded) for the server's ``up`` started as ``proc``; the paths it printed."""
    log = s.logs / "dirac-server-up.log"
    _wait(lambda: proc.poll() is not None, DIRAC_UP_TIMEOUT, "the DIRAC server did not come up", dead)
    paths = dict(line.split(": ", 1) for line in log.read_text(errors="replace").splitlines() if ": " in line)
    if proc.returncode != 0 or not {"dirac-cfg", "probe-proxy", "state"} <= set(paths):
        raise DemoError(f"the DIRAC server did not come up (BES_DEMO_PROBE_BACKEND=dirac): {_tail(log, 2)}; "
                        f"see {s.dirac_dir / 'logs'}")
    return DiracServer.read(Path(paths["dirac-cfg"]), Path(paths["probe-proxy"]), Path(paths["state"]))


def _dirac_down(s: Settings) -> bool:
    """Stop the demo's DIRAC server if it has an instance (processes stopped, databases dropped)."""
    if not (s.dirac_dir / "state.json").exists():
        return False
    argv, env = _dirac(s, "down")
    try:
        subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise DemoError(f"the DIRAC server did not stop within 300 s; run: scripts/dirac-server.sh down --dir "
                        f"{s.dirac_dir}") from None
    return True


def agent_env(server: DiracServer | None) -> dict[str, str]:
    """The probe agents' environment: DIRAC's scripts on PATH; the probe identity's proxy for the server."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    if server:
        env["X509_USER_PROXY"] = str(server.proxy)
    return env


def agent_files(s: Settings, server: DiracServer | None = None) -> Path:
    """The probe agents' config, one probe config per site (its CVMFS check on the simulator's fake root,
    where the simulator has the site); ``server``: through that DIRAC server (dirac back-end), else local."""
    adir = s.dir / "agents"
    adir.mkdir(parents=True, exist_ok=True)
    pyz = adir / "bes-probe.pyz"
    done = subprocess.run([sys.executable, "-m", "probe_pushgateway.build", str(pyz)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DemoError(f"building the probe failed: {(done.stderr or done.stdout).strip()[-300:]}")
    cvmfs = s.dir / "simulator" / "cvmfs"
    topo = load_topology()
    simulated = {site.name for site in topo.sites}
    for site in s.probe_sites:
        # Every "worker node" is this machine: its load says nothing about the simulated site.
        checks: dict[str, dict] = {"environment": {"max_load_per_core": 1000}, "tcp": {}, "clock": {}}
        if site in simulated:
            checks["cvmfs"] = {"repositories": [str(cvmfs / site / r) for r in topo.cvmfs_repositories]}
        (adir / f"probe-{site}.yml").write_text(json.dumps({"timeout": 30, "checks": checks}, indent=1) + "\n")

    def sim(seconds: float) -> int:
        return demo_rules.whole_seconds(seconds, s.speed)

    # The real WMS keeps the real clock: a probe waits for a pilot there whatever the demo's speed.
    timeout = sim(2400) if server is None else max(sim(2400), DIRAC_MIN_TIMEOUT)
    probe = {"pyz": str(pyz), "config": str(adir / "probe-{site}.yml"), "period": sim(3600),
             "waiting_timeout": timeout, "running_timeout": timeout, "done_window": sim(86400)}
    if server is None:
        backend: dict = {"type": "local"}
        database = {**_db_section(s), "jobdb": f"{s.db_prefix}JobDB"}
    else:
        backend = {"type": "dirac", "config_files": [str(server.cfg)]}
        database = dict(server.database)
        probe["owner"], probe["owner_group"] = server.owner
    cfg = {
        "targets": s.probe_sites,
        "probe": probe,
        "pushgateway": {"url": s.url("pushgateway"), "timeout": 5},
        "backend": backend,
        "database": database,
        "state_dir": str(adir / "state"),
        "interval": sim(300),
    }
    path = adir / "agent.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)
    return path


# ---- up / down / status -----------------------------------------------------------------------------------


def _print_urls(s: Settings, out: TextIO | None = None) -> None:
    """One line per service (to ``out``, default the current ``sys.stdout``); every http URL but the
    Alertmanager API opens a page in a browser."""
    out = out or sys.stdout
    am = s.url("alertmanager")
    print(f"exporter: {s.url('exporter')}/metrics", file=out)
    print(f"pushgateway: {s.url('pushgateway')}", file=out)
    print(f"prometheus: {s.url('prometheus')}/classic/graph", file=out)
    print(f"alerts (pending and firing): {s.url('prometheus')}/classic/alerts", file=out)
    print(f"alertmanager: {am}  (API for amtool and scripts; Debian's Alertmanager has no web UI)", file=out)
    print(f"notified alerts: amtool alert query --alertmanager.url={am}", file=out)
    print(f"lead times: {BIN / 'bes-simulate'} --report --events {s.events} --alerts {s.alert_log}", file=out)
    day = max(10, round(86400 / s.speed / 60))  # one simulated day, in real minutes (24 at 60x)
    print(f"report of the last simulated day: {BIN / 'bes-report'} --prometheus {s.url('prometheus')} "
          f"--last {day}m --out {s.dir / 'report'}", file=out)
    if s.uses_dirac:
        print(f"probes: BES_DEMO_PROBE_BACKEND=dirac: through the WMS of the real DIRAC server {s.dirac_dir} to its "
              f"sites {', '.join(s.probe_sites)} (the server's sites and JobDB, not the simulator's: the exporter and "
              f"the simulated faults do not see these jobs; server logs: {s.dirac_dir / 'logs'})", file=out)
    print(f"logs: {s.logs}  (stop with: make demo-down)", file=out)


def _lock(s: Settings) -> TextIO:
    """An exclusive lock on the demo directory for one up/down at a time (held while the file is open)."""
    s.dir.mkdir(parents=True, exist_ok=True)
    fh = open(s.dir / ".lock", "w")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DemoError(f"another 'make demo' or 'make demo-down' is working on {s.dir}; wait for it") from None
    return fh


def _caught_up(s: Settings) -> bool:
    """The simulator has written its warm-up and follows the database clock (newest update <= 2 s old)."""
    if not s.events.exists():
        return False
    try:
        conn = _connect(s)
    except DemoError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT TIMESTAMPDIFF(SECOND, MAX(LastUpdateTime), UTC_TIMESTAMP()) "
                        f"FROM `{s.db_prefix}JobDB`.Jobs")
            (lag,) = cur.fetchone()
        return lag is not None and lag <= 2
    except pymysql.err.MySQLError:
        return False
    finally:
        conn.close()


def _fresh(s: Settings) -> None:
    """A new run: the simulator re-creates its databases, so the previous run's state goes too
    (its logs are kept in ``logs.previous``)."""
    for name in ("simulator", "pushgateway", "prometheus", "alertmanager", "exporter", "agents", "rules",
                 "logs.previous"):
        shutil.rmtree(s.dir / name, ignore_errors=True)
    s.alert_log.unlink(missing_ok=True)
    if s.logs.exists():
        s.logs.rename(s.dir / "logs.previous")
    for d in (s.logs, s.run, s.dir / "simulator"):
        d.mkdir(parents=True, exist_ok=True)


def up(s: Settings) -> int:
    """Start the whole stack (or report the running one) and print its URLs."""
    lock = _lock(s)
    alive = running(s)
    if dirac_running(s):
        alive["dirac-server"] = 0
    expected = set(STOP_ORDER) - ({"agent-submit", "agent-reap"} if not s.probe_sites else set())
    expected |= {"dirac-server"} if s.uses_dirac else set()
    if alive and expected <= set(alive) and ("dirac-server" in alive) == s.uses_dirac:
        print("demo: already running")
        _print_urls(s)
        return 0
    if alive:
        missing = sorted(expected - set(alive))
        why = f"partly running ({', '.join(missing)} stopped)" if missing else "running with another probe back-end"
        print(f"demo: {why}: restarting it", file=sys.stderr)
    if alive or (s.dirac_dir / "state.json").exists():  # a dead server's state: its databases are dropped too
        _stop_all(s)
    for name, port in s.ports.items():
        if not _port_free(port):
            raise DemoError(f"port {port} on 127.0.0.1 is in use; set BES_DEMO_{name.upper()}_PORT to a free port")
    _fresh(s)
    _connect(s).close()
    print(f"demo: starting in {s.dir} (speed {s.speed:g}x: one simulated hour every {3600 / s.speed:.0f} s)")
    try:
        _start(s)
    except BaseException:
        _stop_all(s)
        raise
    finally:
        lock.close()
    _print_urls(s)
    return 0


def _start(s: Settings) -> None:
    """Start every component in order and wait (bounded) until each is healthy."""
    s.events.unlink(missing_ok=True)
    rules = demo_rules.render(s.speed, s.dir / "rules")
    server_up = spawn(s, "dirac-server-up", *_dirac(s, "up")) if s.uses_dirac else None  # meanwhile
    sim_argv = [str(BIN / "bes-simulate"), "--generation", "8.0", "--db-prefix", s.db_prefix, "--reset",
                "--db-host", str(s.db["host"]), "--db-port", str(s.db["port"]), "--db-user", str(s.db["user"]),
                "--speed", f"{s.speed:g}", "--scale", f"{s.scale:g}", "--warmup", s.warmup, "--pilot-history", "1d",
                "--timeline", str(s.timeline), "--seed", str(s.seed), "--state-dir", str(s.dir / "simulator")]
    if s.db["password_file"]:
        sim_argv += ["--db-password-file", str(s.db["password_file"])]
    procs: dict[str, subprocess.Popen] = {"simulator": spawn(s, "simulator", sim_argv)}

    def dead() -> str | None:
        for name, proc in procs.items():
            if proc.poll() is not None:
                return f"{name} exited (code {proc.returncode}): {_tail(s.logs / f'{name}.log')}"
        return None

    _wait(lambda: s.events.exists(), 120, "the simulator did not create its databases", dead)
    daemons = {
        "pushgateway": services.pushgateway(s.dir / "pushgateway", port=s.ports["pushgateway"]),
        "alertmanager": services.alertmanager(stack.ALERTMANAGER_CONFIG, s.dir / "alertmanager",
                                              port=s.ports["alertmanager"]),
    }
    for name, daemon in daemons.items():
        _daemon(s, name, daemon).start(timeout=60)
    procs["alertlog"] = spawn(s, "alertlog", [sys.executable, "-m", "bes_demo.alertlog", "--alertmanager",
                                              s.url("alertmanager"), "--out", str(s.alert_log)])
    if s.probe_sites:  # at once: the first probes run on the healthy grid
        server = _dirac_server(s, server_up, dead) if server_up else None
        agent_cfg = agent_files(s, server)
        env = agent_env(server)
        for cmd in ("submit", "reap"):  # niced: a probe job's DIRAC start-up must not delay the simulator
            procs[f"agent-{cmd}"] = spawn(s, f"agent-{cmd}", [str(BIN / "bes-probe-agent"), "--config.file",
                                                              str(agent_cfg), cmd, "--loop"], env=env, nice=10)
    # The exporter and Prometheus only look once the warm-up is written and the simulator follows the
    # clock: while it catches up, every heartbeat is late and every site would look like a network cut.
    streak = []
    _wait(lambda: streak.append(_caught_up(s)) or streak[-2:] == [True, True], START_TIMEOUT,
          f"the simulator did not catch up with the database clock (see {s.logs / 'simulator.log'}; "
          "lower BES_DEMO_SPEED or BES_DEMO_SCALE)", dead)
    exporter = _daemon(s, "exporter", stack.exporter(exporter_config(s), s.dir / "exporter",
                                                     port=s.ports["exporter"])).start(timeout=60)
    pdir = s.dir / "prometheus"
    pdir.mkdir(exist_ok=True)
    cfg = stack.prometheus_config(exporter.address, daemons["pushgateway"].address,
                                  daemons["alertmanager"].address, rules[0].parent, s.interval)
    (pdir / "prometheus.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    prom = _daemon(s, "prometheus", services.prometheus(pdir / "prometheus.yml", pdir, port=s.ports["prometheus"],
                                                         extra_args=["--storage.tsdb.retention.time=2d"]))
    prom.start(timeout=120)
    query = f"{prom.url}/api/v1/query?query=dirac_up%3D%3D1"
    _wait(lambda: b'"result":[{' in (_get(query) or b""), 120, "Prometheus has no successful exporter scrape",
          dead)
    if s.probe_sites:
        _wait(lambda: b'job="bes_probe_agent"' in (_get(f"{s.url('pushgateway')}/metrics") or b""), 120,
              f"the probe agents pushed nothing (see {s.logs / 'agent-submit.log'})", dead)


def _stop_all(s: Settings) -> list[str]:
    """Stop every component and every probe job still running; returns the names stopped."""
    marker = str(s.dir)
    alive = running(s)
    stopped = []
    for name in [*STOP_ORDER, *sorted(set(alive) - set(STOP_ORDER))]:
        if name in alive:
            _kill_group(alive[name], marker)
            stopped.append(name)
        (s.run / f"{name}.pid").unlink(missing_ok=True)
        if name == "agent-reap":  # probe jobs run detached from the agents (local back-end)
            for info in (s.dir / "agents" / "state" / "local").glob("job_*/info.json"):
                try:
                    pid = int(json.loads(info.read_text()).get("pid", 0))
                except (OSError, ValueError):
                    continue
                if _ours(pid, str(info.parent)):
                    _kill_group(pid, str(info.parent))
                    stopped.append(f"probe job {info.parent.name}")
    if _dirac_down(s):  # the server with its probe jobs, whatever BES_DEMO_PROBE_BACKEND says now
        stopped.append("the DIRAC server")
    return stopped


def down(s: Settings) -> int:
    """Stop everything ``up`` started."""
    if not s.dir.exists():
        print("demo: nothing to stop")
        return 0
    lock = _lock(s)
    try:
        stopped = _stop_all(s)
    finally:
        lock.close()
    print(f"demo: stopped {', '.join(stopped)}" if stopped else "demo: nothing was running")
    return 0


def status(s: Settings) -> int:
    """Print what runs; exit 0 when every component does."""
    alive = running(s)
    expected = [n for n in STOP_ORDER if s.probe_sites or not n.startswith("agent-")]
    for name in expected:
        print(f"{name}: {'running, pid ' + str(alive[name]) if name in alive else 'stopped'}")
    if s.uses_dirac or (s.dirac_dir / "state.json").exists():
        if dirac_running(s):
            alive["dirac-server"] = 0
        print(f"dirac-server: {'running' if 'dirac-server' in alive else 'stopped'} ({s.dirac_dir})")
        expected += ["dirac-server"] if s.uses_dirac else []
    if alive:
        _print_urls(s)
    return 0 if set(expected) <= set(alive) else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = {"up": up, "down": down, "status": status}
    if len(args) != 1 or args[0] not in commands:
        print("usage: python -m bes_demo up|down|status   (settings: BES_DEMO_* variables, "
              "see bes_demo/cli.py)", file=sys.stderr)
        return 2
    try:
        s = settings()
    except DemoError as exc:  # a bad BES_DEMO_* value
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        return commands[args[0]](s)
    except (DemoError, services.ServiceError) as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
