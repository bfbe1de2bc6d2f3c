"""The self-contained pyz runs with a bare Python >= 3.9 (no packages) and pushes over HTTPS + auth;
its configuration is full YAML, read by the pure-Python PyYAML shipped inside it."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from probe_helpers import probe_group, read_pushgateway_metrics, run_cli, samples

from probe_pushgateway.build import build

PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python3.9")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A fresh venv with nothing installed (not even pip), preferably on Python 3.9."""
    base = str(PY39) if PY39.exists() else (shutil.which("python3.9") or "/usr/bin/python3")
    venv = tmp_path_factory.mktemp("venv") / "bare"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u, sys; print(sys.version_info[:2], "
                            "[m for m in ('prometheus_client', 'yaml') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=30, check=True, cwd="/")
    assert probe.stdout.strip().endswith("[]"), probe.stdout  # nothing importable but the stdlib
    return python


def test_pyz_contents_and_reproducible(tmp_path, probe_pyz):
    again = build(tmp_path / "again.pyz")
    assert again.read_bytes() == probe_pyz.read_bytes()
    names = zipfile.ZipFile(probe_pyz).namelist()
    assert "__main__.py" in names and "probe_pushgateway/cli.py" in names
    assert "probe_pushgateway/checks/proxy.py" in names and "prometheus_client/exposition.py" in names
    assert "prometheus_client/LICENSE" in names
    assert "yaml/__init__.py" in names and "yaml/LICENSE" in names and "yaml/VERSION" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]  # pure Python: any worker node's CPU
    assert not [n for n in names if "agent" in n or "twisted" in n or n.endswith(".pyc") or "build.py" in n]
    assert probe_pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_pyz_in_bare_venv_pushes_over_https_with_auth(bare_python, probe_pyz, secure_pushgateway,
                                                      tmp_path):
    pgw = secure_pushgateway
    job = tmp_path / "job"  # what a DIRAC job's directory holds: the sandbox files
    job.mkdir()
    shutil.copy(probe_pyz, job / "bes-probe.pyz")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "x").write_text("x")
    (job / "probe.yml").write_text(f"""\
--- # full YAML (document marker, block scalar, anchor), read by the PyYAML inside the pyz: none in this venv
checks:
  environment: &small {{min_free_workdir_mb: 1, min_free_tmp_mb: 1, min_memory_mb: 1}}
  cvmfs:
    repositories:
      - {repo}
  software:
    command: >-
      python3 -c "import sys; print(sys.version)"
    expect: "^3\\\\."
  tcp: {{}}
  clock:
pushgateway:
  ca_file: {pgw.tls.ca}
  user: {pgw.user}
  password_file: {pgw.password_file}
""")
    res = run_cli("bes-probe.pyz", "--config.file", "probe.yml", "--site", "BES.USTC.cn", "--ce",
                  "ce.ustc.edu.cn", "--pushgateway", pgw.url, "--job-id", "777",
                  program=[bare_python], cwd=job, env={"PYTHONPATH": "", "PATH": str(Path(bare_python).parent)
                                                       + ":/usr/bin:/bin"})
    assert res.code == 0, res.stderr
    assert "software: ok" in res.stderr and "3.9" in res.stderr or not PY39.exists()
    groups = read_pushgateway_metrics(pgw.daemon, ca=pgw.tls.ca, auth=(pgw.user, pgw.password))
    group = probe_group(groups, "BES.USTC.cn", "ce.ustc.edu.cn")
    assert samples(group, "dirac_probe_success")[frozenset({("check", "all")})] == 1.0
    assert len(samples(group, "dirac_probe_success")) == 6
    assert samples(group, "dirac_probe_job_id") == {frozenset(): 777.0}
    assert [set(dict(k)) for k in samples(group, "dirac_probe_info")] == [{"host"}]

    # The same pyz, Pushgateway unreachable: exit 2 and the result on stdout.
    res = run_cli("bes-probe.pyz", "--config.file", "probe.yml", "--site", "BES.USTC.cn", "--pushgateway",
                  "http://127.0.0.1:9", "--retries", "0", "--dry-run", program=[bare_python], cwd=job)
    assert res.code == 0 and "dirac_probe_success" in res.stdout


def test_pyz_refuses_bad_input_with_exit_3(bare_python, probe_pyz):
    res = run_cli(str(probe_pyz), "--site", "x/../y", "--dry-run", program=[bare_python], cwd=Path("/"))
    assert res.code == 3 and res.stderr.count("\n") == 1 and "--site" in res.stderr


def test_pyz_refuses_malformed_yaml_in_one_line(bare_python, probe_pyz, tmp_path):
    (tmp_path / "probe.yml").write_text("checks:\n  tcp: {targets: [a:1\n")
    res = run_cli(str(probe_pyz), "--config.file", "probe.yml", "--site", "BES.USTC.cn", "--dry-run",
                  program=[bare_python], cwd=tmp_path)
    assert res.code == 3 and res.stderr.count("\n") == 1, res.stderr
    assert "probe.yml is not valid YAML at line" in res.stderr and "Traceback" not in res.stderr
