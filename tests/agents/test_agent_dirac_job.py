"""Probe jobs built offline with DIRAC's real Job API and a generated minimal configuration."""

from __future__ import annotations

import re

import pytest
from agent_fixtures import SITES, dirac_cfg_fixture, fake_pyz_fixture, make_config  # noqa: F401 - fixtures

from probe_pushgateway.agent.agent import Agent
from probe_pushgateway.agent.cli import main
from probe_pushgateway.agent.diracjob import DiracError, build_probe_job, job_jdl, local_cfg_text
from probe_pushgateway.agent.targets import Target

PROBE = {"pyz": None, "config": None, "python": "python3", "args": [], "job_group": "bes_probe", "cpu_time": 900}


def test_local_cfg_lists_sites_under_their_domain():
    text = local_cfg_text([Target("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn"), Target("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn"),
                           Target("CLUSTER.UCAS.cn")])
    from diraccfg import CFG

    cfg = CFG().loadFromBuffer(text)
    assert cfg.getOption("/Resources/Sites/BES/BES.IHEP-PBS.cn/CE") == "ce01.ihep.ac.cn, ce02.ihep.ac.cn"
    assert cfg.isSection("/Resources/Sites/BES/BES.IHEP-PBS.cn/CEs/ce02.ihep.ac.cn")
    assert cfg.isSection("/Resources/Sites/CLUSTER/CLUSTER.UCAS.cn")
    assert cfg.getOption("/LocalSite/Site") == "BES.IHEP-PBS.cn"


def test_probe_job_jdl_carries_site_ce_group_sandbox_and_executable(dirac_cfg, tmp_path):
    pyz = tmp_path / "bes-probe.pyz"
    pyz.write_bytes(b"x")
    conf = tmp_path / "probe.yml"
    conf.write_text("{}\n")
    probe = {**PROBE, "pyz": str(pyz), "config": str(conf), "args": ["--timeout", "30"]}
    job = build_probe_job(Target("BES.IHEP-PBS.cn", "ce02.ihep.ac.cn"), probe, "https://pgw.example:9091")
    jdl = job_jdl(job)
    assert re.search(r"Site = BES\.IHEP-PBS\.cn;", jdl)
    assert re.search(r"GridCE = ce02\.ihep\.ac\.cn;", jdl)
    assert re.search(r"JobGroup = bes_probe;", jdl)
    assert re.search(r'JobName = "?bes_probe@BES\.IHEP-PBS\.cn@ce02\.ihep\.ac\.cn"?;', jdl)
    assert re.search(r"CPUTime = 900;", jdl)
    assert str(pyz) in jdl and str(conf) in jdl  # both files in the InputSandbox
    assert re.search(r'Executable = "dirac-jobexec";', jdl)  # DIRAC's job wrapper runs the workflow
    xml = job._toXML()
    assert ("bes-probe.pyz --site BES.IHEP-PBS.cn --ce ce02.ihep.ac.cn --pushgateway https://pgw.example:9091"
            " --config.file probe.yml --timeout 30") in xml
    assert "<![CDATA[python3]]>" in xml


def test_site_placeholder_in_probe_config_ships_each_site_its_own_file(dirac_cfg, fake_pyz, tmp_path, capsys,
                                                                       caplog):
    (tmp_path / "probe-BES.WHU.cn.yml").write_text("{}\n")
    probe = {**PROBE, "pyz": str(fake_pyz), "config": str(tmp_path / "probe-{site}.yml")}
    xml = build_probe_job(Target("BES.WHU.cn"), probe, "http://p:9091")._toXML()
    assert "--config.file probe-BES.WHU.cn.yml" in xml and str(tmp_path / "probe-BES.WHU.cn.yml") in xml
    cfg = tmp_path / "agent.yml"
    cfg.write_text(f"""
targets: [BES.WHU.cn, BES.USTC.cn]
probe: {{pyz: {fake_pyz}, config: "{tmp_path}/probe-{{site}}.yml"}}
pushgateway: {{url: "http://127.0.0.1:9"}}
backend: {{type: dirac, require_auth: false, config_files: ["{dirac_cfg}"]}}
state_dir: {tmp_path / 'state'}
""")
    assert main(["-c", str(cfg), "submit", "--dry-run"]) == 1  # BES.USTC.cn has no file: a counted failure
    out = capsys.readouterr().out
    assert "# BES.WHU.cn/none" in out and "BES.USTC.cn" not in out
    assert f"'probe.config' {tmp_path}/probe-BES.USTC.cn.yml (for BES.USTC.cn/none) is not a readable file" \
        in caplog.text


def test_site_target_without_ce_has_no_gridce(dirac_cfg, fake_pyz):
    jdl = job_jdl(build_probe_job(Target("BES.USTC.cn"), {**PROBE, "pyz": str(fake_pyz)}, "http://p:9091"))
    assert "Site = BES.USTC.cn;" in jdl
    assert "GridCE" not in jdl
    assert "--ce" not in jdl


@pytest.mark.parametrize("target, message", [
    (Target("BES.NOWHERE.cn"), "site BES.NOWHERE.cn is not in DIRAC's configuration"),
    (Target("BES.USTC.cn", "ce99.nowhere.cn"), "CE ce99.nowhere.cn is not in DIRAC's configuration"),
    (Target("BES.USTC.cn", "ce01.ihep.ac.cn"), "belongs to site BES.IHEP-PBS.cn"),
])
def test_unknown_site_or_ce_is_a_clear_error(dirac_cfg, fake_pyz, target, message):
    with pytest.raises(DiracError) as err:
        build_probe_job(target, {**PROBE, "pyz": str(fake_pyz)}, "http://p:9091")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_submit_dry_run_prints_jdl_and_reports_missing_site(dirac_cfg, fake_pyz, tmp_path, capsys, caplog):
    cfg = tmp_path / "agent.yml"
    cfg.write_text(f"""
targets: [BES.WHU.cn, BES.NOWHERE.cn]
probe: {{pyz: {fake_pyz}}}
pushgateway: {{url: "http://127.0.0.1:9"}}
backend: {{type: dirac, require_auth: false, config_files: ["{dirac_cfg}"]}}
state_dir: {tmp_path / 'state'}
""")
    rc = main(["-c", str(cfg), "submit", "--dry-run"])
    out, err = capsys.readouterr()
    assert rc == 1  # the missing site is a counted failure
    assert "# BES.WHU.cn/none" in out and "Site = BES.WHU.cn;" in out
    assert "site BES.NOWHERE.cn is not in DIRAC's configuration" in caplog.text
    assert "Traceback" not in err


def test_targets_all_reads_every_site_of_dirac_configuration(dirac_cfg, tmp_path):
    cfg = make_config(tmp_path, targets="all", pushgateway_url="http://127.0.0.1:9",
                      backend={"type": "dirac", "require_auth": False, "config_files": [str(dirac_cfg)]})
    targets = Agent(cfg).targets()
    assert set(SITES) <= {t.site for t in targets}
    assert all(t.ce is None for t in targets)  # one site-level probe per site
