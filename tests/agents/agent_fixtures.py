"""Fixtures and helpers of the probe agents' tests: DIRAC initialised offline, the fake DIRAC server, configs.

Not a conftest.py: several conftest modules in one run overwrite each other as ``conftest`` in
sys.modules. Test modules import the fixtures they use (``*_fixture``, registered under the short name).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

pytest.importorskip("DIRAC", reason="DIRAC is not installed: run scripts/install-dirac.sh (make dirac)")

from probe_pushgateway.agent import config as agent_config  # noqa: E402
from probe_pushgateway.agent.diracjob import initialize, write_local_cfg  # noqa: E402
from probe_pushgateway.agent.targets import Target  # noqa: E402

ROOT_DIR = Path(__file__).resolve().parents[2]
# Every site/CE any agent test uses; DIRAC's configuration is process-global, so it is loaded once.
SITES = {
    "BES.IHEP-PBS.cn": ["ce01.ihep.ac.cn", "ce02.ihep.ac.cn"],
    "BES.USTC.cn": [],
    "BES.WHU.cn": [],
    "BES.JINR.ru": [],
    "CLUSTER.UCAS.cn": [],
    "GRID.LOCAL.cn": ["ce.local.test"],
}
ALL_TARGETS = [Target(s, c) for s, ces in SITES.items() for c in (ces or [None])]


@pytest.fixture(scope="session", name="dirac_cfg")
def dirac_cfg_fixture(tmp_path_factory) -> Path:
    """A generated minimal DIRAC configuration with the test sites, loaded offline (no server, no proxy)."""
    path = write_local_cfg(ALL_TARGETS, tmp_path_factory.mktemp("dirac") / "dirac.cfg")
    initialize([path], require_auth=False)
    return path


@pytest.fixture(name="fake_pyz")
def fake_pyz_fixture(tmp_path) -> Path:
    """A placeholder probe file for jobs that never run (the fake server only stores the sandbox)."""
    path = tmp_path / "bes-probe.pyz"
    path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return path


@pytest.fixture(name="fake_dirac_server")
def fake_dirac_server_fixture(dirac, dirac_cfg, monkeypatch):
    """DIRAC's real ``Dirac`` API talking to a FAKE DIRAC server that writes the real MariaDB JobDB."""
    from fake_dirac_server import FakeDiracServer, install

    return install(FakeDiracServer(dirac), monkeypatch)


def make_config(tmp_path: Path, *, targets, pushgateway_url: str, pyz: Path | None = None, backend: dict | None = None,
                database: dict | None = None, **extra) -> agent_config.Config:
    """A validated agent configuration for a test (state in ``tmp_path/state``)."""
    data = {
        "targets": targets,
        "probe": {"pyz": str(pyz) if pyz else None, **extra.pop("probe", {})},
        "pushgateway": {"url": pushgateway_url, "timeout": 3, **extra.pop("pushgateway", {})},
        "backend": backend or {"type": "dirac", "require_auth": False},
        "state_dir": str(tmp_path / "state"),
        **extra,
    }
    if database is not None:
        data["database"] = database
    return agent_config.parse(data, "test-config")


def db_section(inst) -> dict:
    """The ``database:`` section for a DiracInstance (conftest's exporter config, JobDB keys only)."""
    db = inst.config()["database"]
    return {k: db[k] for k in ("host", "port", "user", "password", "jobdb", "connect_timeout", "query_timeout")}


# The agents' DIRAC identity (what the fake server writes as Owner/OwnerGroup of their submissions).
OWNER, OWNER_GROUP = "bes_probe", "bes_prod"
OWN_PROBE = {"owner": OWNER, "owner_group": OWNER_GROUP}  # the ``probe:`` keys naming it


def probe_job(inst, target: Target, *, when: dt.datetime, running: bool = False, owner: str = OWNER) -> int:
    """A probe job as the agent submits it (or as ``owner`` mimics it), left Waiting (or Running since
    ``when``); the agents act on it when configured with :data:`OWN_PROBE` (it is not in their state)."""
    jid = inst.writer.submit(site=target.site, job_group="bes_probe", job_name=target.job_name,
                             owner=owner, owner_group=OWNER_GROUP, when=when)
    inst.writer.optimize(jid, when=when)
    if running:
        inst.writer.match(jid, target.site, when=when)
        inst.writer.set_status(jid, "Running", "Application", "Running", when=when)
    return jid
