"""bes-simulate's command line: live pacing against the database clock, clean stop, reuse of its own
databases, and one-line errors (never a traceback) for bad options, files and databases."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from sim_helpers import ROOT, SMALL, conn, db_args, drop, new_prefix, run_cli, run_subprocess

from bes_simulator.scenarios import parse_spec
from bes_simulator.topology import DEFAULT_TOPOLOGY, ConfigError, load_topology, parse_duration


def _one_line_error(rc: int, err: str, code: int, *words: str) -> None:
    assert rc == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bes-simulate: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_durations_and_scenario_specs():
    assert parse_duration("1h30m", "x") == 5400 and parse_duration(90, "x") == 90
    assert parse_duration("2d", "x") == 172800
    spec = parse_spec("black-hole-host:wn01.ustc.edu.cn@2h+30m")
    assert (spec.name, spec.target, spec.at, spec.duration) == ("black-hole-host", "wn01.ustc.edu.cn", 7200, 1800)
    with pytest.raises(ConfigError, match="--scenario"):
        parse_spec("meteor-strike@1h")
    with pytest.raises(ConfigError, match="duration"):
        parse_duration("soon", "--duration")


def test_default_topology_is_bes3_like_and_packaged():
    topo = load_topology()
    assert DEFAULT_TOPOLOGY.name == "topology.yml" and DEFAULT_TOPOLOGY.parent.name == "bes_simulator"
    names = {s.name for s in topo.sites}
    assert {"BES.IHEP-PBS.cn", "GRID.IHEP.cn", "CLOUD.IHEP-OPENSTACK.cn", "CLUSTER.USTC.cn", "BES.UCAS.cn",
            "BES.USTC.cn", "BES.WHU.cn", "BES.JINR.ru"} <= names and len(names) == 15
    for site in topo.sites:
        hosts = sum(len(ce.hosts) for ce in site.ces)
        assert 20 <= hosts <= 300 and site.slots >= hosts
    assert load_topology(scale=0.1).slots < topo.slots / 5
    cfg = (ROOT / "setup.cfg").read_text()
    assert "bes_simulator = *.yml" in cfg and "bes-simulate = bes_simulator.cli:main" in cfg


@pytest.mark.parametrize("argv, words", [
    (["--scenario", "meteor@1h"], ["--scenario", "black-hole-host"]),
    (["--scenario", "heartbeat-loss:BES.NOWHERE.cn"], ["BES.NOWHERE.cn", "is not in"]),
    (["--scenario", "black-hole-host:wn999.ustc.edu.cn"], ["host", "wn999.ustc.edu.cn"]),
    (["--scenario", "central-failure:BES.USTC.cn"], ["takes no target"]),
    (["--duration", "soon"], ["--duration", "30m"]),
    (["--speed", "0"], ["--speed"]),
    (["--generation", "7.3"], ["--generation"]),
    (["--topology", "/nonexistent/topo.yml"], ["/nonexistent/topo.yml", "--topology"]),
    (["--db-prefix", "bad-prefix;"], ["--db-prefix"]),
    (["--report", "--events", "/nonexistent/events.json"], ["/nonexistent/events.json", "--events"]),
])
def test_bad_options_are_one_line_errors(argv, words):
    rc, err = run_cli(*argv)
    _one_line_error(rc, err, 2, *words)


@pytest.mark.parametrize("text, words", [
    ("sites: []\n", ["'sites' must be a non-empty list"]),
    ("dirac: {stalled_tme: 10}\nsites: []\n", ["dirac.stalled_tme", "unknown key", "stalled_time"]),
    ("workload: {failure_rate: 2}\nsites: []\n", ["workload.failure_rate", "between 0 and 1"]),
    ("dirac: {job_efficiency: 1}\nsites: []\n", ["dirac.job_efficiency", "true or false"]),
    ("sites:\n  - {name: BES.X.cn, ces: [{name: ce.x.cn, slots: 4, hosts: {pattern: wn, count: 2}}]}\n",
     ["hosts.pattern", "{n}"]),
    ("sites: [\n", ["not valid YAML"]),
])
def test_bad_topology_files_name_file_and_key(tmp_path, text, words):
    path = tmp_path / "topo.yml"
    path.write_text(text)
    rc, err = run_cli("--topology", str(path), "--once")
    _one_line_error(rc, err, 2, str(path), *words)


def test_unusable_state_dir_and_late_scenario(tmp_path):
    (tmp_path / "file").write_text("")
    rc, err = run_cli("--topology", SMALL, "--once", "--duration", "1h", "--scenario", "no-matching@2h")
    _one_line_error(rc, err, 2, "no-matching", "--duration")
    rc, err = run_cli("--report", "--events", str(tmp_path / "file"))
    _one_line_error(rc, err, 2, "events file")


def test_unwritable_state_dir(mariadb, tmp_path):
    (tmp_path / "file").write_text("")
    prefix = new_prefix()
    try:
        rc, err = run_cli(*db_args(prefix), "--topology", SMALL, "--once", "--state-dir", str(tmp_path / "file" / "x"))
        _one_line_error(rc, err, 2, "--state-dir")
    finally:
        drop(prefix)


def test_bad_timeline_names_file_and_key(tmp_path):
    path = tmp_path / "timeline.yml"
    path.write_text("scenarios:\n  - {name: pilot-abort, at: 1h, ramp: 2h, rmap: 3}\n")
    rc, err = run_cli("--topology", SMALL, "--timeline", str(path), "--once")
    _one_line_error(rc, err, 2, str(path), "rmap", "ramp")


@pytest.mark.parametrize("item, words", [
    ("{name: user-broken, share: 2}", ["scenarios[0].share", "between 0 and 1"]),
    ("{name: user-broken, concentration: 0.7}", ["scenarios[0]", "site and concentration"]),
    ("{name: user-broken, site: BES.WHU.cn}", ["scenarios[0]", "site and concentration"]),
    ("{name: user-broken, site: BES.NOWHERE.cn, concentration: 0.5}", ["scenarios[0].site", "BES.NOWHERE.cn"]),
    ("{name: user-broken, target: 'bad name'}", ["scenarios[0]", "'bad name'", "DIRAC user name"]),
    ("{name: user-broken, fail_after: [60, 2h]}", ["scenarios[0].fail_after", "1800"]),
    ("{name: input-fetch, what: cvmfs}", ["scenarios[0].what", "sandbox, data"]),
    ("{name: input-fetch, target: BES.NOWHERE.cn}", ["input-fetch", "neither a worker node nor a site"]),
    ("{name: user-broken, before_running: -0.1}", ["scenarios[0].before_running", "between 0 and 1"]),
    ("{name: site-software, group: bes_admin}", ["scenarios[0].group", "bes_prod, bes_user"]),
    ("{name: site-software, target: BES.NOWHERE.cn}", ["scenarios[0]", "BES.NOWHERE.cn", "is not in"]),
    ("{name: site-software, share: 0.5}", ["scenarios[0]", "unknown key 'share'", "group"]),
])
def test_bad_blame_options_name_file_and_key(tmp_path, item, words):
    path = tmp_path / "timeline.yml"
    path.write_text(f"scenarios:\n  - {item}\n")
    rc, err = run_cli("--topology", SMALL, "--timeline", str(path), "--once")
    _one_line_error(rc, err, 2, str(path), *words)


def test_list_scenarios_shows_targets_and_options(capsys):
    rc, _ = run_cli("--list-scenarios", "--topology", SMALL)
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rc == 0 and len(lines) == 9
    assert lines["user-broken"].split()[1:4] == ["target", "owner", "default"] and " liuhm " in lines["user-broken"]
    assert "share=0.1" in lines["user-broken"] and "before_running=0.3" in lines["user-broken"]
    assert "BES.WHU.cn" in lines["site-software"] and "group=bes_prod" in lines["site-software"]
    assert lines["input-fetch"].split()[1:3] == ["target", "host|site"] and "what=sandbox" in lines["input-fetch"]


def test_database_errors_are_one_line(mariadb, tmp_path):
    rc, err = run_cli("--db-port", "1", "--topology", SMALL, "--once", "--state-dir", str(tmp_path))
    _one_line_error(rc, err, 1, "cannot connect", "--db-port")
    prefix = new_prefix()
    c = conn()
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{prefix}JobDB`")  # someone else's JobDB
    try:
        rc, err = run_cli(*db_args(prefix), "--topology", SMALL, "--once", "--state-dir", str(tmp_path))
        _one_line_error(rc, err, 1, "not created by bes-simulate", "--db-prefix")
    finally:
        drop(prefix)
        c.close()


def test_live_run_follows_the_database_clock_and_reuses_its_databases(mariadb, tmp_path):
    """Live: 10 simulated minutes of warm-up at once, then 20 minutes at 600x (2 real seconds)."""
    prefix = new_prefix()
    events = tmp_path / "ev.json"
    common = [*db_args(prefix), "--topology", SMALL, "--speed", "600", "--state-dir", str(tmp_path), "--events",
              str(events)]
    try:
        t0 = time.monotonic()
        proc = run_subprocess(*common, "--generation", "8.0", "--warmup", "10m", "--duration", "30m", timeout=60)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert "(created)" in proc.stderr and elapsed >= 1.8  # the live 20 minutes take 2 s
        c = conn()
        with c.cursor() as cur:
            cur.execute(f"SELECT UTC_TIMESTAMP(), MIN(SubmissionTime), MAX(LastUpdateTime), COUNT(*),"
                        f" SUM(Status='Running') FROM `{prefix}JobDB`.Jobs")
            now, first, last, n, running = cur.fetchone()
        c.close()
        assert n > 20 and running > 0
        assert last <= now and 2 <= (last - first).total_seconds() <= 4  # 30 simulated minutes at 600x
        doc = json.loads(events.read_text())
        assert doc["clock"]["speed"] == 600 and doc["log"][-1]["event"] == "simulator stopped"
        # A second run on the same prefix reuses the databases and ends what the first left active.
        rc, err = run_cli(*common, "--generation", "8.0", "--once", "--duration", "5m")
        assert rc == 0 and "reused; ended" in err, err
        rc, err = run_cli(*common, "--generation", "9.1", "--once", "--duration", "5m")
        _one_line_error(rc, err, 1, "--generation 8.0")
    finally:
        drop(prefix)


def test_sigterm_stops_cleanly_and_a_second_instance_is_refused(mariadb, tmp_path):
    prefix = new_prefix()
    events = tmp_path / "ev.json"
    argv = [sys.executable, "-m", "bes_simulator", *db_args(prefix), "--topology", SMALL, "--speed", "60",
            "--events", str(events), "--state-dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not events.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert events.exists() and proc.poll() is None
        rc, err = run_cli(*db_args(prefix), "--topology", SMALL, "--once", "--state-dir", str(tmp_path / "b"))
        _one_line_error(rc, err, 1, "already writing", "--db-prefix")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert json.loads(events.read_text())["log"][-1]["event"] == "simulator stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        drop(prefix)


def test_pilot_history_gives_rss_a_day_of_finished_pilots(mariadb, tmp_path):
    """--pilot-history writes finished pilots before the start, at each CE's steady turnover."""
    prefix = new_prefix()
    try:
        rc, err = run_cli(*db_args(prefix), "--topology", SMALL, "--generation", "9.1", "--once", "--duration", "10m",
                          "--speed", "600", "--pilot-history", "1d", "--state-dir", str(tmp_path), "--quiet")
        assert rc == 0, err
        doc = json.loads((tmp_path / "events.json").read_text())
        origin = doc["clock"]["origin_epoch"]
        c = conn()
        with c.cursor() as cur:
            cur.execute(f"SELECT Status, COUNT(*), MIN(UNIX_TIMESTAMP(LastUpdateTime)) FROM `{prefix}PilotAgentsDB`"
                        f".PilotAgents WHERE LastUpdateTime < FROM_UNIXTIME(%s) GROUP BY Status", (int(origin) - 1,))
            before = {status: (n, first) for status, n, first in cur.fetchall()}
        c.close()
        assert set(before) <= {"Done", "Failed", "Aborted"} and before["Done"][0] >= 50, before
        assert min(first for _, first in before.values()) >= origin - 86400 / 600 - 1  # within the day before
        assert any(e["event"] == "pilot history written" for e in doc["log"])
        rc, err = run_cli(*db_args(prefix), "--topology", SMALL, "--once", "--pilot-history", "soon")
        _one_line_error(rc, err, 2, "--pilot-history")
    finally:
        drop(prefix)
