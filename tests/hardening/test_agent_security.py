"""Security features of the probe agents: target validation against the probe's label rules, credential
files, re-push after a Pushgateway restart, deletion of foreign groups, which jobs the reaper kills.

Gaps found are reported with ``pytest.xfail`` after the assertions that hold, so the rest is still
checked; docs/security.md lists them."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from services_fixtures import read_pushgateway_metrics, tls_material_fixture  # noqa: F401 - fixture

from bes_exporter import services
from probe_pushgateway.push import JOB

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))  # agent_fixtures, fake_dirac_server
pytest.importorskip("DIRAC", reason="DIRAC is not installed (make dirac)")
from agent_fixtures import (  # noqa: E402, F401 - fixtures
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
)

from probe_pushgateway.agent import config as agent_config  # noqa: E402
from probe_pushgateway.agent.agent import AGENT_JOB, Agent  # noqa: E402

SITE_A = "BES.IHEP-PBS.cn"


def groups_of(pgw) -> dict[tuple[str, str, str], dict]:
    return {(g["labels"].get("job"), g["labels"].get("site"), g["labels"].get("ce")): g
            for g in read_pushgateway_metrics(pgw)}


def test_agent_targets_fit_the_probe_label_alphabet(tmp_path):
    """A target the agent accepts must be one the probe accepts and a clean label."""
    pw = tmp_path / "agent.pw"
    pw.write_text("x\n")

    def accepted(site, ces=None) -> bool:
        target = site if ces is None else {"site": site, "ces": ces}
        try:
            agent_config.parse({"targets": [target], "pushgateway": {"url": "http://127.0.0.1:9091"},
                                "state_dir": str(tmp_path)}, "agent.yml")
            return True
        except agent_config.ConfigError as exc:
            assert "\n" not in str(exc)
            return False

    assert accepted(SITE_A, ["ce01.ihep.ac.cn"])
    for bad in ("../etc", "BES/IHEP.cn", "BES IHEP.cn", ".", "..", "BES"):
        assert not accepted(bad)
    gaps = []
    if accepted("a" * 200 + ".cn"):
        gaps.append("a 203-character site is accepted; bes-probe allows 128 (Jobs.Site is VARCHAR(100))")
    if accepted("BES.IHEP-PBS.cn\n"):
        gaps.append("a site with a trailing newline is accepted (re '$' matches before '\\n'; use fullmatch)")
    if accepted(SITE_A, ["ce01.ihep.ac.cn:8443"]):
        gaps.append("CE 'host:port' is accepted, but bes-probe refuses ':' in --ce (exit 3 on the node)")
    if accepted(SITE_A, ["c" * 200]):
        gaps.append("a 200-character CE is accepted; bes-probe allows 128")
    if gaps:
        pytest.xfail("agents' target validation: " + "; ".join(gaps))


def test_agent_credential_files(tmp_path, caplog):
    base = {"targets": [SITE_A], "state_dir": str(tmp_path / "state")}
    pw = tmp_path / "agent.pw"

    def parse(mode: int, text: str = "s3cret\n"):
        pw.write_text(text)
        os.chmod(pw, mode)
        return agent_config.parse({**base, "pushgateway": {"url": "https://pgw.example.org:9091",
                                                          "username": "agent", "password_file": str(pw)}}, "a.yml")

    with caplog.at_level(logging.WARNING, logger="bes_probe_agent"):
        assert parse(0o600).push_password == "s3cret"
        assert "readable by group/others" not in caplog.text
        parse(0o644)
        assert "readable by group/others; chmod 600" in caplog.text
        assert "s3cret" not in caplog.text
    gaps = []
    try:
        empty = parse(0o600, "\n").push_password
        gaps.append(f"an empty password file is accepted (password {empty!r} sent)")
    except agent_config.ConfigError:
        pass
    try:
        agent_config.parse({**base, "pushgateway": {"url": "http://pgw.example.org:9091", "username": "agent",
                                                    "password_file": str(pw)}}, "a.yml")
        if not any("plain http" in r.getMessage() or "not encrypted" in r.getMessage() for r in caplog.records):
            gaps.append("a password for a plain-http Pushgateway URL is accepted without a warning")
    except agent_config.ConfigError:
        pass
    if "ca_file" in agent_config.SCHEMA["pushgateway"] and "client_cert" not in agent_config.SCHEMA["pushgateway"]:
        gaps.append("no client certificate for a Pushgateway requiring mutual TLS")
    if "ssl" not in agent_config.SCHEMA["database"]:
        gaps.append("no database.ssl: JobDB is read without TLS")
    if gaps:
        pytest.xfail("agents' credentials: " + "; ".join(gaps))


def test_agents_repush_after_pushgateway_restart_and_delete_foreign_groups_fake_dirac_server(
        fake_dirac_server, dirac, dirac_cfg, fake_pyz, tmp_path):
    pgw = services.start_pushgateway(tmp_path / "pgw", persist=False)
    try:
        targets = ["BES.WHU.cn", {"site": SITE_A, "ces": ["ce01.ihep.ac.cn"]}]
        keys = {("BES.WHU.cn", "none"), (SITE_A, "ce01.ihep.ac.cn")}
        cfg = make_config(tmp_path, targets=targets, pushgateway_url=pgw.url, pyz=fake_pyz,
                          database=db_section(dirac),
                          backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
        agent = Agent(cfg)
        assert agent.submit_cycle().submitted == 2
        assert agent.reap_cycle().ok
        before = {(s, c): g for (j, s, c), g in groups_of(pgw).items() if j == AGENT_JOB}
        assert set(before) == keys
        assert all("dirac_probe_submitted_timestamp_seconds" in g for g in before.values())

        pgw.restart()  # no persistence: every group is gone
        assert groups_of(pgw) == {}
        reg = CollectorRegistry()  # a hostile node pushes for a site no agent sent it to
        Gauge("dirac_probe_success", "x", ["check"], registry=reg).labels("all").set(0)
        push_to_gateway(pgw.address, job=JOB, registry=reg, grouping_key={"site": "EVIL.example.org", "ce": "none"})

        stats = agent.reap_cycle()
        assert stats.ok, stats.failures
        after = groups_of(pgw)
        assert {(s, c) for (j, s, c) in after if j == AGENT_JOB} == keys  # the state set is back
        for key in keys:
            group = after[(AGENT_JOB, *key)]
            assert sum(float(m["value"]) for m in group["dirac_probe_status"]["metrics"]) == 1.0
        assert not [k for k in after if k[1] == "EVIL.example.org"]  # foreign group deleted
        agent.submit_cycle()  # not due: nothing submitted
        missing = [k for k in keys if "dirac_probe_submitted_timestamp_seconds" not in after[(AGENT_JOB, *k)]
                   and "dirac_probe_submitted_timestamp_seconds" not in groups_of(pgw)[(AGENT_JOB, *k)]]
        if missing:
            pytest.xfail(f"after a Pushgateway restart the agents do not re-push dirac_probe_submitted_timestamp_"
                         f"seconds of {sorted(missing)} (only at the next submission, up to probe.period later)")
    finally:
        pgw.stop()


def test_reaper_kills_only_its_own_probe_jobs_fake_dirac_server(fake_dirac_server, dirac, dirac_cfg, tmp_path):
    """A job of another user that merely carries the probe's JobGroup and name must not be killed."""
    import datetime as dt

    from bes_exporter.simulate.writer import utcnow

    pgw = services.start_pushgateway(tmp_path / "pgw", persist=False)
    try:
        hours_ago = utcnow() - dt.timedelta(hours=3)
        jid = dirac.writer.submit(site="BES.WHU.cn", job_group="bes_probe", job_name="bes_probe@BES.WHU.cn@none",
                                  owner="someone_else", when=hours_ago)
        dirac.writer.optimize(jid, when=hours_ago)
        cfg = make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url=pgw.url, database=db_section(dirac),
                          backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
        Agent(cfg).reap_cycle()
        status = dirac.query(f"SELECT Status FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s", (jid,))[0][0]
        if status != "Waiting":
            pytest.xfail(f"the reaper killed another user's job ({status}): it selects probe jobs by JobGroup only,"
                         " not by Owner/OwnerGroup, and trusts the JobName for the target")
    finally:
        pgw.stop()


def test_agent_pushes_with_its_own_user_over_https_fake_dirac_server(fake_dirac_server, dirac, dirac_cfg,
                                                                      tls_material, tmp_path):
    """The agents' role has its own Pushgateway user: right password → groups pushed over verified TLS;
    the probes' password for the agent user → every push refused, counted, one line, no secret logged."""
    from services_fixtures import write_web_config

    users = {"agent": "agent-pw-1", "probe-BES.WHU.cn": "probe-pw-2"}
    web = write_web_config(tmp_path / "web.json", tls=tls_material, users=users)
    pgw = services.start_pushgateway(tmp_path / "pgw", web_config=web, persist=False, auth=("agent", users["agent"]))
    try:
        def agent(password: str) -> Agent:
            pw = tmp_path / f"{password}.pw"
            pw.write_text(password + "\n")
            os.chmod(pw, 0o600)
            cfg = make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url=pgw.url, database=db_section(dirac),
                              backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]},
                              pushgateway={"username": "agent", "password_file": str(pw),
                                           "ca_file": str(tls_material.ca)})
            return Agent(cfg)

        assert agent(users["agent"]).reap_cycle().ok
        groups = read_pushgateway_metrics(pgw, ca=tls_material.ca, auth=("agent", users["agent"]))
        assert {(g["labels"]["job"], g["labels"]["site"]) for g in groups} == {(AGENT_JOB, "BES.WHU.cn")}
        stats = agent(users["probe-BES.WHU.cn"]).reap_cycle()
        assert stats.failures["pushgateway"] >= 1 and not stats.ok
    finally:
        pgw.stop()
