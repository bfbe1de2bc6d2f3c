"""The probe pushes to a real Pushgateway (plain, HTTPS + basic auth, mutual TLS) and fails clearly."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_helpers import make_proxy, probe_group, read_pushgateway_metrics, run_cli, samples
from prometheus_client.parser import text_string_to_metric_families
from services_fixtures import write_web_config

from bes_demo import services
from probe_pushgateway import cli
from probe_pushgateway.config import LABEL_MAX, sanitize_label, valid_label
from probe_pushgateway.push import JOB

SITE = "BES.IHEP-PBS.cn"


@pytest.fixture
def healthy(tmp_path, monkeypatch) -> Path:
    """A config whose six checks all pass on this machine (real repo dir, command, valid proxy)."""
    repo = tmp_path / "cvmfs" / "boss.example.org"
    repo.mkdir(parents=True)
    (repo / "setup.sh").write_text("export BOSS=1\n")
    proxy = make_proxy(tmp_path / "x509up", dt.timedelta(hours=12))
    monkeypatch.setenv("X509_USER_PROXY", str(proxy))
    monkeypatch.setenv("DIRACJOBID", "4242")
    cfg = {"checks": {
        "environment": {"min_free_workdir_mb": 1, "min_free_tmp_mb": 1, "min_memory_mb": 1},
        "cvmfs": {"repositories": [str(repo)]},
        "software": {"command": f". {repo}/setup.sh && echo BOSS=$BOSS", "expect": "BOSS=1", "timeout": 10},
        "tcp": None, "proxy": None, "clock": None}}
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(cfg))
    return path


def run_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.run(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_push_plain_then_put_replaces_and_keeps_last_success(pushgateway, healthy, tmp_path, capsys):
    code, out, err = run_in_process(capsys, "--config.file", str(healthy), "--site", SITE,
                                    "--pushgateway", pushgateway.url)
    assert code == 0, err
    assert out == ""
    group = probe_group(read_pushgateway_metrics(pushgateway), SITE)
    assert group["labels"] == {"job": JOB, "site": SITE, "ce": "none"}
    success = samples(group, "dirac_probe_success")
    assert success == {frozenset({("check", c)}): 1.0
                       for c in ("environment", "cvmfs", "software", "tcp", "proxy", "clock", "all")}
    assert all(v == 1.0 and dict(k)["reason"] == "ok" for k, v in samples(group, "dirac_probe_check_info").items())
    assert len(samples(group, "dirac_probe_duration_seconds")) == 7
    info = samples(group, "dirac_probe_info")
    assert info == {frozenset({("host", sanitize_label(__import__("socket").gethostname()))}): 1.0}
    assert samples(group, "dirac_probe_job_id") == {frozenset(): 4242.0}
    last_run = samples(group, "dirac_probe_last_run_timestamp_seconds")[frozenset()]
    assert abs(last_run - time.time()) < 30
    assert samples(group, "dirac_probe_last_success_timestamp_seconds")[frozenset()] == last_run
    assert "push_time_seconds" in group

    # Second run for the same site (another DIRAC job): a failing CVMFS and fewer checks. PUT replaces the
    # whole group, the last success is carried forward; the job ID is a value, so no new series.
    cfg = tmp_path / "fail.json"
    cfg.write_text(json.dumps({"checks": {"cvmfs": {"repositories": [str(tmp_path / "nope")]}, "clock": None}}))
    time.sleep(0.01)
    code, out, err = run_in_process(capsys, "--config.file", str(cfg), "--site", SITE,
                                    "--pushgateway", pushgateway.url, "--job-id", "4243")
    assert code == 1, err
    group = probe_group(read_pushgateway_metrics(pushgateway), SITE)
    assert samples(group, "dirac_probe_info") == info
    assert samples(group, "dirac_probe_job_id") == {frozenset(): 4243.0}
    assert samples(group, "dirac_probe_success") == {frozenset({("check", "cvmfs")}): 0.0,
                                                     frozenset({("check", "clock")}): 1.0,
                                                     frozenset({("check", "all")}): 0.0}
    assert samples(group, "dirac_probe_check_info")[frozenset({("check", "cvmfs"),
                                                               ("reason", "not_mounted")})] == 1.0
    assert samples(group, "dirac_probe_last_run_timestamp_seconds")[frozenset()] > last_run
    assert samples(group, "dirac_probe_last_success_timestamp_seconds")[frozenset()] == last_run

    # Another CE of the same site is a separate group.
    code, _, err = run_in_process(capsys, "--config.file", str(healthy), "--site", SITE, "--ce",
                                  "ce01.ihep.ac.cn", "--pushgateway", pushgateway.address)
    assert code == 0, err
    groups = read_pushgateway_metrics(pushgateway)
    assert probe_group(groups, SITE, "ce01.ihep.ac.cn") and len(groups) == 2


def test_https_basic_auth_ok_and_wrong_password(secure_pushgateway, healthy, tmp_path, capsys):
    pgw = secure_pushgateway
    base = ["--config.file", str(healthy), "--site", SITE, "--pushgateway", pgw.url,
            "--ca-file", str(pgw.tls.ca), "--push-user", pgw.user]
    code, out, err = run_in_process(capsys, *base, "--password-file", str(pgw.password_file))
    assert code == 0, err
    assert pgw.password not in err + out
    groups = read_pushgateway_metrics(pgw.daemon, ca=pgw.tls.ca, auth=(pgw.user, pgw.password))
    assert samples(probe_group(groups, SITE), "dirac_probe_success")[frozenset({("check", "all")})] == 1.0

    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o644)  # also: a readable secret is warned about
    code, out, err = run_in_process(capsys, *base, "--password-file", str(wrong))
    assert code == 2
    assert "refused the credentials (HTTP 401)" in err and "after 1 attempt)" in err
    assert "readable by group/others" in err
    assert "not-the-password" not in err + out
    assert out.startswith(cli.BEGIN_MARK) and out.rstrip().endswith(cli.END_MARK)

    # Without our CA the server certificate is not trusted: a clear TLS message, no retries.
    code, out, err = run_in_process(capsys, "--config.file", str(healthy), "--site", SITE, "--pushgateway",
                                    pgw.url, "--push-user", pgw.user, "--password-file",
                                    str(pgw.password_file))
    assert code == 2 and "TLS verification" in err and "--ca-file" in err


def test_mutual_tls_client_certificate(tmp_path, tls_material, healthy, capsys):
    web = write_web_config(tmp_path / "web.json", tls=tls_material, client_auth=True)
    cfg = json.loads(healthy.read_text())
    cfg["pushgateway"] = {"retries": 1, "backoff": 0.1}
    healthy.write_text(json.dumps(cfg))
    client = (str(tls_material.client_cert), str(tls_material.client_key))
    with services.start_pushgateway(tmp_path / "pgw", web_config=web, client_cert=client) as pgw:
        base = ["--config.file", str(healthy), "--site", SITE, "--pushgateway", pgw.url,
                "--ca-file", str(tls_material.ca)]
        code, _, err = run_in_process(capsys, *base, "--client-cert", client[0], "--client-key", client[1])
        assert code == 0, err
        groups = read_pushgateway_metrics(pgw, ca=tls_material.ca, client_cert=client)
        assert samples(probe_group(groups, SITE), "dirac_probe_success")[frozenset({("check", "all")})] == 1
        code, _, err = run_in_process(capsys, *base)
        # TLS 1.3 reports a refused client certificate after the handshake: either as an alert or
        # as the server closing the connection; both messages point at --client-cert.
        assert code == 2 and "--client-cert" in err, err


def test_pushgateway_down_retries_then_prints_result(healthy, tmp_path):
    port = services.free_port()
    cfg = json.loads(healthy.read_text())
    cfg["pushgateway"] = {"retries": 2, "backoff": 0.2, "timeout": 2}
    del cfg["checks"]["clock"], cfg["checks"]["tcp"]
    path = tmp_path / "down.json"
    path.write_text(json.dumps(cfg))
    start = time.monotonic()
    res = run_cli("--config.file", str(path), "--site", SITE, "--pushgateway", f"http://127.0.0.1:{port}",
                  env={"X509_USER_PROXY": str(tmp_path / "x509up")})
    assert time.monotonic() - start < 10
    assert res.code == 2, res.stderr
    assert res.stderr.count("retrying in") == 2 and "after 3 attempts" in res.stderr
    body = res.stdout.split(cli.BEGIN_MARK, 1)[1].split(cli.END_MARK, 1)[0]
    assert "site=BES.IHEP-PBS.cn ce=none exit=2" in res.stdout.splitlines()[0]
    families = {f.name: f for f in text_string_to_metric_families(body.split("\n", 1)[1])}
    all_ok = [s for s in families["dirac_probe_success"].samples if s.labels["check"] == "all"]
    assert all_ok[0].value == 1.0


HOSTILE = [
    (["--site", "../../metrics/job/x"], "--site"),
    (["--site", "BES/IHEP"], "--site"),
    (["--site", ".."], "--site"),
    (["--site", ""], "--site"),
    (["--site", "B" * (LABEL_MAX + 1)], "--site"),
    (["--site", "BES IHEP"], "--site"),
    (["--site", "BES.IHEP\n"], "--site"),
    (["--site", SITE, "--ce", "."], "--ce"),
    (["--site", SITE, "--ce", "ce%2F01"], "--ce"),
    (["--site", SITE, "--timeout", "0"], "--timeout"),
    (["--site", SITE, "--timeout", "soon"], "--timeout"),
    (["--site", SITE, "--frobnicate"], "unrecognized"),
    ([], "--site: required"),
    (["--site", SITE, "--pushgateway", "http://127.0.0.1:1", "--push-user", "x"], "--password-file"),
    (["--site", SITE, "--pushgateway", "http://127.0.0.1:1", "--push-user", "x", "--password-file",
      "/nonexistent"], "--password-file"),
    (["--site", SITE, "--pushgateway", "http://127.0.0.1:1", "--ca-file", "/nonexistent"], "--ca-file"),
    (["--site", SITE], "--pushgateway: required"),
    (["--site", SITE, "--pushgateway", "https://prober:secret@pgw.example.org:9091"], "no credentials in the URL"),
    (["--site", SITE, "--config.file", "/nonexistent.yml", "--dry-run"], "--config.file"),
]


@pytest.mark.parametrize("argv,names", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_or_bad_input_exits_3_with_one_line(argv, names, capsys):
    code, out, err = run_in_process(capsys, *argv)
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("bes-probe: error: ") and names in err


CONFIGS = [
    ("checks: {nope: {}}", "unknown check"),
    ("checks: {tcp: {targets: [no-port]}}", "checks.tcp.targets"),
    ("checks: {tcp: {tagets: []}}", "unknown option 'tagets'"),
    ("checks: {software: {timeout: soon}}", "checks.software.timeout"),
    ("checks: {software: {expect: '(['}}", "checks.software.expect"),
    ("checks: {cvmfs: {repositories: /cvmfs/x}}", "checks.cvmfs.repositories"),
    ("sites: [x]", "unknown key 'sites'"),
    ("- just\n- a list", "mapping at top level"),
    ("checks: [unclosed", "not valid YAML"),
    ("pushgateway: {url: http://x:1, pasword_file: y}", "unknown option 'pasword_file'"),
    ("pushgateway: {url: http://x:1, ca_file: 3}", "pushgateway.ca_file"),
    ("site: ../x", "--site"),
    ("allowed_sites: [BES.USTC.cn]", "not among the allowed sites"),
]


@pytest.mark.parametrize("text,names", CONFIGS, ids=range(len(CONFIGS)))
def test_bad_config_exits_3_with_one_line(text, names, tmp_path, capsys):
    path = tmp_path / "probe.yml"
    path.write_text(text + "\n")
    dry = [] if text.startswith("pushgateway:") else ["--dry-run"]
    argv = ["--config.file", str(path)] + dry + ([] if text.startswith("site:") else ["--site", SITE])
    code, out, err = run_in_process(capsys, *argv)
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and names in err, err


def test_allowed_sites_file_and_config(tmp_path, capsys):
    allowed = tmp_path / "sites.txt"
    allowed.write_text("# site [CEs]\nBES.IHEP-PBS.cn ce01.ihep.ac.cn ce02.ihep.ac.cn\nBES.USTC.cn\n")
    cfg = tmp_path / "c.json"
    cfg.write_text('{"checks": ["environment"]}')
    base = ["--config.file", str(cfg), "--dry-run", "--allowed-sites", str(allowed)]
    assert run_in_process(capsys, *base, "--site", "BES.USTC.cn", "--ce", "any.ce")[0] in (0, 1)
    assert run_in_process(capsys, *base, "--site", SITE, "--ce", "ce02.ihep.ac.cn")[0] in (0, 1)
    code, _, err = run_in_process(capsys, *base, "--site", "BES.WHU.cn")
    assert code == 3 and "not among the allowed sites" in err
    code, _, err = run_in_process(capsys, *base, "--site", SITE, "--ce", "ce09.ihep.ac.cn")
    assert code == 3 and "--ce" in err
    cfg.write_text('{"checks": ["environment"], "allowed_sites": {"BES.USTC.cn": ["ce1.ustc.edu.cn"]}}')
    code, _, err = run_in_process(capsys, "--config.file", str(cfg), "--dry-run", "--site", "BES.USTC.cn")
    assert code == 3 and "--ce" in err


def test_cli_error_is_one_line_without_traceback():
    res = run_cli("--site", "../evil", "--dry-run")
    assert res.code == 3 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_label_rules_hold_for_any_input(value):
    cleaned = sanitize_label(value)
    assert valid_label(cleaned)
    if valid_label(value):
        assert len(value) <= LABEL_MAX and "/" not in value and value.strip(".")
        from prometheus_client.exposition import _escape_grouping_key

        key, escaped = _escape_grouping_key("site", value)
        assert key == "site" and escaped == value  # goes into the URL path verbatim: one segment


@pytest.mark.parametrize(("job_id", "pushed"), [("4242", 4242.0), (str(2 ** 53 - 1), float(2 ** 53 - 1)),
                                               (str(2 ** 53), None), ("12; rm", None), ("", None)])
def test_job_id_is_an_exact_gauge_value_or_left_out(job_id, pushed, capsys):
    """dirac_probe_job_id carries the DIRAC job ID as its value (a label would make a series per run); an ID a
    float64 cannot hold exactly, or not a number, is left out rather than pushed wrong."""
    code, out, err = run_in_process(capsys, "--site", SITE, "--dry-run", "--job-id", job_id, "--timeout", "20")
    assert code in (0, 1), err
    fams = {f.name: f for f in text_string_to_metric_families(out)}
    assert [s.labels for s in fams["dirac_probe_info"].samples] == [{"host": sanitize_label(
        __import__("socket").gethostname())}]
    got = fams["dirac_probe_job_id"].samples[0].value if "dirac_probe_job_id" in fams else None
    assert got == pushed
