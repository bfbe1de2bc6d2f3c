"""Start the instance's processes in their own process groups, recognise them later, stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .layout import REPO, Layout


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nobody listens on now (bound together, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(layout: Layout, name: str, argv: list[str], env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start ``python -m <argv>`` as the leader of a new process group, output to logs/<name>.log."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONUNBUFFERED"] = "1"  # logs written as they happen (and kept when a process dies)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    bindir = os.path.dirname(sys.executable)  # dirac-jobexec and the other DIRAC scripts
    full_env["PATH"] = os.pathsep.join([bindir, full_env.get("PATH", "/usr/bin:/bin")])
    with open(layout.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd or layout.base, env=full_env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc


def ours(pid: int, layout: Layout) -> bool:
    """The process ``pid`` is alive and was started for this instance (its command line names it)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z" and str(layout.base).encode() in cmdline


def stop(pids: list[int], layout: Layout, grace: float = 10.0) -> list[int]:
    """SIGTERM the process groups of the instance's processes still running, and of every descendant (DIRAC
    runs each job wrapper in a session of its own); SIGKILL what is left after ``grace`` seconds. Returns the
    pids that were running."""
    running = [p for p in pids if ours(p, layout)]
    groups = set(running)
    for pid in running:
        groups |= {_pgid(child) for child in descendants(pid)} - {0}
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
        time.sleep(0.2)
    for pgid in groups:
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
        time.sleep(0.1)
    for pid in running:  # reap our own children (when ``up`` and ``down`` run in one process)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return running


def _stat(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def _pgid(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[2]) if fields else 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Some process of group ``pgid`` is alive (zombies do not count)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False
