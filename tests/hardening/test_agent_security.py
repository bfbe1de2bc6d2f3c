"""Security features of the probe agents: target validation against the probe's label rules, credential
files, client certificates for the Pushgateway, TLS to JobDB, re-push after a Pushgateway restart,
deletion of foreign groups, which jobs the reaper kills (only its own)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from services_fixtures import read_pushgateway_metrics, tls_material_fixture  # noqa: F401 - fixture

from bes_demo import services
from probe_pushgateway.push import JOB

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))  # agent_fixtures, fake_dirac_server
pytest.importorskip("DIRAC", reason="DIRAC is not installed (make dirac)")
import test_agent_local  # noqa: E402
import test_database_security  # noqa: E402
from agent_fixtures import (  # noqa: E402, F401 - fixtures
    OWN_PROBE,
    OWNER,
    OWNER_GROUP,
    db_section,
    dirac_cfg_fixture,
    fake_dirac_server_fixture,
    fake_pyz_fixture,
    make_config,
    probe_job,
)
from hardening_util import make_pki  # noqa: E402

from probe_pushgateway.agent import config as agent_config  # noqa: E402
from probe_pushgateway.agent.agent import AGENT_JOB, Agent  # noqa: E402
from probe_pushgateway.agent.diracjob import build_probe_job, probe_push  # noqa: E402
from probe_pushgateway.agent.targets import Target  # noqa: E402

SITE_A = "BES.IHEP-PBS.cn"
tls_mariadb = test_database_security.tls_mariadb  # fixture: a private MariaDB serving TLS with its own CA
probe_pyz = test_agent_local.probe_pyz  # fixture: bes-probe.pyz built by the project's builder


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
    assert not accepted("a" * 200 + ".cn")  # bes-probe allows 128 (Jobs.Site is VARCHAR(100))
    assert not accepted("BES.IHEP-PBS.cn\n")  # fullmatch: '$' would match before the newline
    assert not accepted(SITE_A, ["ce01.ihep.ac.cn:8443"])  # bes-probe refuses ':' in --ce
    assert not accepted(SITE_A, ["c" * 200])


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
    with pytest.raises(agent_config.ConfigError, match="is empty; put the secret in it"):
        parse(0o600, "\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bes_probe_agent"):
        pw.write_text("s3cret\n")
        agent_config.parse({**base, "pushgateway": {"url": "http://pgw.example.org:9091", "username": "agent",
                                                    "password_file": str(pw)}}, "a.yml")
    assert "'pushgateway.url' is plain http" in caplog.text and "s3cret" not in caplog.text


def test_agent_pushgateway_mutual_tls(dirac_cfg, tls_material, tmp_path):
    """A Pushgateway requiring client certificates: the agent presents ``pushgateway.client_cert``/``client_key``
    (loaded as the probe loads its own); without them every push is refused and counted, one line."""
    from services_fixtures import write_web_config

    web = write_web_config(tmp_path / "web.json", tls=tls_material, client_auth=True)
    client = (str(tls_material.client_cert), str(tls_material.client_key))
    pgw = services.start_pushgateway(tmp_path / "pgw", web_config=web, persist=False, client_cert=client)
    try:
        def agent(**tls: str) -> Agent:
            return Agent(make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url=pgw.url,
                                     backend={"type": "dirac", "require_auth": False,
                                              "config_files": [str(dirac_cfg)]},
                                     pushgateway={"ca_file": str(tls_material.ca), **tls}))

        stats = agent(client_cert=client[0], client_key=client[1]).reap_cycle()
        assert stats.ok and stats.pushed == 1, stats.failures
        groups = read_pushgateway_metrics(pgw, ca=tls_material.ca, client_cert=client)
        assert {(g["labels"]["job"], g["labels"]["site"]) for g in groups} == {(AGENT_JOB, "BES.WHU.cn")}
        refused = agent().reap_cycle()
        assert refused.failures["pushgateway"] >= 1 and refused.pushed == 0
    finally:
        pgw.stop()


def test_agent_reads_jobdb_over_verified_tls(tls_mariadb, tmp_path):
    """``database.ssl`` (the exporter's keys and code): a REQUIRE SSL account is served only over TLS, an
    impostor's CA fails verification, a REQUIRE X509 account needs the client certificate."""
    from probe_pushgateway.agent.jobdb import JobDBError

    db, inst, accounts, files = tls_mariadb
    other = make_pki(tmp_path / "other")

    def jobdb(account, **ssl: Path):
        cfg = make_config(tmp_path, targets=["BES.WHU.cn"], pushgateway_url="http://127.0.0.1:9",
                          database={"host": "127.0.0.1", "port": db.port, "user": account.user,
                                    "password": account.password, "jobdb": inst.dbs.jobdb, "connect_timeout": 3,
                                    "ssl": {k: str(v) for k, v in ssl.items()}})
        return Agent(cfg).jobdb

    tls_user, x509_user = accounts["REQUIRE SSL"], accounts["REQUIRE X509"]
    ok = jobdb(tls_user, ca=files["ca"])
    assert ok.probe_jobs("bes_probe") == []
    assert ok.query("SHOW SESSION STATUS LIKE 'Ssl_version'")[0][1] in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(JobDBError, match="Access denied.*set database.ssl") as plain:
        jobdb(tls_user).probe_jobs("bes_probe")
    assert tls_user.password not in str(plain.value) and "\n" not in str(plain.value)
    with pytest.raises(JobDBError, match="(?i)certificate verify failed"):
        jobdb(tls_user, ca=other["ca"]).probe_jobs("bes_probe")
    assert jobdb(x509_user, ca=files["ca"], cert=files["client_cert"], key=files["client_key"]).probe_jobs(
        "bes_probe") == []
    with pytest.raises(JobDBError, match="Access denied"):
        jobdb(x509_user, ca=files["ca"]).probe_jobs("bes_probe")


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
        # the submission times are back, from the state file, without waiting for the next submission
        submitted = agent.state.read()["submitted"]
        for key in keys:
            family = after[(AGENT_JOB, *key)]["dirac_probe_submitted_timestamp_seconds"]
            assert float(family["metrics"][0]["value"]) == submitted["|".join(key)]
            assert float(family["metrics"][0]["value"]) == \
                float(before[key]["dirac_probe_submitted_timestamp_seconds"]["metrics"][0]["value"])
        assert agent.submit_cycle().submitted == 0  # not due: nothing submitted
        assert agent.reap_cycle().ok
        assert set(groups_of(pgw)) == set(after)  # nothing lost or added
    finally:
        pgw.stop()


def test_reaper_kills_only_its_own_probe_jobs_fake_dirac_server(fake_dirac_server, dirac, dirac_cfg, fake_pyz,
                                                                tmp_path):
    """Jobs of another user that merely carry the probe's JobGroup and JobName are never killed, classified
    or counted as pending: the agents act on the jobs they recorded and on jobs of their own DIRAC identity
    (``probe.owner``/``owner_group``, else learnt from a job they submitted)."""
    import datetime as dt

    from bes_simulator.writer import utcnow

    def status(jid: int) -> str:
        return dirac.query(f"SELECT Status FROM `{dirac.dbs.jobdb}`.Jobs WHERE JobID=%s", (jid,))[0][0]

    def config(name: str, **probe) -> agent_config.Config:
        (tmp_path / name).mkdir()
        return make_config(tmp_path / name, targets=["BES.WHU.cn", "BES.USTC.cn"], pushgateway_url=pgw.url,
                           pyz=fake_pyz, database=db_section(dirac), probe=probe,
                           backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})

    pgw = services.start_pushgateway(tmp_path / "pgw", persist=False)
    try:
        hours_ago = utcnow() - dt.timedelta(hours=3)
        whu, ustc = Target("BES.WHU.cn"), Target("BES.USTC.cn")
        foreign = [probe_job(dirac, t, when=hours_ago, owner="someone_else") for t in (whu, ustc)]
        # Identity unknown (nothing configured, nothing submitted yet): foreign jobs are left alone.
        fresh = Agent(config("fresh"))
        stats = fresh.reap_cycle()
        assert stats.ok and stats.reaped == 0
        assert [status(j) for j in foreign] == ["Waiting", "Waiting"]
        states = {(s, c): g for (j, s, c), g in groups_of(pgw).items() if j == AGENT_JOB}
        for key in (whu.key, ustc.key):  # not classified "bad" on the strength of someone else's job
            on = [m["labels"]["status"] for m in states[key]["dirac_probe_status"]["metrics"] if float(m["value"])]
            assert on == ["unknown"]
        # ... and do not hold back the agents' own submission to their targets.
        assert fresh.submit_cycle().submitted == 2

        # Configured identity: its own stuck job (not in the state file) is killed, foreign ones stay.
        own = probe_job(dirac, whu, when=hours_ago)
        configured = Agent(config("configured", **OWN_PROBE))
        assert configured.reap_cycle().reaped == 1
        assert status(own) == "Deleted" and [status(j) for j in foreign] == ["Waiting", "Waiting"]

        # Learnt identity: the agent that submitted learns it from its recorded job in JobDB.
        assert fresh.reap_cycle().ok
        assert fresh.state.read()["identity"] == {"owner": OWNER, "owner_group": OWNER_GROUP}
        lost = probe_job(dirac, ustc, when=hours_ago)  # its own, but not recorded (e.g. a lost state write)
        assert fresh.reap_cycle().reaped == 1
        assert status(lost) == "Deleted" and [status(j) for j in foreign] == ["Waiting", "Waiting"]
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


def test_per_site_probe_credentials_shipped_with_the_probe_job(dirac_cfg, probe_pyz, tls_material, tmp_path, capsys,
                                                               caplog):
    """``pushgateway.probe_user``/``probe_password_file`` with ``{site}``: each probe job carries only its own
    site's password file (input sandbox) and pushes with it, here the real bes-probe.pyz run by DIRAC's job
    wrapper (local back-end) to an HTTPS Pushgateway with one user per site."""
    from services_fixtures import write_web_config

    site = "GRID.LOCAL.cn"
    users = {"agent": "agent-pw-1", f"probe-{site}": "local-pw-2", "probe-BES.WHU.cn": "whu-pw-3"}
    creds = tmp_path / "creds"
    creds.mkdir()
    for user, password in users.items():
        (creds / f"{user}.pw").write_text(password + "\n")
        os.chmod(creds / f"{user}.pw", 0o600)
    web = write_web_config(tmp_path / "web.json", tls=tls_material, users=users)
    pgw = services.start_pushgateway(tmp_path / "pgw", web_config=web, persist=False, auth=("agent", users["agent"]))
    probe_conf = tmp_path / "probe.yml"
    probe_conf.write_text("checks: [environment, tcp, clock]\n")

    def config(name: str, password_file: str) -> agent_config.Config:
        (tmp_path / name).mkdir()
        return make_config(tmp_path / name, targets=[{"site": site, "ces": ["ce.local.test"]}],
                           pushgateway_url=pgw.url, pyz=probe_pyz, backend={"type": "local"},
                           probe={"config": str(probe_conf), "args": ["--timeout", "60"]},
                           pushgateway={"username": "agent", "password_file": str(creds / "agent.pw"),
                                        "ca_file": str(tls_material.ca), "probe_user": "probe-{site}",
                                        "probe_password_file": password_file, "probe_ca_file": str(tls_material.ca)})
    try:
        # The JDL names the files, never the password; a missing file of one target is one line.
        dry = Agent(config("dry", str(creds / "probe-{site}.pw")))
        assert dry.submit_cycle(dry_run=True).ok
        jdl = capsys.readouterr().out
        assert f"{creds}/probe-{site}.pw" in jdl and str(creds / "probe-BES.WHU.cn.pw") not in jdl
        target = dry.cfg.targets[0]
        xml = build_probe_job(target, dry.cfg.probe, pgw.url, probe_push(dry.cfg.pushgateway, target))._toXML()
        assert f"--push-user probe-{site} --password-file probe-{site}.pw --ca-file ca.pem" in xml
        assert not [p for p in users.values() if p in jdl + xml]
        missing = Agent(config("missing", str(creds / "nobody-{site}.pw"))).submit_cycle(dry_run=True)
        assert missing.failures == {"config": 1}
        assert f"'pushgateway.probe_password_file' {creds}/nobody-{site}.pw (for {site}/ce.local.test)" in caplog.text

        agent = Agent(config("run", str(creds / "probe-{site}.pw")))
        assert agent.submit_cycle().submitted == 1
        workdir = tmp_path / "run" / "state" / "local" / "job_1"
        deadline = time.monotonic() + 90
        group = None
        while group is None and time.monotonic() < deadline:
            time.sleep(0.25)
            group = next((g for g in read_pushgateway_metrics(pgw, ca=tls_material.ca, auth=("agent", users["agent"]))
                          if g["labels"] == {"job": JOB, "site": site, "ce": "ce.local.test"}), None)
        assert group is not None, (workdir / "run.log").read_text()[-3000:]
        assert [float(m["value"]) for m in group["dirac_probe_success"]["metrics"]
                if m["labels"]["check"] == "all"] == [1.0]
        assert "local-pw-2" not in (workdir / "run.log").read_text()
    finally:
        pgw.stop()


@pytest.mark.parametrize("output", ["as_written", "lost", "other_site", "replayed"])
def test_reaper_harvests_a_result_the_probe_could_not_push(output, dirac_cfg, probe_pyz, tls_material, tmp_path,
                                                           caplog):
    """The probe's push refused (its password file is wrong): bes-probe exits 2 and prints the exposition
    between marker lines; DIRAC's job wrapper (local back-end, the real one) writes it to bes-probe.log, in
    the job's output sandbox. The reaper pushes it for the job's target with its own credentials, marked
    ``dirac_probe_harvested``. A lost log is one line; a result for another site or from before the job is
    refused (the worker node is not trusted); both counted in ``dirac_probe_harvests_total{outcome}``."""
    from services_fixtures import write_web_config

    from probe_pushgateway.agent.diracjob import job_jdl

    site, ce = "GRID.LOCAL.cn", "ce.local.test"
    users = {"agent": "agent-pw-1", f"probe-{site}": "local-pw-2"}
    web = write_web_config(tmp_path / "web.json", tls=tls_material, users=users)
    pgw = services.start_pushgateway(tmp_path / "pgw", web_config=web, persist=False, auth=("agent", users["agent"]))
    for name, password in (("agent.pw", users["agent"]), ("wrong.pw", "not-the-password")):
        (tmp_path / name).write_text(password + "\n")
        os.chmod(tmp_path / name, 0o600)
    probe_conf = tmp_path / "probe.yml"
    probe_conf.write_text("checks: [environment, clock]\npushgateway: {retries: 0}\n")
    cfg = make_config(tmp_path, targets=[{"site": site, "ces": [ce]}], pushgateway_url=pgw.url, pyz=probe_pyz,
                      backend={"type": "local"}, probe={"config": str(probe_conf), "args": ["--timeout", "60"]},
                      pushgateway={"username": "agent", "password_file": str(tmp_path / "agent.pw"),
                                   "ca_file": str(tls_material.ca), "probe_user": "probe-{site}",
                                   "probe_password_file": str(tmp_path / "wrong.pw"),
                                   "probe_ca_file": str(tls_material.ca)})
    try:
        agent = Agent(cfg)
        target = agent.cfg.targets[0]
        jdl = job_jdl(build_probe_job(target, agent.cfg.probe, pgw.url, probe_push(agent.cfg.pushgateway, target)))
        assert "bes-probe.log" in jdl.split("OutputSandbox", 1)[1].split(";", 1)[0]
        assert agent.submit_cycle().submitted == 1
        job_id = agent.state.read()["pending"][f"{site}|{ce}"]["job_id"]
        deadline = time.monotonic() + 90
        while agent.backend([]).status([job_id])[job_id].status not in ("Done", "Failed"):
            assert time.monotonic() < deadline, "the local probe job did not end"
            time.sleep(0.25)
        (log_file,) = (tmp_path / "state" / "local").glob("job_1/Local_*_JobDir/bes-probe.log")
        stdout = log_file.read_text()
        assert "# bes-probe result site=GRID.LOCAL.cn ce=ce.local.test exit=2" in stdout  # what there is to harvest
        if output == "lost":
            log_file.unlink()
        elif output == "other_site":  # a node holding the job rewrites its output for another site
            log_file.write_text(stdout.replace(f"site={site} ", "site=BES.WHU.cn "))
        elif output == "replayed":  # an old result printed again
            old = f"dirac_probe_last_run_timestamp_seconds {time.time() - 86400:.1f}"
            log_file.write_text("\n".join(old if line.startswith("dirac_probe_last_run_timestamp_seconds ") else line
                                          for line in stdout.splitlines()) + "\n")
        with caplog.at_level(logging.INFO, logger="bes_probe_agent"):
            stats = agent.reap_cycle()
        assert stats.ok, stats.failures
        assert "Traceback" not in caplog.text
        groups = {(g["labels"]["job"], g["labels"]["site"], g["labels"]["ce"]): g for g in
                  read_pushgateway_metrics(pgw, ca=tls_material.ca, auth=("agent", users["agent"]))}
        on = [m["labels"]["status"] for m in groups[(AGENT_JOB, site, ce)]["dirac_probe_status"]["metrics"]
              if float(m["value"])]
        harvests = {m["labels"]["outcome"]: float(m["value"])
                    for m in groups[(AGENT_JOB, site, ce)]["dirac_probe_harvests_total"]["metrics"]}
        outcome = {"as_written": "pushed", "lost": "missing"}.get(output, "refused")
        assert harvests == {o: float(o == outcome) for o in ("pushed", "refused", "missing")}
        if output != "as_written":
            assert (JOB, site, ce) not in groups and on == ["failed"]
            assert stats.harvested == 0 and "no result to harvest" in caplog.text if output == "lost" else \
                "harvested result refused" in caplog.text
            return
        probe = groups[(JOB, site, ce)]  # the probe's own group, as the probe would have pushed it
        assert float(probe["dirac_probe_harvested"]["metrics"][0]["value"]) == 1.0
        success = float(next(m["value"] for m in probe["dirac_probe_success"]["metrics"]
                             if m["labels"]["check"] == "all"))
        assert on == ["ok" if success == 1.0 else "failed"] and stats.harvested == 1
        assert probe["dirac_probe_info"]["metrics"][0]["labels"]["host"]
        assert agent.reap_cycle().harvested == 0  # looked at once
    finally:
        pgw.stop()
