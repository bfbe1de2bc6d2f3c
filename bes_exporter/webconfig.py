"""``--web.config.file``: TLS, client certificates, basic auth, headers and a rate limit for the exporter's
HTTP endpoint, in the format of the Prometheus exporter-toolkit (the Pushgateway and node_exporter read
the same file).

Differences from the exporter-toolkit, each refused with a one-line error rather than ignored:
``min_version`` below TLS12, ``client_auth_type`` RequestClientCert/RequireAnyClientCert (they accept
unverified certificates), inline ``cert``/``key`` and ``curve_preferences``. ``http2`` is accepted and
ignored (HTTP/1.1 only). Relative paths are relative to the web config file, as in the toolkit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from .config import ConfigError

log = logging.getLogger("bes_exporter")

TLS_VERSIONS = {"TLS10": None, "TLS11": None, "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# Go's crypto/tls names (tls.CipherSuites()) of TLS 1.2 suites -> OpenSSL names. TLS 1.3 suites are
# accepted and, as in Go, not configurable.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Headers the exporter-toolkit lets a web config add, with their allowed values (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_ca", "client_auth_type", "client_allowed_sans",
            "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites", "cert", "key",
            "curve_preferences")
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h|d|w|y)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400,
          "w": 604800, "y": 31536000}
BCRYPT_MAX_BYTES = 72  # bcrypt reads at most this much of a password (Go and htpasswd truncate the same way)
CACHE_MAX = 64  # successful logins remembered (keyed hash only), so a scrape every 15 s skips bcrypt


class _Fail(Exception):
    """A problem in one key: (key, message); turned into a ConfigError naming the file."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        # a key read from the file may hold anything: keep the error on one line
        self.key = str(key).encode("unicode_escape").decode()[:80]


@dataclass
class WebConfig:
    """A validated web config; ``ssl_context`` is None for plain HTTP, ``users`` empty for no auth."""

    source: str
    ssl_context: ssl.SSLContext | None = None
    client_allowed_sans: tuple[str, ...] = ()
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    rate_interval: float = 0.0
    rate_burst: int = 0
    files: tuple[Path, ...] = ()
    _dummy: bytes = field(default=b"", repr=False)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _ok: set[bytes] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    def authenticate(self, user: str, password: str) -> bool:
        """True if ``user``/``password`` match a configured bcrypt hash.

        Every user name is compared in constant time, and a bcrypt check always runs (against a dummy
        hash of the same cost for an unknown user), so the answer time does not tell whether a user
        exists. Successes are remembered as a keyed hash, so the periodic scrape skips bcrypt."""
        raw_user = user.encode("utf-8", "surrogateescape")
        raw_pw = password.encode("utf-8", "surrogateescape")
        token = hmac.new(self._key, raw_user + b"\0" + raw_pw, hashlib.sha256).digest()
        if token in self._ok:
            return True
        hashed = None
        for name, value in self.users.items():
            if hmac.compare_digest(name.encode("utf-8", "surrogateescape"), raw_user):
                hashed = value
        with self._lock:  # one bcrypt at a time: a flood of guesses uses at most one core
            try:
                good = bcrypt.checkpw(raw_pw[:BCRYPT_MAX_BYTES], hashed or self._dummy)
            except ValueError:
                good = False
        if good and hashed is not None:
            if len(self._ok) >= CACHE_MAX:
                self._ok.clear()
            self._ok.add(token)
            return True
        return False

    def allowed_peer(self, cert: dict | None) -> bool:
        """With ``client_allowed_sans``: the verified client certificate has one of the listed SANs."""
        if not self.client_allowed_sans:
            return True
        sans = [str(v).rstrip("\n") for _, v in (cert or {}).get("subjectAltName", ())]
        return any(s in self.client_allowed_sans for s in sans)


def _mapping(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Fail(key, "must be a non-empty string")
    return value


def _path(value: Any, key: str, base: Path) -> Path:
    path = base / _string(value, key)
    try:
        with open(path, "rb"):
            pass
    except (OSError, ValueError) as exc:
        raise _Fail(key, f"{str(path)[:80]!r}: {getattr(exc, 'strerror', None) or exc}; give a readable file"
                         " (relative paths start at the web config's directory)") from None
    return path


def parse_duration(value: Any, key: str) -> float:
    """Seconds of a Prometheus/Go duration such as ``100ms``, ``1s``, ``1m30s`` (a bare 0 means off)."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    text = value if isinstance(value, str) else ""
    if not text or _DURATION.sub("", text) != "":
        raise _Fail(key, f"must be a duration like 1s, 500ms or 1m30s, got {str(value)[:40]!r}")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


def _tls(tls: dict, base: Path) -> tuple[ssl.SSLContext, tuple[str, ...], list[Path]]:
    p = "tls_server_config"
    for key in tls:
        if key not in TLS_KEYS:
            raise _Fail(f"{p}.{key}", f"unknown key; known keys: {', '.join(TLS_KEYS)}")
    for key, why in (("cert", "put the certificate in a file and use cert_file"),
                     ("key", "put the key in a file (mode 600) and use key_file"),
                     ("curve_preferences", "Python's TLS cannot set a curve list; remove it")):
        if tls.get(key) is not None:
            raise _Fail(f"{p}.{key}", f"not supported by bes-exporter; {why}")
    if tls.get("cert_file") is None:
        raise _Fail(f"{p}.cert_file", "missing: TLS needs cert_file and key_file")
    if tls.get("key_file") is None:
        raise _Fail(f"{p}.key_file", "missing: TLS needs cert_file and key_file")
    cert = _path(tls["cert_file"], f"{p}.cert_file", base)
    key = _path(tls["key_file"], f"{p}.key_file", base)
    files = [cert, key]
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = tls.get(name, default)
        if not isinstance(value, str) or value not in TLS_VERSIONS:
            raise _Fail(f"{p}.{name}", f"must be one of TLS12, TLS13, got {str(value)[:20]!r}")
        if TLS_VERSIONS[value] is None:
            raise _Fail(f"{p}.{name}", f"{value} is below TLS 1.2, the minimum bes-exporter allows; use TLS12"
                                       " or TLS13")
        versions[name] = TLS_VERSIONS[value]
    if versions["min_version"] > versions["max_version"]:
        raise _Fail(f"{p}.max_version", "is below min_version; raise it or lower min_version")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = versions["min_version"]
    ctx.maximum_version = versions["max_version"]
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise _Fail(f"{p}.cert_file", f"{cert} with key {key}: cannot load them ({_ssl_reason(exc)}); give a"
                                      " PEM certificate and its matching unencrypted PEM key") from None
    auth = tls.get("client_auth_type") or "NoClientCert"
    if not isinstance(auth, str):
        raise _Fail(f"{p}.client_auth_type", f"must be one of {', '.join(CLIENT_AUTH)}")
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise _Fail(f"{p}.client_auth_type", f"{auth} accepts unverified certificates and is not supported;"
                                             " use RequireAndVerifyClientCert with client_ca_file")
    if auth not in CLIENT_AUTH:
        raise _Fail(f"{p}.client_auth_type", f"must be one of {', '.join(CLIENT_AUTH)}, got {str(auth)[:40]!r}")
    has_ca = tls.get("client_ca_file") is not None or tls.get("client_ca") is not None
    if has_ca and auth == "NoClientCert":
        raise _Fail(f"{p}.client_auth_type", "client CAs are configured but no client auth policy; set"
                                             " client_auth_type: RequireAndVerifyClientCert")
    if auth != "NoClientCert" and not has_ca:
        raise _Fail(f"{p}.client_ca_file", f"missing: client_auth_type {auth} needs the CA that signs the"
                                           " client certificates")
    try:
        if tls.get("client_ca_file") is not None:
            ca = _path(tls["client_ca_file"], f"{p}.client_ca_file", base)
            files.append(ca)
            ctx.load_verify_locations(cafile=str(ca))
        elif tls.get("client_ca") is not None:
            ctx.load_verify_locations(cadata=_string(tls["client_ca"], f"{p}.client_ca"))
    except (ssl.SSLError, ValueError) as exc:
        raise _Fail(f"{p}.client_ca_file", f"cannot load the client CA ({_ssl_reason(exc)}); give PEM"
                                           " certificates") from None
    ctx.verify_mode = CLIENT_AUTH[auth]
    sans = tls.get("client_allowed_sans")
    if sans is not None:
        if not isinstance(sans, list) or not sans or not all(isinstance(s, str) and s for s in sans):
            raise _Fail(f"{p}.client_allowed_sans", "must be a non-empty list of strings (DNS, IP, e-mail, URI)")
        if auth != "RequireAndVerifyClientCert":
            raise _Fail(f"{p}.client_allowed_sans", "needs client_auth_type: RequireAndVerifyClientCert")
    suites = tls.get("cipher_suites")
    if suites is not None:
        if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
            raise _Fail(f"{p}.cipher_suites", "must be a list of Go cipher suite names")
        names = []
        for s in suites:
            if s not in CIPHERS and s not in TLS13_CIPHERS:
                raise _Fail(f"{p}.cipher_suites", f"unknown or insecure cipher suite {s[:60]!r}; known: "
                                                  f"{', '.join(CIPHERS)}")
            if s in CIPHERS:
                names.append(CIPHERS[s])
        if names:
            try:
                ctx.set_ciphers(":".join(names))
            except ssl.SSLError:
                raise _Fail(f"{p}.cipher_suites", "none of these suites is available in this OpenSSL") from None
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise _Fail(f"{p}.prefer_server_cipher_suites", "must be true or false")
    if prefer:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx, tuple(sans or ()), files


def _users(users: Any) -> tuple[dict[str, bytes], bytes]:
    users = _mapping(users, "basic_auth_users")
    out: dict[str, bytes] = {}
    costs = set()
    for name, hashed in users.items():
        key = f"basic_auth_users.{name}"
        if not isinstance(name, str) or not name or ":" in name:
            raise _Fail(key, "a user name must be a non-empty string without ':'")
        match = _BCRYPT.match(hashed) if isinstance(hashed, str) else None
        if not match or not 4 <= int(match.group(1)) <= 31:
            raise _Fail(key, "must be a bcrypt hash ($2y$10$..., 60 characters), e.g. from htpasswd -nBC 10 ''")
        out[name] = hashed.encode()
        costs.add(int(match.group(1)))
    if len(costs) > 1:
        log.warning("basic_auth_users use different bcrypt costs %s: answer times tell users apart; use one cost",
                    sorted(costs))
    # An unknown user is checked against this hash: same cost as the real ones, so the same time.
    dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(max(costs))) if costs else b""
    return out, dummy


def _http(http: Any) -> dict[str, str]:
    http = _mapping(http, "http_server_config")
    for key in http:
        if key not in ("http2", "headers"):
            raise _Fail(f"http_server_config.{key}", "unknown key; known keys: headers, http2")
    if "http2" in http and not isinstance(http["http2"], bool):
        raise _Fail("http_server_config.http2", "must be true or false")
    headers = _mapping(http.get("headers"), "http_server_config.headers")
    out = {}
    for name, value in headers.items():
        key = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            raise _Fail(key, f"this header can not be configured; allowed: {', '.join(HEADERS)}")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _Fail(key, "must be a one-line string")
        allowed = HEADERS[name]
        if allowed is not None and value not in allowed:
            raise _Fail(key, f"must be one of {', '.join(allowed)}")
        if value:
            out[name] = value
    return out


def parse(data: Any, path: str | Path) -> WebConfig:
    """Validate a parsed web config; ``path`` is the file it came from (base of relative paths)."""
    path = Path(path)
    try:
        data = _mapping(data, "top level")
        for key in data:
            if key not in TOP_KEYS:
                raise _Fail(str(key), f"unknown key; known keys: {', '.join(TOP_KEYS)}")
        cfg = WebConfig(source=str(path), files=(path,))
        tls = _mapping(data.get("tls_server_config"), "tls_server_config")
        if tls:
            cfg.ssl_context, cfg.client_allowed_sans, files = _tls(tls, path.parent)
            cfg.files = (path, *files)
        cfg.users, cfg._dummy = _users(data.get("basic_auth_users"))
        cfg.headers = _http(data.get("http_server_config"))
        limit = _mapping(data.get("rate_limit"), "rate_limit")
        for key in limit:
            if key not in ("interval", "burst"):
                raise _Fail(f"rate_limit.{key}", "unknown key; known keys: burst, interval")
        cfg.rate_interval = parse_duration(limit.get("interval", 0), "rate_limit.interval")
        burst = limit.get("burst", 0)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise _Fail("rate_limit.burst", "must be a whole number >= 0")
        if cfg.rate_interval > 0 and burst < 1:
            raise _Fail("rate_limit.burst", "must be at least 1 when rate_limit.interval is set")
        cfg.rate_burst = burst
    except _Fail as exc:
        raise ConfigError(f"--web.config.file {path}: '{exc.key}' {exc}") from None
    return cfg


def load(path: str | Path) -> WebConfig:
    """Read and validate a web config file; every problem is one ConfigError line."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"--web.config.file {path}: {why}; give the path of a readable YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"--web.config.file {path}: not valid YAML{at}; fix the syntax") from None
    return parse(data, path)


def _ssl_reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc).splitlines()[0][:120]


class WebConfigSource:
    """The current web config; re-read when the file or a certificate it names changes (so certificates
    can be rotated without a restart). A broken edit is logged and the previous config kept."""

    CHECK_EVERY = 1.0  # seconds between stat() checks

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = load(self.path)
        self._sig = self._signature(self.config)
        self._checked = time.monotonic()
        self._bad_sig: tuple | None = None
        self._lock = threading.Lock()
        self._tokens = float(self.config.rate_burst)
        self._refill = time.monotonic()

    def _signature(self, cfg: WebConfig) -> tuple:
        sig = []
        for f in cfg.files:
            try:
                st = os.stat(f)
                sig.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                sig.append((str(f), None))
        return tuple(sig)

    def current(self) -> WebConfig:
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.CHECK_EVERY:
                return self.config
            self._checked = now
            sig = self._signature(self.config)
            if sig == self._sig or sig == self._bad_sig:
                return self.config
            try:
                fresh = load(self.path)
            except ConfigError as exc:
                log.error("%s; keeping the previous web config", exc)
                self._bad_sig = sig
                return self.config
            log.info("web config %s reloaded", self.path)
            self.config, self._sig, self._bad_sig = fresh, self._signature(fresh), None
            return self.config

    def allow_request(self) -> bool:
        """Token bucket of ``rate_limit`` (always True without one)."""
        cfg = self.config
        if cfg.rate_interval <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(cfg.rate_burst), self._tokens + (now - self._refill) / cfg.rate_interval)
            self._refill = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False
