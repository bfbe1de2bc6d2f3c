"""What a packager installs (packaging/, setup.cfg): systemd units checked by systemd-analyze (or parsed where it
is missing), example configurations read by the programs' own loaders, the Debian defaults' flags known to the
binaries, and a wheel built from the repository's files that installs the console scripts and ships the rules,
dashboards, Alertmanager files and units."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from bes_exporter import config as exporter_config
from probe_pushgateway.agent import config as agent_config

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
UNITS = sorted((PACKAGING / "systemd").glob("*.service"))
PREFIX = "/opt/bes-monitoring/"  # where docs/deployment.md installs the wheel
BIN = Path(sys.executable).parent
SCRIPTS = ("bes-exporter", "bes-probe-agent", "bes-probe", "bes-simulate")
ANALYZE = shutil.which("systemd-analyze")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


def relocated_units(tmp: Path) -> list[Path]:
    """The units with the install prefix pointing at this venv's scripts (the same console scripts)."""
    out = []
    for unit in UNITS:
        path = tmp / unit.name
        path.write_text(unit.read_text().replace(PREFIX + "bin/", f"{BIN}/"))
        out.append(path)
    return out


def instances(units: list[Path]) -> list[str]:
    names = []
    for u in units:
        names += [f"{u.parent}/{u.name.replace('@', '@' + i)}" for i in ("submit", "reap")] if "@" in u.name \
            else [str(u)]
    return names


def unit_settings(unit: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(unit.read_text())
    return {s: dict(parser[s]) for s in parser.sections()}


def test_units_are_valid(tmp_path):
    units = relocated_units(tmp_path)
    assert {u.name for u in units} == {"bes-exporter.service", "bes-probe-agent@.service", "bes-pushgateway.service"}
    if ANALYZE:
        done = run([ANALYZE, "verify", *instances(units)], cwd=tmp_path)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for unit in units:  # the parser check, also where systemd-analyze is missing
        s = unit_settings(unit)
        assert set(s) == {"Unit", "Service", "Install"}, unit.name
        binary = s["Service"]["ExecStart"].split()[0]
        assert os.access(binary, os.X_OK), f"{unit.name}: {binary}"
        assert s["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_are_hardened(unit, tmp_path):
    s = unit_settings(unit)["Service"]
    assert s.get("DynamicUser") == "yes" or s.get("User") not in (None, "root"), "own unprivileged user"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "")):
        assert s.get(key) == value, f"{unit.name}: {key}={value}"
    if not ANALYZE:
        return
    (path,) = [u for u in relocated_units(tmp_path) if u.name == unit.name]
    (name,) = instances([path])[:1]
    done = run([ANALYZE, "security", "--offline=yes", name], cwd=tmp_path)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert level, done.stdout + done.stderr
    assert float(level.group(1)) <= 2.0, done.stdout  # systemd's scale: 0 (safe) to 10 (exposed); <= 2 is "OK"


def test_sysusers_file(tmp_path):
    sysusers = shutil.which("systemd-sysusers")
    conf = PACKAGING / "systemd" / "bes-monitoring.sysusers.conf"
    if not sysusers:
        pytest.skip("systemd-sysusers not installed")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        (tmp_path / "etc" / name).write_text("")
    done = run([sysusers, f"--root={tmp_path}", "--dry-run", conf])
    assert done.returncode == 0 and "Creating user 'bes-probe'" in done.stdout + done.stderr, done.stderr


def local_paths(data, tmp: Path):
    """Every /etc/bes-monitoring/... and /opt/bes-monitoring/... path in a config, as an existing file in tmp."""
    if isinstance(data, dict):
        return {k: local_paths(v, tmp) for k, v in data.items()}
    if isinstance(data, list):
        return [local_paths(v, tmp) for v in data]
    if isinstance(data, str) and re.match(r"/(etc|opt|run)/.*bes-(monitoring|exporter)", data):
        path = tmp / Path(data).name
        path.write_text("[]\n" if path.suffix == ".yml" else "secret\n")
        path.chmod(0o600)
        return str(path)
    return data


def test_example_configs_are_accepted_by_the_programs(tmp_path):
    exp = yaml.safe_load((PACKAGING / "config" / "exporter.yml").read_text())
    assert exp["database"]["password_file"] == "/run/credentials/bes-exporter.service/db-password"
    assert "db-password:/etc/bes-monitoring/exporter-db-password" in (PACKAGING / "systemd" /
                                                                     "bes-exporter.service").read_text()
    exporter_config.parse(local_paths(exp, tmp_path), "exporter.yml")
    agents = yaml.safe_load((PACKAGING / "config" / "probe-agent.yml").read_text())
    assert agents["state_dir"] == "/var/lib/bes-probe-agent"  # the units' StateDirectory
    agent_config.parse(local_paths(agents, tmp_path), "probe-agent.yml")


@pytest.mark.parametrize(("defaults", "binary"), [
    ("prometheus/prometheus.default", "/usr/bin/prometheus"),
    ("alertmanager/prometheus-alertmanager.default", "/usr/bin/prometheus-alertmanager"),
    ("victoria-metrics/victoria-metrics.default", "/usr/bin/victoria-metrics"),
])
def test_debian_defaults_use_flags_the_binaries_know(defaults, binary):
    text = (PACKAGING / defaults).read_text()
    (args,) = re.findall(r'^ARGS="(.*)"$', text, re.M)
    flags = [a.split("=")[0] for a in shlex.split(args)]
    assert flags and all(f.startswith("-") for f in flags), args
    known = run([binary, "-help" if "victoria" in binary else "--help"])
    help_text = known.stdout + known.stderr
    for flag in flags:
        assert re.search(rf"(^|\s){re.escape(flag)}[=\s]", help_text, re.M), f"{defaults}: {binary} has no {flag}"


def test_prometheus_example():
    done = run(["/usr/bin/promtool", "check", "config", PACKAGING / "prometheus" / "prometheus.yml"])
    assert done.returncode == 0, done.stdout + done.stderr
    cfg = yaml.safe_load((PACKAGING / "prometheus" / "prometheus.yml").read_text())
    assert cfg["global"]["external_labels"]["replica"]
    drop = {"action": "labeldrop", "regex": "replica"}
    assert drop in cfg["alerting"]["alert_relabel_configs"]
    assert drop in cfg["remote_write"][0]["write_relabel_configs"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    thresholds = yaml.safe_load((ROOT / "alerts" / "thresholds.yml").read_text())
    assert set(jobs) == {thresholds["exporter_job"], thresholds["pushgateway_job"]}


def repository_files(dest: Path) -> Path:
    """The repository's files (tracked, or new and not ignored) copied to ``dest``: what a packager has."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def test_wheel_installs_console_scripts_and_ships_rules_dashboards_and_units(tmp_path):
    src = repository_files(tmp_path / "src")
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", tmp_path / "dist", src])
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("bes_monitoring-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in SCRIPTS:
        assert re.search(rf"^{script} = ", entry_points, re.M), script
    data = {n.split(".data/data/share/bes-monitoring/", 1)[1] for n in names if ".data/data/share/" in n}
    expected = {"alerts/alertmanager.yml", "alerts/runbook.md", "alerts/templates/dirac.tmpl",
                "systemd/bes-monitoring.sysusers.conf", "examples/prometheus/prometheus.yml"}
    expected |= {f"alerts/rules/{p.name}" for p in (ROOT / "alerts" / "rules").glob("*.yml")}
    expected |= {f"grafana/dashboards/{p.name}" for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    expected |= {f"systemd/{p.name}" for p in UNITS}
    assert expected <= data, expected - data

    prefix = tmp_path / "prefix"
    # --ignore-installed: never uninstall the project's own (editable) install from this venv
    done = run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                "--prefix", prefix, wheel])
    assert done.returncode == 0, done.stderr
    site = sysconfig.get_path("purelib", vars={"base": str(prefix)})
    env = {**os.environ, "PYTHONPATH": site}
    for script in SCRIPTS:
        ran = run([prefix / "bin" / script, "--help"], env=env)
        assert ran.returncode == 0 and "usage" in ran.stdout.lower(), (script, ran.stderr[-500:])
    share = prefix / "share" / "bes-monitoring"
    rules = sorted((share / "alerts" / "rules").glob("*.yml"))
    checked = run(["/usr/bin/promtool", "check", "rules", *rules])
    assert rules and checked.returncode == 0, checked.stdout + checked.stderr
    am = run(["/usr/bin/amtool", "check-config", share / "alerts" / "alertmanager.yml"])
    assert am.returncode == 0 and "1 templates" in am.stdout, am.stdout + am.stderr
