"""Property-based tests (hypothesis): the exporter's config and web-config loaders only ever raise their
documented ConfigError (one line); label builders (fail reasons, failures before running, host/site/CE and
owner names, the probe's and the
agents' grouping keys) never produce a value outside the allowed alphabet and length, and a grouping key
accepted by the probe lands on a real Pushgateway as exactly that group."""

from __future__ import annotations

import os
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bes_exporter import config as exporter_config
from bes_exporter import labels, webconfig
from bes_exporter.collector import DiracCollector
from bes_exporter.config import ConfigError
from bes_exporter.scrapers import SCRAPERS

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# --- values of every type YAML can produce, including the awkward ones --------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e400", "nan", ".inf", "JobDB", "a\nb", "x" * 300, "\x00", "é", "3306"]),
)
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4)),
    max_leaves=12)


numbers = st.one_of(st.integers(min_value=-3, max_value=200_000), st.integers(min_value=2**30, max_value=2**70),
                  st.floats(min_value=-1, max_value=1e6), st.floats(min_value=1e6),
                  st.sampled_from([0, 0.05, 3601, 10**9 + 1, 10**15, 2**63, 10**30, 1e300]))
LEAVES = {int: numbers, float: numbers, str: st.one_of(st.text(max_size=70), st.from_regex(r"\A[A-Za-z0-9_-]{1,70}\Z")),
          list: st.lists(st.one_of(numbers, scalars), max_size=6)}


def _leaf(types) -> st.SearchStrategy:
    types = types if isinstance(types, tuple) else (types,)
    return st.one_of(yaml_values, *(LEAVES[t] for t in types))


def _section(schema: dict) -> st.SearchStrategy:
    """A mapping using the section's known keys (and sometimes an unknown one) with any values."""
    keys = {}
    for key, spec in schema.items():
        keys[key] = _section(spec) if isinstance(spec, dict) else _leaf(spec[0])
    known = st.fixed_dictionaries({}, optional=keys)
    return st.one_of(known, known.flatmap(lambda d: st.dictionaries(st.text(max_size=8), yaml_values, max_size=2)
                                          .map(lambda extra: {**extra, **d}))) | yaml_values


def _leaf_paths(schema: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key, spec in schema.items():
        if isinstance(spec, dict):
            out += _leaf_paths(spec, prefix + (key,))
        else:
            out.append((prefix + (key,), spec[0]))
    return out


def _nest(pairs) -> dict:
    data: dict = {}
    for path, value in pairs:
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return data


# Mostly-valid configs: one to three keys set, each to a value of (or near) its type.
few_keys = st.lists(st.sampled_from(_leaf_paths(exporter_config.SCHEMA)).flatmap(
    lambda p: st.tuples(st.just(p[0]), _leaf(p[1]))), max_size=3).map(_nest)
PASSWORD_FILES = st.one_of(st.none(), st.text(alphabet=string.ascii_letters + "._- \x00", max_size=20),
                           st.sampled_from(["pw-0600", "pw-0644", ".", "nonexistent/pw"]))


@pytest.fixture(scope="module")
def password_dir(tmp_path_factory):
    """A working directory holding readable password files; config paths are relative to it."""
    d = tmp_path_factory.mktemp("pw")
    for name, mode in (("pw-0600", 0o600), ("pw-0644", 0o644)):
        (d / name).write_text("secret\n")
        os.chmod(d / name, mode)
    old = os.getcwd()
    os.chdir(d)
    saved = os.environ.pop(exporter_config.PASSWORD_ENV, None)
    yield d
    os.chdir(old)
    if saved is not None:
        os.environ[exporter_config.PASSWORD_ENV] = saved


@FAST
@given(data=st.one_of(few_keys, _section(exporter_config.SCHEMA)), password_file=PASSWORD_FILES)
def test_exporter_config_raises_only_config_error(password_dir, data, password_file):
    if isinstance(data, dict) and password_file is not None:
        db = data["database"] if isinstance(data.get("database"), dict) else {}
        data["database"] = {**db, "password_file": password_file}
        data["database"].pop("password", None)
    try:
        cfg = exporter_config.parse(data, "fuzz.yml")
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.yml") and "\n" not in msg and len(msg) < 400, msg
        return
    db = cfg.database
    assert 1 <= db["port"] <= 65535
    for key in ("connect_timeout", "query_timeout"):
        assert 0.1 <= db[key] <= 3600, (key, db[key])
    assert cfg.jobs["page_rows"] >= 100
    for section in (cfg.jobs, cfg.hosts, cfg.owners):
        for value in section.values():
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
    for key in ("jobdb", "pilotdb", "rssdb"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", db[key]), db[key]
    DiracCollector(cfg, SCRAPERS)  # an accepted config builds the exporter (no database needed for that)


@FAST
@given(data=st.one_of(yaml_values, st.fixed_dictionaries({}, optional={
    "tls_server_config": st.fixed_dictionaries({}, optional={k: yaml_values for k in webconfig.TLS_KEYS}),
    "basic_auth_users": st.dictionaries(st.text(max_size=8), st.one_of(yaml_values, st.just(
        "$2b$04$abcdefghijklmnopqrstuu1234567890123456789012345678901")), max_size=3),
    "http_server_config": st.fixed_dictionaries({}, optional={"http2": yaml_values, "headers": st.dictionaries(
        st.sampled_from(sorted(webconfig.HEADERS) + ["X-Other"]), yaml_values, max_size=3)}),
    "rate_limit": st.fixed_dictionaries({}, optional={"interval": st.one_of(yaml_values, st.from_regex(
        r"\A([0-9]{1,3}(ms|s|m|h))+\Z")), "burst": yaml_values}),
})))
def test_web_config_raises_only_config_error(tmp_path_factory, data):
    try:
        cfg = webconfig.parse(data, "/nonexistent-dir/web.yml")
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith("--web.config.file /nonexistent-dir/web.yml: ") and "\n" not in msg, msg
        return
    assert cfg.rate_interval >= 0 and cfg.rate_burst >= 0
    assert all("\n" not in v for v in cfg.headers.values())


# --- label values ------------------------------------------------------------------------------------
any_text = st.one_of(st.text(max_size=300), st.text(alphabet=string.printable, max_size=80),
                     st.from_regex(r"\A[A-Za-z0-9.\-_ \n]{0,300}\Z"))
HOST_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@FAST
@given(minor=st.one_of(st.none(), any_text, st.sampled_from([
    "Application Finished With Errors", "Stalling for more than 12345 sec", "  job   STALLED: pilot not running ",
    "Job has reached the CPU limit of the queue\n", "Failed Downloading InputSandbox LFN(s)"])))
def test_fail_reason_is_always_one_of_the_codes(minor):
    assert labels.fail_reason(minor) in labels.FAIL_REASONS


@FAST
@given(host=st.one_of(st.none(), any_text, st.integers(), st.binary(max_size=20),
                      st.from_regex(r"\A[a-zA-Z0-9.-]{1,80}\.?\Z")))
def test_host_and_ce_labels_are_host_names_or_unknown(host):
    for fn in (labels.host_label, labels.ce_label):
        value = fn(host)
        assert value == "unknown" or (len(value) <= 253 and HOST_RE.fullmatch(value)), repr(value)


@FAST
@given(site=st.one_of(st.none(), any_text, st.from_regex(r"\A[A-Z]{2,6}\.[A-Za-z0-9-]{1,20}\.[a-z]{2}\s?\Z")))
def test_site_label_is_a_site_name_or_invalid(site):
    value = labels.site_label(site)
    assert value == "invalid" or SITE_RE.fullmatch(value), repr(value)


OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@FAST
@given(name=st.one_of(st.none(), any_text, st.integers(), st.from_regex(r"\A[A-Za-z0-9._@/=-]{0,80}\Z"),
                      st.sampled_from(["/DC=cn/DC=ihep/OU=users/CN=alice", "x" * 64, "x" * 65, "alice\n", "\u212a"])))
def test_owner_label_is_a_dirac_name_or_invalid(name):
    value = labels.owner_label(name)
    assert value == "invalid" or (value == name and OWNER_RE.fullmatch(value)), repr(value)


@FAST
@given(minor=st.one_of(st.none(), any_text, st.from_regex(r"\A\S{0,20} optimizer\Z")),
       app=st.one_of(st.none(), any_text, st.sampled_from(["Input data not available", "No Local SEs for site \n",
                                                            "Optimizer \n is not in the chain!"])))
def test_failure_before_running_is_always_a_known_stage_and_reason(minor, app):
    stage, reason = labels.before_running(minor, app)
    assert stage in labels.BEFORE_RUNNING_STAGES and reason in labels.BEFORE_RUNNING_REASONS
