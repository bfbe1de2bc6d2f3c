"""The agents' configuration: defaults, every validation error as one line, downtimes, the CLI's exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agent_fixtures import ROOT_DIR

from probe_pushgateway.agent.agent import classify, decide
from probe_pushgateway.agent.config import ConfigError, load, parse
from probe_pushgateway.agent.jobdb import SiteActivity
from probe_pushgateway.agent.targets import Target, in_downtime, target_from_job

BASE = {"targets": ["BES.USTC.cn"], "pushgateway": {"url": "http://127.0.0.1:9091"}}


def test_defaults_and_targets(tmp_path):
    cfg = parse({**BASE, "targets": ["BES.USTC.cn", {"site": "BES.IHEP-PBS.cn", "ces": ["ce01.ihep.ac.cn",
                                                                                        "ce02.ihep.ac.cn"]}]})
    assert cfg.targets == [Target("BES.USTC.cn"), Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn"),
                           Target("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn")]
    assert cfg.probe["job_group"] == "bes_probe"
    assert (cfg.probe["period"], cfg.probe["waiting_timeout"], cfg.probe["running_timeout"]) == (3600, 2400, 2400)
    assert cfg.result_max_age == 3600 + 2400 + 2400
    assert cfg.probe["done_window"] == 86400  # BES3's rule: no Done job at the site in the last 24 h
    assert cfg.backend["type"] == "dirac" and cfg.database is None
    assert parse({**BASE, "targets": "all"}).targets is None
    secret = tmp_path / "db.pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o600)
    cfg = parse({**BASE, "database": {"password_file": str(secret), "jobdb": "JobDB_test"}})
    assert cfg.db_password == "hunter2" and "hunter2" not in repr(cfg)


@pytest.mark.parametrize("data, message", [
    ({"pushgateway": {"url": "http://p:9091"}}, "'targets' is required"),
    ({**BASE, "targets": []}, "'targets' is empty"),
    ({**BASE, "targets": "some"}, "must be a list of sites or the word 'all'"),
    ({**BASE, "targets": ["not a site"]}, "'targets[0]' must be a DIRAC site name"),
    ({**BASE, "targets": [{"site": "BES.USTC.cn", "ce": "x"}]}, "unknown key 'targets[0].ce'"),
    ({**BASE, "targets": [{"site": "BES.USTC.cn", "ces": ["bad ce"]}]}, "'targets[0].ces[0]' must be a CE"),
    ({**BASE, "targets": ["BES.USTC.cn", "BES.USTC.cn"]}, "listed twice"),
    ({**BASE, "targets": "all", "backend": {"type": "local"}}, "'targets: all' needs 'backend.type: dirac'"),
    ({**BASE, "probe": {"period": "hourly"}}, "'probe.period' must be an integer or number"),
    ({**BASE, "probe": {"waiting_timeout": 0}}, "'probe.waiting_timeout' must be at least 1"),
    ({**BASE, "probe": {"job_group": "bes probe"}}, "'probe.job_group' must be letters"),
    ({**BASE, "probe": {"colour": "red"}}, "unknown key 'probe.colour'"),
    ({**BASE, "pushgateway": {}}, "'pushgateway.url' is required"),
    ({**BASE, "pushgateway": {"url": "pgw:9091"}}, "'pushgateway.url' must look like http://host:9091"),
    ({**BASE, "pushgateway": {"url": "http://p:9091", "password_file": "/x"}}, "needs 'pushgateway.username'"),
    ({**BASE, "backend": {"type": "condor"}}, "'backend.type' must be 'dirac' or 'local'"),
    ({**BASE, "backend": {"require_auth": "yes"}}, "'backend.require_auth' must be a boolean"),
    ({**BASE, "database": {"password": "a", "password_file": "/b"}}, "set only one of"),
    ({**BASE, "database": {"jobdb": "Job DB"}}, "'database.jobdb' must be a database name"),
    ({**BASE, "database": {"port": 70000}}, "'database.port' must be between 1 and 65535"),
    ({**BASE, "database": {"password_file": "/nonexistent/pw"}}, "'database.password_file' /nonexistent/pw"),
    ({**BASE, "downtimes": [{"site": "BES.USTC.cn", "start": "soon", "end": "later"}]}, "ISO 8601"),
    ({**BASE, "downtimes": [{"site": "BES.USTC.cn", "start": "2026-01-02", "end": "2026-01-01"}]}, "ends before"),
    ({**BASE, "downtimes": [{"site": "BES.USTC.cn", "end": "2026-01-01"}]}, "'downtimes[0].start' is required"),
    ({**BASE, "interval": -5}, "'interval' must not be negative"),
    ([1, 2], "must be a YAML mapping"),
])
def test_bad_config_is_one_clear_line(data, message):
    with pytest.raises(ConfigError) as err:
        parse(data, "agent.yml")
    text = str(err.value)
    assert message in text and text.startswith("agent.yml: ") and "\n" not in text


def test_yaml_syntax_error_and_cli_exit_2(tmp_path):
    bad = tmp_path / "agent.yml"
    bad.write_text("targets: [BES.USTC.cn\npushgateway: {url: x}\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load(bad)
    proc = subprocess.run([sys.executable, "-m", "probe_pushgateway.agent", "--config.file", str(bad), "submit"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT_DIR)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bes-probe-agent: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_downtimes_inline_and_from_a_file_reread_each_cycle(tmp_path):
    dt_file = tmp_path / "downtimes.yml"
    dt_file.write_text("- {site: BES.USTC.cn, start: 2020-01-01T00:00:00Z, end: 2999-01-01T00:00:00Z}\n")
    cfg = parse({**BASE, "downtimes": str(dt_file)})
    usct, ihep = Target("BES.USTC.cn"), Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
    assert in_downtime(usct, cfg.current_downtimes(), 1.8e9)
    dt_file.write_text("- {site: BES.IHEP-PBS.cn, ce: ce01.ihep.ac.cn, start: 2020-01-01, end: 2021-01-01}\n")
    downtimes = cfg.current_downtimes()
    assert not in_downtime(usct, downtimes, 1.8e9)
    assert in_downtime(ihep, downtimes, 1.6e9) and not in_downtime(ihep, downtimes, 1.7e9)
    assert not in_downtime(Target("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn"), downtimes, 1.6e9)
    dt_file.write_text("- {site: BES.USTC.cn}\n")
    with pytest.raises(ConfigError, match="'downtimes\\[0\\].start' is required"):
        cfg.current_downtimes()


def test_job_names_round_trip_and_fall_back_to_the_site():
    t = Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn")
    assert target_from_job(t.job_name, "ANY") == t
    assert target_from_job(Target("BES.USTC.cn").job_name, "BES.USTC.cn") == Target("BES.USTC.cn")
    assert target_from_job("someone else's job", "BES.WHU.cn") == Target("BES.WHU.cn")
    assert target_from_job("someone else's job", "ANY") is None


def test_classification_rule_and_state_decision():
    assert classify("Waiting", SiteActivity(running=0, done=0)) == "bad"
    assert classify("Waiting", SiteActivity(running=3, done=0)) == "busy"
    assert classify("Waiting", SiteActivity(running=0, done=5)) == "unknown"
    for reached in ("Matched", "Running", "Stalled", "Completing"):  # it reached a worker node
        assert classify(reached, SiteActivity(running=0, done=0)) == "unknown"
        assert classify(reached, SiteActivity(running=2, done=0)) == "busy"
    for held in ("Submitting", "Received", "Checking", "Staging", "Scouting", "Rescheduled"):  # never at the site
        assert classify(held, SiteActivity(running=0, done=0)) == "unknown"
        assert classify(held, SiteActivity(running=2, done=0)) == "unknown"
    now = 10_000.0
    assert decide(now, None, None, 600) == "unknown"
    from probe_pushgateway.agent.agent import ProbeResult

    ok = ProbeResult(time=now - 60, success=True)
    assert decide(now, ok, None, 600) == "ok"
    assert decide(now, ok, {"status": "busy", "time": now - 10}, 600) == "busy"  # newer event wins
    assert decide(now, ok, {"status": "busy", "time": now - 100}, 600) == "ok"
    assert decide(now, ProbeResult(time=now - 601, success=True), None, 600) == "unknown"  # stale


HTTPS = "https://pgw.example.org:9091"


@pytest.mark.parametrize("data, message", [
    ({"pushgateway": {"url": HTTPS, "client_key": "KEY"}}, "'pushgateway.client_key' needs 'pushgateway.client_cert'"),
    ({"pushgateway": {"url": "http://p:9091", "client_cert": "CERT"}}, "'pushgateway.client_cert' needs an https://"),
    ({"pushgateway": {"url": HTTPS, "client_cert": "/nonexistent/c.pem"}},
     "'pushgateway.client_cert' '/nonexistent/c.pem': No such file"),
    ({"pushgateway": {"url": HTTPS, "ca_file": "KEY"}}, "'pushgateway' TLS files do not load"),
    ({"pushgateway": {"url": HTTPS, "client_cert": "CERT", "client_key": "CA"}}, "'pushgateway' TLS files do not"),
    ({"database": {"ssl": {"key": "KEY"}}}, "'database.ssl.key' needs 'database.ssl.cert'"),
    ({"database": {"ssl": {"ca": "/nonexistent/ca.pem"}}}, "'database.ssl.ca' '/nonexistent/ca.pem': No such file"),
    ({"database": {"ssl": {"ca": "KEY"}}}, "'database.ssl' files do not load"),
    ({"database": {"ssl": {"crl": "CA"}}}, "unknown key 'database.ssl.crl'"),
    ({"probe": {"owner": "bes probe"}}, "'probe.owner' must be a DIRAC user/group name"),
    ({"probe": {"owner_group": ""}}, "'probe.owner_group' must be a DIRAC user/group name"),
    ({"pushgateway": {"url": HTTPS, "probe_user": "probe-{site}"}}, "'pushgateway.probe_user' needs"),
    ({"pushgateway": {"url": HTTPS, "probe_password_file": "PW"}}, "'pushgateway.probe_password_file' needs"),
    ({"pushgateway": {"url": HTTPS, "probe_user": "probe {site}", "probe_password_file": "PW"}},
     "'pushgateway.probe_user' must be a user name"),
    ({"pushgateway": {"url": HTTPS, "probe_ca_file": "/nonexistent/ca.pem"}}, "'pushgateway.probe_ca_file'"),
    ({"pushgateway": {"url": HTTPS, "probe_ca_file": "CA", "probe_client_cert": "CA"}}, "have the same file name"),
    ({"pushgateway": {"url": HTTPS, "probe_client_key": "KEY"}}, "'pushgateway.probe_client_key' needs"),
])
def test_bad_tls_and_identity_settings_are_one_clear_line(data, message, tmp_path):
    from services_fixtures import make_tls_material

    tls = make_tls_material(tmp_path / "tls")
    pw = tmp_path / "probe.pw"
    pw.write_text("pw\n")
    names = {"KEY": tls.client_key, "CA": tls.ca, "CERT": tls.client_cert, "PW": pw}

    def subst(value):
        if isinstance(value, dict):
            return {k: subst(v) for k, v in value.items()}
        return str(names.get(value, value))

    with pytest.raises(ConfigError) as err:
        parse({**BASE, **subst(data)}, "agent.yml")
    text = str(err.value)
    assert message in text and text.startswith("agent.yml: ") and "\n" not in text, text


def test_tls_settings_accepted(tmp_path):
    from services_fixtures import make_tls_material

    tls = make_tls_material(tmp_path / "tls")
    pw = tmp_path / "probe-{site}.pw"
    cfg = parse({**BASE, "probe": {"owner": "bes_probe", "owner_group": "bes_prod"},
                 "pushgateway": {"url": HTTPS, "ca_file": str(tls.ca), "client_cert": str(tls.client_cert),
                                 "client_key": str(tls.client_key), "probe_user": "probe-{site}",
                                 "probe_password_file": str(pw), "probe_ca_file": str(tls.ca)},
                 "database": {"ssl": {"ca": str(tls.ca), "cert": str(tls.client_cert), "key": str(tls.client_key)}}})
    assert cfg.database["ssl"]["cert"] == str(tls.client_cert) and cfg.probe["owner_group"] == "bes_prod"


def test_the_agents_job_states_are_diracs():
    """HELD, Waiting, Matched, RUNNING and FINAL partition DIRAC's own JOB_STATES (DIRAC 9.1: DIRACCommon)."""
    status = pytest.importorskip("DIRACCommon.WorkloadManagementSystem.Client.JobStatus")
    from probe_pushgateway.agent.backends import FINAL, HELD, QUEUED, RUNNING, WAITING

    assert WAITING == HELD | {QUEUED, "Matched"} and QUEUED == status.WAITING
    groups = [HELD, {QUEUED, "Matched"}, RUNNING, FINAL]
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == len(status.JOB_STATES)
    assert set().union(*groups) == set(status.JOB_STATES)
