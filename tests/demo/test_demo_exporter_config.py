"""The demo's exporter configuration: the simulator's databases and the time settings on the demo's clock."""

from __future__ import annotations

from pathlib import Path

from bes_demo import rules
from bes_demo.cli import Settings, exporter_config
from bes_exporter.config import parse


def test_exporter_config_reads_the_simulators_databases_on_the_demo_clock(tmp_path):
    s = Settings(dir=tmp_path, speed=60.0, scale=1.0, warmup="0s", timeline=Path("timeline.yml"), probe_sites=[],
                 interval="15s", ports={}, db={"host": "127.0.0.1", "port": 3306, "user": "root", "password": "",
                                               "password_file": None})
    cfg = parse(exporter_config(s), "demo")
    assert (cfg.database["jobdb"], cfg.database["pilotdb"], cfg.database["logdb"]) == (
        "bes_demo_JobDB", "bes_demo_PilotAgentsDB", "bes_demo_JobLoggingDB")
    assert cfg.hosts["window_seconds"] == cfg.owners["window_seconds"] == 86400 // 60
    assert cfg.hosts["fast_failure_seconds"] == 5
    assert rules.exporter_time_settings(1e9)["owners"]["window_seconds"] == 1  # never below one second
