"""``BES_DEMO_PROBE_BACKEND``: local (default) or dirac (a real DIRAC server's WMS); bad values are one line."""

from __future__ import annotations

import pytest

from bes_demo import cli
from dirac_server import topology as server_topology
from probe_pushgateway.agent import config as agent_config


def test_default_is_local_with_the_simulators_sites():
    s = cli.settings({})
    assert s.probe_backend == "local" and not s.uses_dirac
    assert s.probe_sites == ["BES.IHEP-PBS.cn", "BES.USTC.cn", "BES.JINR.ru", "BES.SJTU.cn"]


def test_dirac_probes_the_servers_worker_sites_by_default():
    s = cli.settings({"BES_DEMO_PROBE_BACKEND": "dirac"})
    assert s.uses_dirac and s.dirac_dir == s.dir / "dirac-server"
    assert s.probe_sites == [site.name for site in server_topology.worker_sites()] == ["BES.IHEP-PBS.cn"]
    s = cli.settings({"BES_DEMO_PROBE_BACKEND": "dirac", "BES_DEMO_PROBE_SITES": "BES.USTC.cn,CLUSTER.WHU.cn"})
    assert s.probe_sites == ["BES.USTC.cn", "CLUSTER.WHU.cn"]
    assert not cli.settings({"BES_DEMO_PROBE_BACKEND": "dirac", "BES_DEMO_PROBE_SITES": "none"}).uses_dirac


@pytest.mark.parametrize(("env", "start", "names"), [
    ({"BES_DEMO_PROBE_BACKEND": "remote"}, "BES_DEMO_PROBE_BACKEND=remote: must be 'local'",
     "BES_DEMO_PROBE_BACKEND=dirac"),
    # A simulator-only site is not one of the server's: the setting, the back-end and the server's sites.
    ({"BES_DEMO_PROBE_BACKEND": "dirac", "BES_DEMO_PROBE_SITES": "BES.JINR.ru"},
     "BES_DEMO_PROBE_SITES: BES.JINR.ru is not a site of the DIRAC server", "CLUSTER.WHU.cn"),
    ({"BES_DEMO_PROBE_SITES": "CLUSTER.WHU.cn"}, "BES_DEMO_PROBE_SITES: CLUSTER.WHU.cn is not a site of",
     "BES_DEMO_PROBE_BACKEND=local"),
])
def test_bad_value_is_one_line_naming_the_setting(monkeypatch, capsys, env, start, names):
    for name in cli.ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"demo: {start}") and names in err, err


def test_agent_config_for_the_dirac_backend_is_valid(tmp_path):
    s = cli.settings({"BES_DEMO_DIR": str(tmp_path), "BES_DEMO_PROBE_BACKEND": "dirac",
                      "BES_DEMO_PROBE_SITES": "BES.IHEP-PBS.cn,CLUSTER.WHU.cn"})
    state = tmp_path / "state.json"
    state.write_text('{"db_host": "127.0.0.1", "db_port": 3306, "db_user": "root", '
                     '"databases": {"JobDB": "bes_ds_x_JobDB"}}')
    server = cli.DiracServer.read(tmp_path / "dirac.cfg", tmp_path / "besprobe-proxy.pem", state)
    cfg = agent_config.load(cli.agent_files(s, server))
    assert cfg.backend["type"] == "dirac" and cfg.backend["config_files"] == [str(tmp_path / "dirac.cfg")]
    assert cfg.database["jobdb"] == "bes_ds_x_JobDB"
    assert (cfg.probe["owner"], cfg.probe["owner_group"]) == ("besprobe", "bes_prod")
    assert cfg.probe["waiting_timeout"] == cfg.probe["running_timeout"] == cli.DIRAC_MIN_TIMEOUT  # real clock
    assert cli.agent_env(server)["X509_USER_PROXY"] == str(tmp_path / "besprobe-proxy.pem")
    # The CVMFS check on the simulator's fake root where the simulator has the site, none elsewhere.
    probe = {site: (tmp_path / "agents" / f"probe-{site}.yml").read_text() for site in s.probe_sites}
    assert "cvmfs" in probe["BES.IHEP-PBS.cn"] and "cvmfs" not in probe["CLUSTER.WHU.cn"]
    local = agent_config.load(cli.agent_files(cli.settings({"BES_DEMO_DIR": str(tmp_path)})))
    assert local.backend["type"] == "local" and local.database["jobdb"] == "bes_demo_JobDB"
