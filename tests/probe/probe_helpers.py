"""Probe test helpers: X.509 proxies, CLI runners, Pushgateway API readers (fixtures: conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from services_fixtures import read_pushgateway_metrics  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[2]
# RFC 3820 ProxyCertInfo with policy id-ppl-inheritAll (what grid proxy tools write).
PROXY_CERT_INFO_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
PROXY_CERT_INFO_INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")


@dataclass
class ProbeRun:
    """A finished ``bes-probe`` process."""

    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 60,
            python: str = sys.executable, program: list[str] | None = None, user: int | None = None) -> ProbeRun:
    """Run the probe as a separate process (``python -m probe_pushgateway`` unless ``program``)."""
    cmd = (program or [python, "-m", "probe_pushgateway"]) + list(args)
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONPATH", str(ROOT))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd or ROOT,
                          timeout=timeout, user=user)
    return ProbeRun(proc.returncode, proc.stdout, proc.stderr)


def probe_group(groups: list[dict], site: str, ce: str = "none") -> dict:
    """The Pushgateway API group of ``job=bes_probe, site, ce``."""
    for g in groups:
        labels = g["labels"]
        if labels.get("job") == "bes_probe" and labels.get("site") == site and labels.get("ce") == ce:
            return g
    raise AssertionError(f"no bes_probe group for site={site} ce={ce} in {[g['labels'] for g in groups]}")


def samples(group: dict, family: str) -> dict:
    """{frozenset(labels.items()): float value} of one family in a Pushgateway API group."""
    fam = group.get(family)
    if not fam:
        return {}
    return {frozenset(m["labels"].items()) - {("job", "bes_probe"), ("site", group["labels"]["site"]),
                                              ("ce", group["labels"]["ce"]), ("instance", "")}:
            float(m["value"]) for m in fam["metrics"]}


def _name(*cns: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "BES grid tests")]
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns]
    return x509.Name(attrs)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def make_proxy(path: Path, lifetime: dt.timedelta, starts: dt.timedelta = dt.timedelta(hours=-1),
               with_key: bool = True) -> Path:
    """Write an RFC 3820 proxy file (proxy cert, its key, the user cert) like grid tools do.

    The proxy is valid from now+``starts`` to now+``lifetime`` (negative: already expired); the user
    certificate runs to 2055 (encoded as GeneralizedTime, the proxy as UTCTime).
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    proxy_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name, user_name = _name("Test Grid CA"), _name("test user")
    user = (x509.CertificateBuilder().subject_name(user_name).issuer_name(ca_name)
            .public_key(user_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(dt.datetime(2055, 1, 1, tzinfo=dt.timezone.utc))
            .sign(ca_key, hashes.SHA256()))
    proxy = (x509.CertificateBuilder().subject_name(_name("test user", "1234567890")).issuer_name(user_name)
             .public_key(proxy_key.public_key()).serial_number(1234567890)
             .not_valid_before(min(now + starts, now + lifetime - dt.timedelta(hours=1)))
             .not_valid_after(now + lifetime)
             .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, PROXY_CERT_INFO_INHERIT_ALL),
                            critical=True)
             .sign(user_key, hashes.SHA256()))
    pem = proxy.public_bytes(serialization.Encoding.PEM)
    if with_key:
        pem += _pem_key(proxy_key)
    pem += user.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pem)
    path.chmod(0o600)
    return path
