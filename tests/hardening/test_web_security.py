"""The exporter's endpoint behind ``--web.config.file``: HTTPS with client certificates and bcrypt basic auth
(real CLI, real MariaDB), TLS 1.2 minimum, 401 without timing leaks, one-line refusal of bad web configs,
certificate rotation, client SAN allow-list, rate limit and extra headers."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error

import pytest
from hardening_util import ROOT, CliExporter, basic, make_pki, write_web_config
from prometheus_client import CollectorRegistry

from bes_exporter.main import main
from bes_exporter.web import serve
from bes_exporter.webconfig import WebConfigSource


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory):
    """A second, unrelated CA (its client certificate must be refused)."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


def tls_section(pki, client_auth: bool = True, **extra) -> dict:
    tls = {"cert_file": str(pki["server_cert"]), "key_file": str(pki["server_key"])}
    if client_auth:
        tls.update(client_ca_file=str(pki["ca"]), client_auth_type="RequireAndVerifyClientCert")
    tls.update(extra)
    return {"tls_server_config": tls}


def client_context(pki, cert=True, other=None, **versions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    source = other or pki
    if cert:
        ctx.load_cert_chain(str(source["client_cert"]), str(source["client_key"]))
    for attr, value in versions.items():
        setattr(ctx, attr, value)
    return ctx


def refused(exporter: CliExporter, ctx: ssl.SSLContext) -> bool:
    """True if the TLS connection (or the first request on it) is refused."""
    try:
        exporter.get("/metrics", context=ctx, timeout=10)
    except (urllib.error.URLError, ssl.SSLError, ConnectionError, http.client.HTTPException):
        return True
    return False


def test_https_client_cert_and_basic_auth_on_the_real_exporter(dirac_new, pki, other_pki, tmp_path):
    web = write_web_config(tmp_path / "web.yml", tls_section(pki), users={"prometheus": "sc4pe-me"})
    exp = CliExporter(dirac_new.config(), tmp_path, "--web.config.file", str(web), ca=pki["ca"],
                      client_cert=(pki["client_cert"], pki["client_key"]), auth=("prometheus", "sc4pe-me"))
    try:
        samples, _ = exp.scrape()
        assert samples.v("dirac_up") == 1
        assert samples.v("dirac_exporter_collector_success", collector="jobs") == 1
        status, _, body = exp.get("/")
        assert status == 200 and b"/metrics" in body

        for path in ("/metrics", "/", "/nothing"):
            for headers in ({}, basic("prometheus", "wrong"), basic("nobody", "sc4pe-me"),
                            {"Authorization": "Basic !!!not-base64"}, {"Authorization": "Bearer x"}):
                status, resp_headers, body = exp.get(path, headers=headers)
                assert status == 401, (path, headers, status)
                assert resp_headers["WWW-Authenticate"].startswith("Basic realm=")
                assert b"dirac_" not in body

        # no client certificate / one from another CA: no TLS session at all
        assert refused(exp, client_context(pki, cert=False))
        assert refused(exp, client_context(pki, other=other_pki))
        # TLS 1.2 and 1.3 work; 1.1 is refused by the server
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context(pki, minimum_version=version, maximum_version=version)
            with socket.create_connection(("127.0.0.1", exp.port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert tls11_refused(exp.port, pki)
        # plain HTTP on the TLS port gets no HTTP answer
        conn = http.client.HTTPConnection("127.0.0.1", exp.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/metrics", headers=basic("prometheus", "sc4pe-me"))
            conn.getresponse()
        conn.close()

        assert exp.get()[0] == 200  # still serving after all that
        log = exp.log()
        assert "sc4pe-me" not in log and "Traceback" not in log
        assert "refused basic auth" in log and "(https, basic auth)" in log
    finally:
        assert exp.stop() == 0


def tls11_refused(port: int, pki) -> bool:
    """A TLS 1.1 ClientHello is refused. The same client context first proves it can speak TLS 1.1 to a
    server that allows it, so the refusal is the exporter's, not the client's own policy."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki["ca"]))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    server_ctx.load_cert_chain(str(pki["server_cert"]), str(pki["server_key"]))
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        def accept():
            conn, _ = lsock.accept()
            try:
                server_ctx.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            with socket.create_connection(lsock.getsockname(), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                control = tls.version()
        except ssl.SSLError:
            control = None
        t.join(10)
    if control != "TLSv1.1":
        pytest.skip("this OpenSSL cannot speak TLS 1.1 even at SECLEVEL=0: nothing to prove")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
            return False
    except (ssl.SSLError, ConnectionError):
        return True


BAD_WEB_CONFIGS = [
    # (file text or None for a missing file, words the one-line error must contain)
    (None, ["No such file"]),
    ("tls_server_config: [unclosed", ["not valid YAML", "line"]),
    ("tls_config: {}", ["'tls_config'", "unknown key"]),
    ("tls_server_config: {cert_file: SERVER}", ["'tls_server_config.key_file'", "missing"]),
    ("tls_server_config: {cert_file: /nonexistent.pem, key_file: KEY}", ["'tls_server_config.cert_file'",
                                                                        "No such file"]),
    ("tls_server_config: {cert_file: SERVER, key_file: CLIENTKEY}", ["'tls_server_config.cert_file'",
                                                                    "matching"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, min_version: TLS11}", ["min_version", "TLS 1.2"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, min_version: TLS14}", ["min_version", "TLS12"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, min_version: TLS13, max_version: TLS12}",
     ["max_version"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, client_auth_type: RequireAnyClientCert,"
     " client_ca_file: CA}", ["client_auth_type", "unverified"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, client_auth_type: Sometimes}", ["client_auth_type"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, client_ca_file: CA}",
     ["client_auth_type", "RequireAndVerifyClientCert"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, client_auth_type: RequireAndVerifyClientCert}",
     ["client_ca_file", "missing"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]}",
     ["cipher_suites", "insecure"]),
    ("tls_server_config: {cert_file: SERVER, key_file: KEY, client_allowed_sans: [a.example]}",
     ["client_allowed_sans", "RequireAndVerifyClientCert"]),
    ("tls_server_config: {cert: '-----BEGIN CERTIFICATE-----', key_file: KEY}", ["'tls_server_config.cert'",
                                                                                 "cert_file"]),
    ("basic_auth_users: {prometheus: clear-text-password}", ["basic_auth_users.prometheus", "bcrypt"]),
    ("basic_auth_users: {'a:b': '$2b$04$abcdefghijklmnopqrstuu1234567890123456789012345678901'}",
     ["user name", "':'"]),
    ("basic_auth_users: [prometheus]", ["'basic_auth_users'", "mapping"]),
    ("http_server_config: {headers: {X-Powered-By: me}}", ["X-Powered-By", "can not be configured"]),
    ("http_server_config: {headers: {X-Frame-Options: allow}}", ["X-Frame-Options", "deny"]),
    ("rate_limit: {interval: soon, burst: 3}", ["rate_limit.interval", "duration"]),
    ("rate_limit: {interval: 1s}", ["rate_limit.burst"]),
    ("- just\n- a list", ["top level", "mapping"]),
]


@pytest.mark.parametrize("text,words", BAD_WEB_CONFIGS, ids=[f"bad{i}" for i in range(len(BAD_WEB_CONFIGS))])
def test_bad_web_config_is_one_line_and_exit_2(text, words, pki, tmp_path, capsys):
    path = tmp_path / "web.yml"
    if text is not None:
        for placeholder, key in (("SERVER", "server_cert"), ("CLIENTKEY", "client_key"), ("KEY", "server_key"),
                                 ("CA", "ca")):
            text = text.replace(placeholder, str(pki[key]))
        path.write_text(text)
    code = main(["--web.config.file", str(path), "--web.listen-address", "127.0.0.1:0", "--log.level", "error"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"bes-exporter: --web.config.file {path}"), err
    for word in words:
        assert word in err, (word, err)


def test_bad_web_config_real_cli_exit_2(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config: {cert_file: nope.pem, key_file: nope.key}\n")
    proc = subprocess.run([sys.executable, "-m", "bes_exporter", "--web.config.file", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "'tls_server_config.cert_file'" in proc.stderr


@pytest.fixture
def in_process():
    """serve() over an empty registry with a given web config; yields a starter, shuts servers down."""
    servers = []

    def start(web_path):
        source = WebConfigSource(web_path)
        server = serve(CollectorRegistry(), "127.0.0.1", 0, source)
        servers.append(server)
        return server.server_address[1], source

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _timed_get(port: int, headers: dict) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.connect()
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t0
    finally:
        conn.close()


def test_wrong_user_and_wrong_password_take_the_same_time(in_process, tmp_path):
    """An unknown user costs a bcrypt check like a known user with a wrong password, so answer times do
    not reveal user names (a shortcut for unknown users would answer ~100x faster)."""
    cost = 8  # ~40 ms here: well above the noise of a loaded machine
    web = write_web_config(tmp_path / "web.yml", {}, users={"prometheus": "right", "grafana": "other"}, cost=cost)
    port, source = in_process(web)
    cases = {"known user, wrong password": basic("prometheus", "wrong"),
             "unknown user": basic("intruder", "wrong"),
             "malformed header": {"Authorization": "Basic %%%"}}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(12):  # interleaved, so load changes hit every case alike
        for name, headers in cases.items():
            status, took = _timed_get(port, headers)
            assert status == 401
            times[name].append(took)
    medians = {k: statistics.median(v) for k, v in times.items()}
    reference = medians["known user, wrong password"]
    for value in medians.values():
        assert 0.5 * reference < value < 2.0 * reference, medians
    assert not source.config._ok  # failures are never remembered
    for _ in range(2):
        assert _timed_get(port, basic("prometheus", "right"))[0] == 200
    assert len(source.config._ok) == 1  # the success is remembered (keyed hash): later scrapes skip bcrypt


def test_certificate_rotation_and_broken_edit(in_process, pki, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    for key in ("server_cert", "server_key"):
        shutil.copy(pki[key], certs / pki[key].name)
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": {"cert_file": "certs/server.pem",
                                                                        "key_file": "certs/server.key"}})
    port, source = in_process(web)  # relative paths: from the web config's directory
    source.CHECK_EVERY = 0.0

    def ok(ca) -> bool:
        ctx = ssl.create_default_context(cafile=str(ca))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
        except ssl.SSLCertVerificationError:
            return False

    assert ok(pki["ca"])
    rotated = make_pki(tmp_path / "rotated")
    for key in ("server_cert", "server_key"):
        shutil.copy(rotated[key], certs / rotated[key].name)
    assert ok(rotated["ca"]) and not ok(pki["ca"])
    web.write_text("tls_server_config: {cert_file: certs/missing.pem, key_file: certs/server.key}\n")
    assert ok(rotated["ca"])  # a broken edit is logged, the running config stays


def test_client_allowed_sans_rate_limit_and_headers(in_process, pki, other_pki, tmp_path):
    data = tls_section(pki, client_allowed_sans=["scraper.example.org"])
    data["http_server_config"] = {"headers": {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny"}}
    port, _ = in_process(write_web_config(tmp_path / "sans.yml", data))

    def status(ctx) -> int | None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().status
        except (ssl.SSLError, ConnectionError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    assert status(client_context(pki)) is None  # verified certificate, but its SAN is not on the list
    sans_pki = make_pki(tmp_path / "sans", client_sans=("scraper.example.org",))
    port, _ = in_process(write_web_config(tmp_path / "sans2.yml", {
        **tls_section(sans_pki, client_allowed_sans=["scraper.example.org"]),
        "http_server_config": data["http_server_config"],
        "rate_limit": {"interval": "1m", "burst": 2}}))
    ctx = client_context(sans_pki)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("X-Content-Type-Options") == "nosniff" and resp.getheader("X-Frame-Options") == "deny"
    conn.close()
    assert status(ctx) == 200
    assert status(ctx) == 429  # burst of 2 used up, one more token per minute
