"""Alerts versus Pushgateway groups for sites no agent sent a probe to (a malicious worker node with a valid
probe credential can push those): they must not page, and above all must not raise DiracCentralFailure,
which inhibits every per-site alert. Checked with promtool on the shipped rules."""

from __future__ import annotations

import json
import subprocess

from hardening_util import ROOT

RULES = [ROOT / "alerts" / "rules" / "probes.yml", ROOT / "alerts" / "rules" / "central.yml"]
REAL = ["BES.IHEP-PBS.cn", "BES.USTC.cn"]


def promtool_case(tmp_path, failing_sites: list[str], agent_knows_them: bool) -> subprocess.CompletedProcess:
    """Real sites pass; ``failing_sites`` push failing probe results for 40 min. Expect no alert at 30 min."""
    series = []
    for site in REAL + failing_sites:
        failing = site in failing_sites
        series += [
            {"series": f'push_time_seconds{{job="bes_probe",site="{site}",ce="none"}}', "values": "0+60x40"},
            {"series": f'dirac_probe_success{{job="bes_probe",site="{site}",ce="none",check="all"}}',
             "values": f"{0 if failing else 1}x40"},
            {"series": f'dirac_probe_last_run_timestamp_seconds{{job="bes_probe",site="{site}",ce="none"}}',
             "values": "0+60x40"},
        ]
        if site in REAL or agent_knows_them:
            status = "failed" if failing else "ok"
            series += [
                {"series": f'push_time_seconds{{job="bes_probe_agent",site="{site}",ce="none"}}', "values": "0+60x40"},
                {"series": f'dirac_probe_status{{job="bes_probe_agent",site="{site}",ce="none",status="{status}"}}',
                 "values": "1x40"},
            ]
    test = {"rule_files": [str(r) for r in RULES], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series,
                       "alert_rule_test": [{"eval_time": "30m", "alertname": name, "exp_alerts": []}
                                           for name in ("DiracCentralFailure", "DiracProbeFailing")]}]}
    path = tmp_path / "hostile.yml"
    path.write_text(json.dumps(test))
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_groups_of_unknown_sites_raise_no_alert(tmp_path):
    fake = [f"FAKE{i}.example.org" for i in range(5)]
    control = promtool_case(tmp_path, fake, agent_knows_them=True)
    assert control.returncode != 0 and 'alertname="DiracCentralFailure"' in control.stdout + control.stderr, \
        "control: five failing *known* sites must raise DiracCentralFailure, else this test proves nothing"
    hostile = promtool_case(tmp_path, fake, agent_knows_them=False)
    assert hostile.returncode == 0, "probe groups of sites no agent targets raised an alert:\n" + \
        hostile.stdout + hostile.stderr
