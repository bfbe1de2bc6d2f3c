"""The command line: --once, collector flags, the landing page, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
import yaml
from metrics_util import parse_text
from private_mariadb import free_port

from bes_exporter.config import ConfigError, parse


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bes_exporter", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def write(tmp_path, data, name="c.yml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_once_prints_exposition_and_exit_code(dirac, tmp_path):
    dirac.writer.submit()
    done = run("--config.file", write(tmp_path, dirac.config()), "--once")
    assert done.returncode == 0, done.stderr
    s = parse_text(done.stdout)
    assert s.v("dirac_up") == 1 and s.v("dirac_jobs", site="ANY", status="Received") == 1
    cfg = dirac.config(database={"port": free_port(), "connect_timeout": 1})
    down = run("--config.file", write(tmp_path, cfg), "--once")
    assert down.returncode == 1
    assert parse_text(down.stdout).v("dirac_up") == 0
    assert "Traceback" not in down.stderr and len(down.stderr.strip().splitlines()) == 1


def test_collect_flags_from_the_scraper_table(dirac, tmp_path):
    done = run("--config.file", write(tmp_path, dirac.config()), "--once", "--no-collect.heartbeat")
    s = parse_text(done.stdout)
    assert s.get_value("dirac_exporter_collector_success", collector="heartbeat") is None
    assert s.v("dirac_exporter_collector_success", collector="jobs") == 1
    help_text = run("--help").stdout
    for name in ("jobs", "finished", "wait", "heartbeat", "site_status"):
        assert f"--collect.{name}" in help_text


def test_landing_page_and_metrics_over_http(dirac, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bes_exporter", "--config.file", write(tmp_path, dirac.config()),
                             "--web.listen-address", f"127.0.0.1:{port}"], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                proc.poll()
                assert proc.returncode is None
                import time

                time.sleep(0.1)
        assert 'href="/metrics"' in page
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert parse_text(body).v("dirac_up") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


BAD = [
    ({"database": {"hots": "x"}}, "unknown key 'database.hots'"),
    ({"database": {"port": "3306"}}, "'database.port' must be a integer"),
    ({"database": {"port": 70000}}, "'database.port' must be at most 65535"),
    ({"database": {"query_timeout": -1}}, "'database.query_timeout' must not be negative"),
    ({"database": {"jobdb": "Job`DB"}}, "'database.jobdb' must be a database name"),
    ({"vo": "bes' OR 1=1 --"}, "'vo' must be a DIRAC VO name"),
    ({"probes": ["bes_probe"]}, "'probes' must be a mapping"),
    ({"hosts": {"max_per_site": True}}, "'hosts.max_per_site' must be a integer"),
    ({"instance": 3}, "'instance' must be a string"),
    ({"heartbeat": {"buckets": [900, 300]}}, "'heartbeat.buckets' must be a list of increasing positive"),
    ({"heartbeat": {"buckets": "300"}}, "'heartbeat.buckets' must be a list"),
    ({"database": {"password": "s3cret", "password_file": "/x"}}, "set only one of"),
    ({"database": {"password_file": "/nonexistent/pw"}}, "'database.password_file' /nonexistent/pw"),
    ("database: [unclosed\n", "not valid YAML at line"),
]


@pytest.mark.parametrize("data,message", BAD)
def test_bad_config_is_one_line_naming_the_key(tmp_path, data, message):
    done = run("--config.file", write(tmp_path, data), "--once")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert message in lines[0] and "c.yml" in lines[0], lines[0]
    assert "s3cret" not in done.stderr


def test_missing_config_file_and_bad_listen_address(tmp_path):
    done = run("--config.file", str(tmp_path / "nope.yml"))
    assert done.returncode == 2 and "--config.file" in done.stderr and "No such file" in done.stderr
    done = run("--web.listen-address", "localhost")
    assert done.returncode == 2 and "--web.listen-address" in done.stderr


def test_password_sources_and_never_in_errors(tmp_path, monkeypatch):
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    pw.chmod(0o600)
    assert parse({"database": {"password_file": str(pw)}}).password == "from-file"
    monkeypatch.setenv("BES_EXPORTER_DB_PASSWORD", "from-env")
    assert parse({"database": {"password": "in-file"}}).password == "from-env"
    cfg = parse({"database": {"password": "hunter2"}})
    assert "hunter2" not in repr(cfg)
    with pytest.raises(ConfigError) as err:
        parse({"database": {"password": "hunter2", "port": "x"}})
    assert "hunter2" not in str(err.value)


def test_wrong_password_error_does_not_leak_it(dirac, tmp_path):
    cfg = dirac.config(database={"user": "nobody_here", "password": "hunter2"})
    done = run("--config.file", write(tmp_path, cfg), "--once")
    assert done.returncode == 1 and "hunter2" not in done.stderr + done.stdout
    assert "Access denied" in done.stderr
