"""Helpers of the hardening tests: the real exporter CLI over HTTP(S), a least-privilege MariaDB account,
bcrypt web configs. (Not a conftest: several conftest modules in one run clash as ``conftest``.)"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import bcrypt
import pymysql
import yaml
from metrics_util import Samples, parse_text
from private_mariadb import free_port

ROOT = Path(__file__).resolve().parents[2]

# What the scrapers read, per schema generation: exactly what docs/security.md tells operators to grant.
GRANTS = {
    "9.1": [("jobdb", "Jobs"), ("pilotdb", "PilotAgents"), ("logdb", "LoggingInfo"), ("rssdb", "SiteStatus")],
    "8.0": [("jobdb", "Jobs"), ("jobdb", "JobParameters"), ("jobdb", "SiteMask"), ("pilotdb", "PilotAgents"),
            ("logdb", "LoggingInfo")],
}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def write_web_config(path: Path, data: dict, users: dict[str, str] | None = None, cost: int = 4) -> Path:
    """A ``--web.config.file`` (JSON is YAML) with ``users`` (clear text here, bcrypt in the file)."""
    data = dict(data)
    if users:
        data["basic_auth_users"] = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(cost)).decode()
                                    for u, p in users.items()}
    path.write_text(json.dumps(data, indent=1))
    return path


class CliExporter:
    """``python -m bes_exporter`` as a process on a free loopback port; ``https`` with ``ca`` to verify."""

    def __init__(self, config: dict, tmp_path: Path, *args: str, ca: Path | None = None,
                 client_cert: tuple[Path, Path] | None = None, auth: tuple[str, str] | None = None,
                 name: str = "exporter", start_timeout: float = 20):
        tmp_path.mkdir(parents=True, exist_ok=True)
        cfg_path = tmp_path / f"{name}.yml"
        cfg_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.scheme = "https" if ca else "http"
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"
        self.auth = auth
        self.context = None
        if ca:
            self.context = ssl.create_default_context(cafile=str(ca))
            if client_cert:
                self.context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bes_exporter", "--config.file", str(cfg_path),
                                      "--web.listen-address", f"127.0.0.1:{self.port}", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"exporter did not listen within {start_timeout}s: {self.log()[-2000:]}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def get(self, path: str = "/metrics", headers: dict | None = None, context=None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
        """(status, headers, body); HTTP errors are answers too."""
        if headers is None and self.auth:
            headers = basic(*self.auth)
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context or self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def scrape(self, timeout: float = 30) -> tuple[Samples, float]:
        t0 = time.monotonic()
        status, _, body = self.get(timeout=timeout)
        assert status == 200, f"scrape answered {status}: {body[:200]!r}"
        return parse_text(body.decode()), time.monotonic() - t0

    def memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the exporter process in kB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._log.close()
        return self.proc.returncode


class MonitorAccount:
    """A least-privilege MariaDB account: SELECT on the scrapers' tables only, MAX_USER_CONNECTIONS."""

    def __init__(self, root: pymysql.connections.Connection, dbs, generation: str, max_connections: int = 2,
                 require: str = ""):
        self.root = root
        self.user = f"bes_mon_{uuid.uuid4().hex[:8]}"
        self.password = uuid.uuid4().hex
        self.host = "127.0.0.1"
        with root.cursor() as cur:
            cur.execute(f"CREATE USER '{self.user}'@'{self.host}' IDENTIFIED BY %s {require}"
                        f" WITH MAX_USER_CONNECTIONS {int(max_connections)}", (self.password,))
            for db_attr, table in GRANTS[generation]:
                cur.execute(f"GRANT SELECT ON `{getattr(dbs, db_attr)}`.`{table}` TO '{self.user}'@'{self.host}'")

    def password_file(self, directory: Path) -> Path:
        path = directory / f"{self.user}.pw"
        path.write_text(self.password + "\n")
        os.chmod(path, 0o600)
        return path

    def connect(self, port: int, **kw) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=port, user=self.user, password=self.password,
                               autocommit=True, connect_timeout=3, **kw)

    def drop(self) -> None:
        with self.root.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{self.user}'@'{self.host}'")


def make_pki(directory: Path, client_sans: tuple[str, ...] = ("prometheus.example.org",)) -> dict[str, Path]:
    """A CA with a server certificate (127.0.0.1, localhost) and a client certificate carrying
    ``client_sans`` as DNS names; PEM files in ``directory`` (keys mode 600). Keys: ca, server_cert,
    server_key, client_cert, client_key."""
    import datetime as dt
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool, usage=None, sans=None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
            b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), False)
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        return b.sign(issuer_key, hashes.SHA256())

    def write(fname: str, obj) -> Path:
        path = directory / fname
        if isinstance(obj, x509.Certificate):
            path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        else:
            path.write_bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)
        return path

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = f"test CA {uuid.uuid4().hex[:6]}"
    ca = cert(ca_name, ca_key, ca_name, ca_key, True)
    server = cert("127.0.0.1", server_key, ca_name, ca_key, False, ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))])
    client = cert("client", client_key, ca_name, ca_key, False, ExtendedKeyUsageOID.CLIENT_AUTH,
                  [x509.DNSName(s) for s in client_sans] or None)
    return {"ca": write("ca.pem", ca), "server_cert": write("server.pem", server),
            "server_key": write("server.key", server_key), "client_cert": write("client.pem", client),
            "client_key": write("client.key", client_key)}
