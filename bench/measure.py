"""Measuring on a shared MariaDB: one account per measured client, MariaDB's per-account statistics.

Every measured client (our exporter, the naive sql-exporter, the mysql client running the minimal
queries) connects as its own read-only account, so ``information_schema.USER_STATISTICS`` (enabled
with ``userstat``) gives exactly that client's rows read (= rows examined) and busy time (= database
time), whatever else runs on the server. Global ``Handler_read_*`` deltas are recorded alongside as a
cross-check; they include every other client of the server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

ROLES = ("ours", "naive", "min")


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


class BenchError(Exception):
    """A benchmark step failed; the message is one line that says what to do."""


def connect(db: dict, **kw) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db.get("password") or "",
                               autocommit=True, connect_timeout=5, **kw)
    except pymysql.MySQLError as exc:
        raise BenchError(f"cannot connect to MariaDB at {db['host']}:{db['port']} as {db['user']}: {exc.args[-1]};"
                         " start it with scripts/mariadb-up.sh") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Counters:
    rows_read: int
    busy_s: float
    cpu_s: float
    selects: int

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.rows_read - other.rows_read, self.busy_s - other.busy_s, self.cpu_s - other.cpu_s,
                        self.selects - other.selects)


class Stats:
    """Per-account and global counters of one MariaDB server, read over a root connection."""

    def __init__(self, conn):
        self.conn = conn
        self.previous_userstat: int | None = None

    def _one(self, sql: str, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def enable(self) -> None:
        self.previous_userstat = int(self._one("SELECT @@GLOBAL.userstat")[0][0])
        self._one("SET GLOBAL userstat = 1")

    def ensure_on(self) -> bool:
        """True if userstat is still on (another client may have switched it off); switch it back on."""
        if int(self._one("SELECT @@GLOBAL.userstat")[0][0]):
            return True
        self._one("SET GLOBAL userstat = 1")
        return False

    def restore(self) -> None:
        if self.previous_userstat == 0:
            self._one("SET GLOBAL userstat = 0")

    def account(self, user: str) -> Counters:
        rows = self._one("SELECT ROWS_READ, BUSY_TIME, CPU_TIME, SELECT_COMMANDS"
                         " FROM information_schema.USER_STATISTICS WHERE USER = %s", (user,))
        if not rows:
            return Counters(0, 0.0, 0.0, 0)
        r = rows[0]
        return Counters(int(r[0]), float(r[1]), float(r[2]), int(r[3]))

    def handler_reads(self) -> int:
        rows = self._one("SHOW GLOBAL STATUS LIKE 'Handler\\_read\\_%'")
        return sum(int(v) for _, v in rows)

    def index_reads(self, schemas: list[str]) -> dict[str, int]:
        rows = self._one("SELECT CONCAT(TABLE_NAME, '.', INDEX_NAME), ROWS_READ"
                         " FROM information_schema.INDEX_STATISTICS WHERE TABLE_SCHEMA IN %s", (tuple(schemas),))
        return {k: int(v) for k, v in rows}

    def busy(self, user: str) -> bool:
        """True while a connection of ``user`` is executing a statement."""
        rows = self._one("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND COMMAND <> 'Sleep'",
                         (user,))
        return int(rows[0][0]) > 0


class Accounts:
    """The measured clients' read-only accounts (``bes_bench_<role>_<run tag>``, so concurrent runs never
    share one) with random passwords; dropped at the end."""

    def __init__(self, conn, databases: list[str]):
        self.conn = conn
        self.databases = databases
        tag = secrets.token_hex(3)
        self.user = {role: f"bes_bench_{role}_{tag}" for role in ROLES}
        self.passwords = {u: secrets.token_urlsafe(18) for u in self.user.values()}

    def create(self) -> None:
        with self.conn.cursor() as cur:
            for user, pw in self.passwords.items():
                cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (pw,))
                for name in self.databases:
                    cur.execute(f"GRANT SELECT ON `{name.replace('_', chr(92) + '_')}`.* TO '{user}'@'127.0.0.1'")

    def drop(self) -> None:
        with self.conn.cursor() as cur:
            for user in self.passwords:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB, (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    vals = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds: only the process we started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait (bounded) until ``url`` accepts TCP connections, or the process died."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with status {proc.returncode} before serving {url}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s")


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 1048576, 1),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2)}
