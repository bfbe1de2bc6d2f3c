"""Each probe check against real conditions made on this machine."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from probe_helpers import make_proxy, run_cli

from probe_pushgateway import checks
from probe_pushgateway.checks import environment
from probe_pushgateway.cli import select_checks


def check(name: str, tmp_path: Path, budget: float = 30, env: dict | None = None,
          pushgateway_url: str | None = None, **opts) -> checks.Result:
    """Run one check through the real runner with config-validated options."""
    merged = select_checks({name: opts})[name]
    ctx = checks.Context(workdir=str(tmp_path), env=dict(env or {}), pushgateway_url=pushgateway_url)
    return checks.run_one(checks.modules()[name], merged, ctx, budget)


# --- environment ---------------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MB tmpfs (root can mount here); None where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                          capture_output=True, timeout=10)
    if proc.returncode != 0:
        yield None
        return
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def test_environment_ok_and_disk_filled_to_threshold(tmp_path, small_fs):
    r = check("environment", tmp_path, min_free_workdir_mb=1, min_free_tmp_mb=1, min_memory_mb=1)
    assert (r.status, r.reason) == ("ok", "ok"), r.detail
    if small_fs is None:  # no mount permission: a real threshold just above what the disk has
        free = environment.free_mb(str(tmp_path))
        r = check("environment", tmp_path, min_free_workdir_mb=free + 1024, min_memory_mb=1)
    else:
        r = check("environment", small_fs, min_free_workdir_mb=2, min_memory_mb=1)
        assert r.status == "ok", r.detail
        (small_fs / "fill").write_bytes(b"\0" * (3 * 1024 * 1024))  # 1 MB left of 4
        r = check("environment", small_fs, min_free_workdir_mb=2, min_memory_mb=1)
    assert (r.status, r.reason) == ("failed", "low_disk_workdir"), r.detail


def test_environment_tmp_memory_cores_missing_dir(tmp_path):
    free = environment.free_mb(str(tmp_path))
    r = check("environment", tmp_path, min_free_workdir_mb=1, tmpdir=str(tmp_path),
              min_free_tmp_mb=free + 1024, min_memory_mb=1)
    assert r.reason == "low_disk_tmp"
    r = check("environment", tmp_path, min_free_workdir_mb=1, min_free_tmp_mb=1, min_memory_mb=10 ** 9)
    assert r.reason == "low_memory"
    r = check("environment", tmp_path, min_free_workdir_mb=1, min_free_tmp_mb=1, min_memory_mb=1,
              min_cores=100000)
    assert r.reason == "few_cores"
    r = check("environment", tmp_path, workdir=str(tmp_path / "gone"), min_memory_mb=1)
    assert (r.status, r.reason) == ("failed", "missing_dir")


# --- cvmfs ---------------------------------------------------------------------------------------


def test_cvmfs_ok_missing_empty_not_a_dir(tmp_path):
    repo = tmp_path / "boss.example.org"
    repo.mkdir()
    (repo / "setup.sh").write_text("true\n")
    assert check("cvmfs", tmp_path, repositories=[str(repo)]).status == "ok"
    r = check("cvmfs", tmp_path, repositories=[str(repo), str(tmp_path / "absent")])
    assert (r.status, r.reason) == ("failed", "not_mounted")
    (tmp_path / "empty").mkdir()
    assert check("cvmfs", tmp_path, repositories=[str(tmp_path / "empty")]).reason == "empty"
    assert check("cvmfs", tmp_path, repositories=[str(repo / "setup.sh")]).reason == "unreadable"
    assert check("cvmfs", tmp_path, repositories=[]).status == "unknown"


def test_cvmfs_unreadable_for_the_job_user(tmp_path, probe_pyz):
    """A repository the (unprivileged) job user cannot list: the pyz run by Debian's python3 as
    'nobody', as a grid job runs it (root could read anything)."""
    base = Path("/tmp") / f"bes-probe-{uuid.uuid4().hex[:8]}"
    locked = base / "locked"
    locked.mkdir(parents=True)
    (locked / "x").write_text("x")
    base.chmod(0o755)
    locked.chmod(0o700)  # root's; nobody may not list it
    cfg = base / "probe.json"
    cfg.write_text(json.dumps({"checks": {"cvmfs": {"repositories": [str(locked)]}}}))
    cfg.chmod(0o644)
    pyz = base / "bes-probe.pyz"
    pyz.write_bytes(probe_pyz.read_bytes())
    pyz.chmod(0o755)
    try:
        res = run_cli("--config.file", str(cfg), "--site", "BES.TEST.cn", "--dry-run",
                      "--workdir", str(base), user=65534, cwd=base, program=["/usr/bin/python3", str(pyz)],
                      env={"PYTHONPATH": ""})
    finally:
        subprocess.run(["rm", "-rf", str(base)], timeout=10)
    assert res.code == 1, res.stderr
    assert 'dirac_probe_check_info{check="cvmfs",reason="unreadable"} 1.0' in res.stdout


# --- software ------------------------------------------------------------------------------------


def test_software_ok_exit_mismatch(tmp_path):
    r = check("software", tmp_path, command="echo BOSS version 7.1.2", expect=r"BOSS version \d")
    assert (r.status, r.reason) == ("ok", "ok"), r.detail
    r = check("software", tmp_path, command="echo setup failed >&2; exit 4")
    assert (r.status, r.reason) == ("failed", "exit_nonzero") and "setup failed" in r.detail
    assert check("software", tmp_path, command="echo hi", expect="BOSS").reason == "output_mismatch"
    assert check("software", tmp_path).reason == "not_configured"
    assert check("software", tmp_path, command="true", shell="/nonexistent/sh").reason == "no_shell"


def test_software_hang_is_killed_at_its_timeout(tmp_path):
    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    r = check("software", tmp_path, command=f"sleep 300 & echo $! > {pid_file}; wait", timeout=1.5)
    elapsed = time.monotonic() - start
    assert (r.status, r.reason) == ("failed", "timeout"), r.detail
    assert elapsed < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}").exists() else ""
        if state == "Z":
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or state == "Z", "the command's child survived"


# --- tcp -----------------------------------------------------------------------------------------


def test_tcp_listening_closed_and_silent_ports(tmp_path):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        r = check("tcp", tmp_path, targets=[f"127.0.0.1:{port}"])
        assert r.status == "ok", r.detail
        srv.accept()[0].close()
        # The accept queue is now full (one unaccepted connection): new SYNs are dropped, like a
        # firewall that silently drops.
        filler = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            start = time.monotonic()
            r = check("tcp", tmp_path, targets=[f"127.0.0.1:{port}"], connect_timeout=1)
            assert (r.status, r.reason) == ("failed", "timeout"), r.detail
            assert time.monotonic() - start < 3
        finally:
            filler.close()
    r = check("tcp", tmp_path, targets=[f"127.0.0.1:{port}"])  # closed now
    assert (r.status, r.reason) == ("failed", "refused")
    assert check("tcp", tmp_path).reason == "not_configured"
    r = check("tcp", tmp_path, pushgateway_url=f"http://127.0.0.1:{port}")
    assert r.reason == "refused", "without targets the Pushgateway's address is checked"


# --- proxy ---------------------------------------------------------------------------------------


def test_proxy_valid_expired_short_missing(tmp_path):
    good = make_proxy(tmp_path / "good", dt.timedelta(hours=12))
    r = check("proxy", tmp_path, env={"X509_USER_PROXY": str(good)})
    assert (r.status, r.reason) == ("ok", "ok"), r.detail
    assert "2 certificate(s)" in r.detail
    expired = make_proxy(tmp_path / "expired", dt.timedelta(hours=-2))
    assert check("proxy", tmp_path, env={"X509_USER_PROXY": str(expired)}).reason == "expired"
    short = make_proxy(tmp_path / "short", dt.timedelta(minutes=20))
    r = check("proxy", tmp_path, env={"X509_USER_PROXY": str(short)})
    assert (r.status, r.reason) == ("failed", "short_lifetime")
    assert check("proxy", tmp_path, env={"X509_USER_PROXY": str(short)},
                 min_lifetime_seconds=600).status == "ok"
    future = make_proxy(tmp_path / "future", dt.timedelta(hours=30), starts=dt.timedelta(hours=2))
    assert check("proxy", tmp_path, path=str(future)).reason == "not_yet_valid"
    nokey = make_proxy(tmp_path / "nokey", dt.timedelta(hours=12), with_key=False)
    assert check("proxy", tmp_path, path=str(nokey)).reason == "no_key"
    assert check("proxy", tmp_path, env={"X509_USER_PROXY": str(tmp_path / "none")}).reason == "missing"
    garbage = tmp_path / "garbage"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    assert check("proxy", tmp_path, path=str(garbage)).reason == "invalid"
    garbage.write_text("hello")
    assert check("proxy", tmp_path, path=str(garbage)).reason == "invalid"


def test_proxy_agrees_with_openssl(tmp_path):
    """The DER walker reads the same end date as openssl does."""
    from probe_pushgateway.checks import proxy

    path = make_proxy(tmp_path / "p", dt.timedelta(hours=5))
    ours = proxy.certificates(path.read_bytes())
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    theirs = dt.datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    assert ours[0][1] == theirs.replace(tzinfo=dt.timezone.utc).timestamp()
    assert ours[1][1] == dt.datetime(2055, 1, 1, tzinfo=dt.timezone.utc).timestamp()


def test_hung_check_is_cut_by_the_runner(tmp_path):
    """A proxy 'file' that never delivers (a FIFO without writer) blocks open(): the runner gives
    up after the check's timeout, and the CLI exits promptly without waiting for the stuck thread."""
    fifo = tmp_path / "proxy.fifo"
    os.mkfifo(fifo)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"checks": {"proxy": {"path": str(fifo), "timeout": 1}}}))
    start = time.monotonic()
    res = run_cli("--config.file", str(cfg), "--site", "BES.TEST.cn", "--dry-run", timeout=20)
    assert res.code == 1 and 'check="proxy",reason="timeout"' in res.stdout
    assert time.monotonic() - start < 1 + checks.GRACE + 4


def test_global_deadline_leaves_later_checks_unknown(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"checks": {"software": {"command": "sleep 30", "timeout": 60}, "cvmfs": null}}')
    start = time.monotonic()
    res = run_cli("--config.file", str(cfg), "--site", "BES.TEST.cn", "--dry-run", "--timeout", "4",
                  timeout=30)
    assert time.monotonic() - start < 8
    assert 'check="software",reason="timeout"' in res.stdout
    assert 'check="cvmfs",reason="deadline"' in res.stdout
    assert 'dirac_probe_success{check="cvmfs"}' not in res.stdout  # unknown: no success sample


# --- clock ---------------------------------------------------------------------------------------


class _SkewedDate(http.server.BaseHTTPRequestHandler):
    skew = 3600.0

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(time.time() + self.skew, usegmt=True)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_clock_against_pushgateway_and_a_skewed_server(tmp_path, pushgateway):
    r = check("clock", tmp_path, pushgateway_url=pushgateway.url)
    assert (r.status, r.reason) == ("ok", "ok"), r.detail
    srv = http.server.HTTPServer(("127.0.0.1", 0), _SkewedDate)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        r = check("clock", tmp_path, reference_url=url)
        assert (r.status, r.reason) == ("failed", "offset") and "-3600" in r.detail.replace("-3599", "-3600")
        assert check("clock", tmp_path, reference_url=url, max_offset_seconds=7200).status == "ok"
    finally:
        srv.shutdown()
        srv.server_close()
    r = check("clock", tmp_path, reference_url=url)  # nothing listens any more
    assert (r.status, r.reason) == ("unknown", "no_reference")
