"""Security features of the probe on a real Pushgateway: grouping keys (property-based, round trip through
the Pushgateway), the site allow-list, per-site credentials and their limit (the agents: test_agent_security.py)."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from services_fixtures import read_pushgateway_metrics, tls_material_fixture  # noqa: F401 - fixture

from bes_demo import services
from probe_pushgateway import cli as probe_cli
from probe_pushgateway.config import ConfigError as ProbeConfigError
from probe_pushgateway.config import valid_label
from probe_pushgateway.push import JOB, PushTarget, push

SITE_A, SITE_B = "BES.IHEP-PBS.cn", "BES.USTC.cn"
LABEL_RE = r"[A-Za-z0-9._-]{1,128}"


@pytest.fixture(scope="module")
def module_pgw(tmp_path_factory):
    pgw = services.start_pushgateway(tmp_path_factory.mktemp("pgw"), persist=False)
    yield pgw
    pgw.stop()


@pytest.fixture(scope="module")
def no_checks(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe-cfg") / "probe.json"
    path.write_text(json.dumps({"checks": []}))
    return path


def groups_of(pgw, **auth) -> dict[tuple[str, str, str], dict]:
    return {(g["labels"].get("job"), g["labels"].get("site"), g["labels"].get("ce")): g
            for g in read_pushgateway_metrics(pgw, **auth)}


label_text = st.one_of(st.text(max_size=140), st.from_regex(r"\A[A-Za-z0-9._\-/%@ ]{0,140}\Z"),
                       st.sampled_from([".", "..", "...", "a/b", "a%2Fb", "-x", "x\n", "é", "a" * 128, "a" * 129,
                                        "BES.IHEP-PBS.cn", "ce01.ihep.ac.cn:8443"]))


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(site=label_text, ce=label_text)
def test_probe_grouping_key_is_exactly_the_validated_site_and_ce(site, ce, no_checks):
    """Whatever --site/--ce hold, the probe either refuses with one line (exit 3) or uses them
    unchanged as grouping-key values inside the label alphabet."""
    try:
        _, got_site, got_ce, *_ = probe_cli.prepare(["--config.file", str(no_checks), f"--site={site}",
                                                      f"--ce={ce}", "--dry-run"])
    except ProbeConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert (got_site, got_ce) == (site, ce or "none")  # an empty --ce means "no CE targeted"
    for value in (got_site, got_ce):
        assert valid_label(value) and value.strip(".")
        assert re.fullmatch(LABEL_RE, value)


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(site=st.from_regex(r"\A[A-Za-z0-9._-]{1,128}\Z"), ce=st.from_regex(r"\A[A-Za-z0-9._-]{1,40}\Z"))
def test_valid_grouping_keys_land_on_the_pushgateway_as_exactly_that_group(site, ce, module_pgw):
    if not (valid_label(site) and valid_label(ce)):
        return
    reg = CollectorRegistry()
    Gauge("dirac_probe_success", "x", ["check"], registry=reg).labels("all").set(1)
    push(PushTarget(url=module_pgw.url, retries=0, timeout=5), site, ce, reg, time.monotonic() + 10)
    found = [g["labels"] for g in read_pushgateway_metrics(module_pgw)
             if g["labels"].get("job") == JOB and g["labels"].get("site") == site]
    assert {"job": JOB, "site": site, "ce": ce} in found, found
    push_to_gateway(module_pgw.address, job=JOB, registry=CollectorRegistry(),
                    grouping_key={"site": site, "ce": ce})  # PUT of nothing: leave the group empty


def test_probe_not_sent_to_a_site_pushes_nothing(pushgateway_for_tests, no_checks, tmp_path, capsys):
    pgw = pushgateway_for_tests
    allowed = tmp_path / "allowed.txt"
    allowed.write_text(f"{SITE_A} ce01.ihep.ac.cn\n")
    base = ["--config.file", str(no_checks), "--pushgateway", pgw.url, "--allowed-sites", str(allowed)]
    assert probe_cli.run([*base, "--site", SITE_B]) == 3
    assert probe_cli.run([*base, "--site", SITE_A, "--ce", "ce02.ihep.ac.cn"]) == 3
    assert "not among the allowed sites" in capsys.readouterr().err
    assert groups_of(pgw) == {}
    assert probe_cli.run([*base, "--site", SITE_A, "--ce", "ce01.ihep.ac.cn"]) == 0
    assert set(groups_of(pgw)) == {(JOB, SITE_A, "ce01.ihep.ac.cn")}


@pytest.fixture
def pushgateway_for_tests(tmp_path):
    pgw = services.start_pushgateway(tmp_path / "pgw", persist=False)
    yield pgw
    pgw.stop()


def test_per_site_credentials_and_their_limit(tmp_path, tls_material, no_checks, capsys):
    """Per-site users: each site's probes authenticate with their own password (a leaked one is revoked
    alone). The Pushgateway cannot bind a user to a group, so site A's password still writes site B's
    group: the residual risk docs/security.md states."""
    from services_fixtures import write_web_config as pgw_web_config

    users = {"site-a": "pw-a-1234", "site-b": "pw-b-5678"}
    web = pgw_web_config(tmp_path / "web.json", tls=tls_material, users=users)
    files = {}
    for user, password in users.items():
        files[user] = tmp_path / f"{user}.pw"
        files[user].write_text(password + "\n")
        os.chmod(files[user], 0o600)
    pgw = services.start_pushgateway(tmp_path / "pgw", web_config=web, persist=False, auth=("site-a", users["site-a"]))
    try:
        def run(site: str, user: str, pw_file) -> int:
            return probe_cli.run(["--config.file", str(no_checks), "--site", site, "--pushgateway", pgw.url,
                                  "--ca-file", str(tls_material.ca), "--push-user", user,
                                  "--password-file", str(pw_file), "--retries", "0"])

        assert run(SITE_A, "site-a", files["site-a"]) == 0
        assert run(SITE_B, "site-b", files["site-b"]) == 0
        assert run(SITE_B, "site-a", files["site-b"]) == 2  # another site's password: refused
        err = capsys.readouterr().err
        assert "refused the credentials (HTTP 401)" in err and "pw-b-5678" not in err
        assert "readable by group/others" not in err  # mode 600: no warning
        assert run(SITE_B, "site-a", files["site-a"]) == 0  # the residual risk: not bound to site A
        auth = {"ca": tls_material.ca, "auth": ("site-a", users["site-a"])}
        assert {(JOB, SITE_A, "none"), (JOB, SITE_B, "none")} <= set(groups_of(pgw, **auth))
    finally:
        pgw.stop()
