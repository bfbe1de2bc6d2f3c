"""Pytest fixtures and helpers for real Prometheus daemons, TLS material and web-config files.

Import the ``*_fixture`` functions into a test module or a conftest you own (``tests/`` is on
``sys.path`` under pytest); the fixtures are named without the suffix, so test arguments do not
shadow the imports (ruff F811)::

    from services_fixtures import pushgateway_fixture, secure_pushgateway_fixture  # noqa: F401

    def test_x(pushgateway): ...

Fixtures: ``pushgateway`` (plain HTTP), ``secure_pushgateway`` (HTTPS + basic auth),
``tls_material`` (session: a CA, a server cert for 127.0.0.1/localhost, a client cert).
Helpers: :func:`make_tls_material`, :func:`write_web_config`, :func:`read_pushgateway_metrics`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import urllib.request
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bes_demo import services


@dataclass
class TLSMaterial:
    """PEM files of a self-made CA, a server cert (127.0.0.1, localhost) and a client cert."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bes-monitoring tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls_material(directory: Path) -> TLSMaterial:
    """Create a CA and server/client certificates (valid one day) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = _key()
    ca_cert = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage, san: list | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = _key()
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))])
    client, client_key = leaf("test client", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "client.pem").write_bytes(client.public_bytes(pem))
    return TLSMaterial(ca=directory / "ca.pem", server_cert=directory / "server.pem",
                       server_key=_write_key(server_key, directory / "server.key"),
                       client_cert=directory / "client.pem",
                       client_key=_write_key(client_key, directory / "client.key"))


def write_web_config(path: Path, tls: TLSMaterial | None = None, users: dict | None = None,
                     client_auth: bool = False) -> Path:
    """Write a Prometheus-style ``--web.config.file`` (TLS and/or bcrypt basic auth users).

    ``users`` maps user name to clear-text password; only bcrypt hashes go into the file.
    JSON is valid YAML, so the file is written as JSON.
    """
    cfg: dict = {}
    if tls:
        cfg["tls_server_config"] = {"cert_file": str(tls.server_cert), "key_file": str(tls.server_key)}
        if client_auth:
            cfg["tls_server_config"].update(client_ca_file=str(tls.ca),
                                            client_auth_type="RequireAndVerifyClientCert")
    if users:
        # cost 4 (the minimum) keeps the server's per-request check fast in tests.
        cfg["basic_auth_users"] = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()
                                   for u, p in users.items()}
    path.write_text(json.dumps(cfg, indent=1))
    return path


def read_pushgateway_metrics(pgw: services.Daemon, ca: Path | None = None,
                             auth: tuple[str, str] | None = None,
                             client_cert: tuple[str, str] | None = None) -> list[dict]:
    """The Pushgateway's ``/api/v1/metrics`` answer: one entry per group (labels + metric families)."""
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    if ctx and client_cert:
        ctx.load_cert_chain(*client_cert)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(pgw.url + "/api/v1/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        return json.load(resp)["data"]


@dataclass
class SecurePushgateway:
    """A running HTTPS + basic-auth Pushgateway and what a client needs to talk to it."""

    daemon: services.Daemon
    tls: TLSMaterial
    user: str
    password: str
    password_file: Path

    @property
    def url(self) -> str:
        return self.daemon.url


@pytest.fixture(scope="session", name="tls_material")
def tls_material_fixture(tmp_path_factory) -> TLSMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(name="pushgateway")
def pushgateway_fixture(tmp_path):
    """A plain-HTTP Pushgateway on a free loopback port, stopped after the test."""
    daemon = services.start_pushgateway(tmp_path / "pushgateway")
    yield daemon
    daemon.stop()


@pytest.fixture(name="secure_pushgateway")
def secure_pushgateway_fixture(tmp_path, tls_material):
    """A Pushgateway serving HTTPS (test CA) with basic auth user ``prober``."""
    password = "s3cret-for-tests"
    pw_file = tmp_path / "push.password"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    web = write_web_config(tmp_path / "web.yml", tls=tls_material, users={"prober": password})
    daemon = services.start_pushgateway(tmp_path / "pushgateway", web_config=web,
                                        auth=("prober", password))
    yield SecurePushgateway(daemon, tls_material, "prober", password, pw_file)
    daemon.stop()
