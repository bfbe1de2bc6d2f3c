"""The alert campaign's quick run (``bench/alerts --quick``, about 4 minutes): every scenario kind once on the
demo stack, then the JSON's shape. Not a measurement: detection rates and times are the benchmark's figures,
not asserted here; what is checked is that every injected fault is scored under its kind and that nothing is
left running or in MariaDB."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from dirac_instance import root_conn

from bench.campaign import fault_name
from bes_simulator import scenarios
from bes_simulator.topology import parse_duration

pytest.importorskip("DIRAC", reason="DIRAC is not installed: run scripts/install-dirac.sh (make dirac)")

ROOT = Path(__file__).resolve().parents[2]
KIND_KEYS = ("injected", "detected", "median_first_alert_s", "p90_first_alert_s", "median_lead_first_reaction_s",
             "median_lead_decisive_s")


def _ours_running(marker: str) -> list[str]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            out.append(text[:200])
    return out


def test_quick_campaign_scores_every_injected_fault(mariadb, tmp_path):
    prefix = f"bes_campaign_t{uuid.uuid4().hex[:8]}_"
    workdir, out = tmp_path / "campaign", tmp_path / "quick.json"
    r = subprocess.run([str(ROOT / "bench" / "alerts"), "--quick", "--seed", "3", "--json", str(out), "--dir",
                        str(workdir), "--keep", "--db-prefix", prefix],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    for key in ("kinds", "false_alarms_per_day", "wrong_target_alerts", "missed", "simulated_days", "faults"):
        assert key in res, key
    assert set(res["kinds"]) == set(scenarios.PARAMS)  # every kind the simulator knows, read at run time
    for kind, row in res["kinds"].items():
        assert set(KIND_KEYS) <= set(row), kind
        assert row["injected"] >= 1 and 0 <= row["detected"] <= row["injected"], (kind, row)
        for key in KIND_KEYS[2:]:
            assert row[key] is None or isinstance(row[key], (int, float)), (kind, key, row[key])
    timeline = yaml.safe_load((workdir / "timeline.yml").read_text())["scenarios"]
    injected = [fault_name(f["name"], f.get("target"), parse_duration(f["at"], "at")) for f in timeline]
    scored = {f["name"]: f["kind"] for f in res["faults"]}
    assert sorted(scored) == sorted(injected)  # every injected fault was scored, under its own kind
    assert all(scored[name] in res["kinds"] for name in injected)
    assert sum(row["injected"] for row in res["kinds"].values()) == len(injected)
    assert set(res["missed"]) <= set(injected)
    assert isinstance(res["wrong_target_alerts"], int) and res["wrong_target_alerts"] >= 0
    assert res["false_alarms_per_day"] >= 0 and 0 < res["simulated_days"] < 1
    assert "scenario" in r.stdout and "false alarms:" in r.stdout and "missed:" in r.stdout
    assert "http://" not in r.stdout  # the stack's URLs go to stderr: stdout is the table
    assert _ours_running(str(workdir)) == []
    conn = root_conn()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                        (prefix.replace("_", "\\_") + "%",))
            assert cur.fetchall() == ()
    finally:
        conn.close()


@pytest.mark.parametrize("args, words", [
    (["--json", "x.json", "--days", "0"], "--days"),
    (["--json", "x.json", "--per-kind", "0"], "--per-kind"),
    (["--json", "x.json", "--speed", "120"], "--speed"),
    (["--quick"], "--json"),
])
def test_campaign_bad_input_one_line_error(args, words, tmp_path):
    r = subprocess.run([str(ROOT / "bench" / "alerts"), *args], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (tmp_path / "x.json").exists()
