"""``up``, ``down`` and ``status`` of one instance (see :mod:`dirac_server`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pymysql

from . import certs, csconfig, databases, processes
from . import topology as topo
from .layout import Layout, State

CS_TIMEOUT = 90
SERVICES_TIMEOUT = 180
BOOTSTRAP_TIMEOUT = 180
STARTUP_GRACE = 3.0
# The fresh directories of an instance (the previous instance's logs are kept in logs.previous).
FRESH = ("root", "ca", "users", "client", "workers", "sandboxes")


class ServerError(Exception):
    """``up`` could not bring the server up (one line, naming the log to read)."""


def _dirac_version() -> str:
    from importlib.metadata import version

    return version("DIRAC")


def _log_tail(layout: Layout, name: str, lines: int = 8) -> str:
    try:
        text = (layout.logs / f"{name}.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _wait(what: str, check: Callable[[], bool], timeout: float, layout: Layout, started: dict, log: str) -> None:
    """Until ``check()``; fails at once if one of the ``started`` processes ({role: Popen}) exited."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [role for role, proc in started.items() if proc.poll() is not None]
        if dead:
            raise ServerError(f"{', '.join(dead)} exited while waiting for {what}; "
                              f"{layout.logs / (dead[0] + '.log')}: {_log_tail(layout, dead[0])}")
        if check():
            return
        if time.monotonic() > deadline:
            raise ServerError(f"{what} not ready within {timeout:.0f} s; see {layout.logs / (log + '.log')}: "
                              f"{_log_tail(layout, log)}")
        time.sleep(0.3)


def _start(layout: Layout, state: State, started: dict, role: str, argv: list[str]) -> None:
    started[role] = processes.start(layout, role, argv)
    state.processes[role] = started[role].pid
    layout.write_state(state)


def is_up(layout: Layout, state: State | None) -> bool:
    return bool(state and state.ready and state.processes
                and all(processes.ours(pid, layout) for pid in state.processes.values())
                and processes.listening(state.ports[csconfig.CS_SERVICE]))


def _prepare(layout: Layout) -> State:
    """Fresh certificates, databases and configuration files; the state recorded before anything runs."""
    layout.base.mkdir(parents=True, exist_ok=True)
    for name in FRESH:
        shutil.rmtree(layout.base / name, ignore_errors=True)
    previous = layout.base / "logs.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if layout.logs.exists():
        layout.logs.rename(previous)
    tag = f"bes_ds_{uuid.uuid4().hex[:8]}"
    names = [csconfig.CS_SERVICE, *csconfig.SERVICES]
    state = State(tag=tag, ports=dict(zip(names, processes.free_ports(len(names)))),
                  databases=databases.database_names(tag))
    layout.write_state(state)  # from here on ``down`` can drop the databases

    ca_cert, ca_key = certs.make_ca(layout.ca_dir)
    certs.install_ca(ca_cert, layout.certificates)
    host_dn = certs.issue(ca_cert, ca_key, csconfig.HOST_NAME, layout.host_cert, layout.host_key, host=True)
    for user in (topo.USER, topo.PROBE_USER, topo.PILOT_USER):
        certs.issue(ca_cert, ca_key, user, layout.user_cert(user), layout.user_key(user), host=False)

    conn = databases.connect(state.db_host, state.db_port, state.db_user)
    try:
        databases.create(conn, state.databases)
    finally:
        conn.close()

    layout.sandboxes.mkdir(parents=True, exist_ok=True)
    csconfig.write(csconfig.server_local(layout, state), layout.etc / "dirac.cfg")
    csconfig.write(csconfig.cs_data(layout, state, host_dn, _dirac_version()),
                   layout.etc / f"{csconfig.cs_name(state)}.cfg")
    csconfig.write(csconfig.client_local(layout, state), layout.client_cfg)
    return state


def up(base: Path, say: Callable[[str], None] = print) -> State:
    """Bring the instance up (nothing to do when it already runs); raises :class:`ServerError`."""
    layout = Layout(base)
    state = layout.read_state()
    if is_up(layout, state):
        return state
    if state is not None:
        down(base, say=lambda _msg: None)
    started = time.monotonic()
    try:
        state = _prepare(layout)
    except (OSError, subprocess.CalledProcessError, pymysql.MySQLError) as exc:
        down(base, say=lambda _msg: None)
        raise ServerError(f"preparing {base}: {exc}") from None
    procs: dict = {}
    try:
        _start(layout, state, procs, "configuration",
               ["dirac_server.run", "service", str(base), csconfig.CS_SERVICE])
        _wait("the Configuration Server", lambda: processes.listening(state.ports[csconfig.CS_SERVICE]),
              CS_TIMEOUT, layout, procs, "configuration")
        say(f"dirac-server: Configuration Server up ({time.monotonic() - started:.0f} s)")
        _start(layout, state, procs, "services", ["dirac_server.run", "service", str(base), *csconfig.SERVICES])
        _wait("the services", lambda: all(processes.listening(state.ports[s]) for s in csconfig.SERVICES),
              SERVICES_TIMEOUT, layout, procs, "services")
        say(f"dirac-server: {len(csconfig.SERVICES)} services up ({time.monotonic() - started:.0f} s)")
        _bootstrap(layout, "credentials")
        _start(layout, state, procs, "optimizers", ["dirac_server.run", "executor", str(base),
                                                    "WorkloadManagement/Optimizers"])
        _bootstrap(layout, "first-job")
        say(f"dirac-server: a first job went through the optimizers ({time.monotonic() - started:.0f} s)")
        _start(layout, state, procs, "pilots", ["dirac_server.pilots", str(base)])
        time.sleep(STARTUP_GRACE)  # a component that cannot start exits within this
        _wait("the optimizers and the pilots", lambda: True, 0, layout, procs, "pilots")
        state.ready = True
        layout.write_state(state)
    except ServerError:
        down(base, say=lambda _msg: None)
        raise
    say(f"dirac-server: ready in {time.monotonic() - started:.0f} s")
    return state


def _bootstrap(layout: Layout, step: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    env.pop("X509_USER_PROXY", None)
    log = f"bootstrap-{step}"
    try:
        proc = subprocess.run([sys.executable, "-m", "dirac_server.bootstrap", step, str(layout.base)], env=env,
                              capture_output=True, text=True, timeout=BOOTSTRAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServerError(f"bootstrap step {step} not done within {BOOTSTRAP_TIMEOUT} s") from None
    (layout.logs / f"{log}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise ServerError(f"bootstrap step {step}: {_log_tail(layout, log, 3)}")


def down(base: Path, say: Callable[[str], None] = print) -> None:
    """Stop every process the instance started and drop its databases (its directory stays, with logs)."""
    layout = Layout(base)
    state = layout.read_state()
    if state is None:
        say(f"dirac-server: nothing to stop in {base}")
        return
    stopped = processes.stop(list(state.processes.values()), layout)
    try:
        conn = databases.connect(state.db_host, state.db_port, state.db_user)
        try:
            databases.drop(conn, state.databases)
        finally:
            conn.close()
    except pymysql.MySQLError as exc:
        say(f"dirac-server: could not drop the databases {state.tag}_*: {exc}")
    layout.state_file.unlink(missing_ok=True)
    say(f"dirac-server: stopped {len(stopped)} process group(s), dropped databases {state.tag}_*")


def status(base: Path) -> tuple[bool, list[str]]:
    """Whether the instance runs, and one line per process and the client paths."""
    layout = Layout(base)
    state = layout.read_state()
    if state is None:
        return False, [f"dirac-server: not running ({base})"]
    lines = [f"{role}: pid {pid} {'running' if processes.ours(pid, layout) else 'NOT running'}"
             for role, pid in state.processes.items()]
    lines.append(f"configuration server: {csconfig.url(csconfig.CS_SERVICE, state.ports[csconfig.CS_SERVICE])}")
    lines.append(f"databases: {state.tag}_* on {state.db_host}:{state.db_port}")
    return is_up(layout, state), lines
