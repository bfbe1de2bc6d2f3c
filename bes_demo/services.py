"""Start and stop Debian's Prometheus daemons on free loopback ports, for tests and the demo.

Each daemon runs as ``127.0.0.1:<free port>`` with all its state (data, log, pid file) in one data
directory, never on its default port or under /var/lib. ``start()`` waits, bounded in time, until
``/-/ready`` answers; on failure it raises :class:`ServiceError` carrying the last lines of the log.

    with start_pushgateway(tmp_path / "pgw") as pgw:
        push_to_gateway(pgw.address, job="x", registry=reg)

Binaries: ``/usr/bin/prometheus-pushgateway``, ``/usr/bin/prometheus``,
``/usr/bin/prometheus-alertmanager``, ``/usr/bin/victoria-metrics`` (Debian packages of the same names).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Sequence

PUSHGATEWAY_BIN = "/usr/bin/prometheus-pushgateway"
PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
VICTORIA_METRICS_BIN = "/usr/bin/victoria-metrics"
HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A daemon could not be started (the message ends with the tail of its log)."""


def free_port(host: str = HOST) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Daemon:
    """One daemon process: ``start()`` it, use ``url``/``address``, ``stop()`` it (or use ``with``).

    ``args`` must not contain the listen address: it is added as ``listen_flag`` (``--web.listen-address``).
    ``tls`` says the daemon serves HTTPS (readiness is then checked over TLS, certificate not
    verified); ``auth`` is a ``(user, password)`` pair sent with the readiness request and
    ``client_cert`` a ``(cert, key)`` pair presented when the daemon requires client certificates.
    A 401/403 answer also counts as ready: the daemon is serving, it just wants other credentials.
    """

    def __init__(self, name: str, binary: str, args: Sequence[str], data_dir: Path | str,
                 port: int | None = None, tls: bool = False,
                 auth: tuple[str, str] | None = None, ready_path: str = "/-/ready",
                 client_cert: tuple[str, str] | None = None,
                 listen_flag: str = "--web.listen-address") -> None:
        self.name = name
        self.binary = binary
        self.args = list(args)
        self.data_dir = Path(data_dir)
        self.fixed_port = port
        self.port = port or 0
        self.tls = tls
        self.auth = auth
        self.ready_path = ready_path
        self.client_cert = client_cert
        self.listen_flag = listen_flag
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / f"{name}.log"
        self.pid_path = self.data_dir / f"{name}.pid"

    @property
    def address(self) -> str:
        """``host:port``, as push_to_gateway or a scrape target wants it."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the daemon's log file."""
        return _tail(self.log_path, lines)

    def command(self) -> list[str]:
        """The full command line that ``start()`` runs."""
        return [self.binary, f"{self.listen_flag}={self.address}", *self.args]

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Daemon:
        """Start and wait until ready; retries on a new port if the chosen one was taken meanwhile."""
        if not os.access(self.binary, os.X_OK):
            raise ServiceError(f"{self.name}: {self.binary} not found; install the Debian package "
                               f"(make setup does)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self.port = self.fixed_port or free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"--- start {' '.join(self.command())}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.data_dir,
                                             start_new_session=True)
            self.pid_path.write_text(f"{self.proc.pid}\n")
            if self._wait_ready(timeout):
                return self
            tail = self.log_tail()
            self.stop()
            if "address already in use" in tail and not self.fixed_port and attempt < attempts:
                continue
            raise ServiceError(f"{self.name} did not become ready on {self.url} within {timeout:.0f}s; "
                               f"last lines of {self.log_path}:\n{tail}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if self.client_cert:
                ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        headers = {}
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        delay = 0.05
        while time.monotonic() < deadline:
            if not self.running():
                return False
            req = urllib.request.Request(self.url + self.ready_path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    if resp.status == 200:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    return True
            except (OSError, ssl.SSLError):
                pass
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.pid_path.unlink(missing_ok=True)

    def restart(self, timeout: float = 30.0) -> Daemon:
        """Stop and start again on the same port (state in the data dir survives)."""
        self.stop()
        self.fixed_port = self.port
        return self.start(timeout=timeout)

    def __enter__(self) -> Daemon:
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _web_config_is_tls(web_config: Path | str | None) -> bool:
    return bool(web_config) and "tls_server_config" in Path(web_config).read_text()


def pushgateway(data_dir: Path | str, web_config: Path | str | None = None, persist: bool = True,
                extra_args: Iterable[str] = (), port: int | None = None,
                auth: tuple[str, str] | None = None, client_cert: tuple[str, str] | None = None) -> Daemon:
    """A Pushgateway (not started). ``persist`` keeps groups in ``data_dir/pushgateway.data``
    across restarts (written on SIGTERM); ``web_config`` enables TLS/basic auth; ``auth`` and
    ``client_cert`` are what the readiness check presents."""
    data_dir = Path(data_dir)
    args = [f"--persistence.file={data_dir / 'pushgateway.data' if persist else ''}",
            "--persistence.interval=5s", "--web.enable-admin-api"]
    if web_config:
        args.append(f"--web.config.file={web_config}")
    args.extend(extra_args)
    return Daemon("pushgateway", PUSHGATEWAY_BIN, args, data_dir, port=port,
                  tls=_web_config_is_tls(web_config), auth=auth, client_cert=client_cert)


def prometheus(config_file: Path | str, data_dir: Path | str, extra_args: Iterable[str] = (),
               port: int | None = None, web_config: Path | str | None = None,
               auth: tuple[str, str] | None = None, client_cert: tuple[str, str] | None = None) -> Daemon:
    """A Prometheus (not started) with ``--web.enable-lifecycle`` (POST /-/reload works) and its TSDB
    in ``data_dir/tsdb``."""
    data_dir = Path(data_dir)
    args = [f"--config.file={config_file}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
            "--web.enable-lifecycle"]
    if web_config:
        args.append(f"--web.config.file={web_config}")
    args.extend(extra_args)
    return Daemon("prometheus", PROMETHEUS_BIN, args, data_dir, port=port,
                  tls=_web_config_is_tls(web_config), auth=auth, client_cert=client_cert)


def alertmanager(config_file: Path | str, data_dir: Path | str, extra_args: Iterable[str] = (),
                 port: int | None = None, cluster_port: int | None = None, peers: Iterable[str] = ()) -> Daemon:
    """An Alertmanager (not started), state in ``data_dir/am``. Clustering is disabled unless
    ``cluster_port`` is given: then it gossips on ``127.0.0.1:cluster_port`` (TCP and UDP) with ``peers``
    (``host:port`` of the other members' cluster ports)."""
    data_dir = Path(data_dir)
    args = [f"--config.file={config_file}", f"--storage.path={data_dir / 'am'}"]
    if cluster_port:
        args += [f"--cluster.listen-address={HOST}:{cluster_port}",
                 f"--cluster.advertise-address={HOST}:{cluster_port}", *(f"--cluster.peer={p}" for p in peers)]
    else:
        args.append("--cluster.listen-address=")
    return Daemon("alertmanager", ALERTMANAGER_BIN, [*args, *extra_args], data_dir, port=port)


def victoria_metrics(data_dir: Path | str, dedup_interval: str = "1s", extra_args: Iterable[str] = (),
                     port: int | None = None) -> Daemon:
    """A single-node VictoriaMetrics (not started): Prometheus remote write at ``/api/v1/write``, PromQL
    (MetricsQL) at ``/api/v1/query``, data in ``data_dir/vm``, one sample kept per series and
    ``dedup_interval`` (set it to the scrape interval: an HA pair's two copies become one)."""
    data_dir = Path(data_dir)
    args = [f"-storageDataPath={data_dir / 'vm'}", f"-dedup.minScrapeInterval={dedup_interval}", *extra_args]
    return Daemon("victoria-metrics", VICTORIA_METRICS_BIN, args, data_dir, port=port, ready_path="/health",
                  listen_flag="-httpListenAddr")


def start_pushgateway(data_dir: Path | str, timeout: float = 30.0, **kw) -> Daemon:
    """Start a Pushgateway (see :func:`pushgateway` for options) and wait until it is ready."""
    return pushgateway(data_dir, **kw).start(timeout=timeout)


def start_prometheus(config_file: Path | str, data_dir: Path | str, timeout: float = 60.0, **kw) -> Daemon:
    """Start a Prometheus (see :func:`prometheus`) and wait until it is ready."""
    return prometheus(config_file, data_dir, **kw).start(timeout=timeout)


def start_alertmanager(config_file: Path | str, data_dir: Path | str, timeout: float = 30.0,
                       **kw) -> Daemon:
    """Start an Alertmanager (see :func:`alertmanager`) and wait until it is ready."""
    return alertmanager(config_file, data_dir, **kw).start(timeout=timeout)


def stop_pidfile(pid_file: Path | str, timeout: float = 10.0) -> bool:
    """Stop a daemon started by an earlier process, from its pid file; True if one was stopped."""
    path = Path(pid_file)
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return False
    if b"prometheus" not in cmdline:  # the pid was reused by something else: leave it alone
        path.unlink(missing_ok=True)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    path.unlink(missing_ok=True)
    return True
