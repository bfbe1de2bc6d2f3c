"""What the reaper accepts from a probe job's output (``harvest.parse_result``): the worker node is not trusted.

The block is the one the real probe prints (``bes-probe --dry-run`` output wrapped in the probe's own markers).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from prometheus_client import generate_latest

from probe_pushgateway.agent.harvest import HARVESTED, HarvestRefused, NoResult, parse_result
from probe_pushgateway.agent.targets import Target
from probe_pushgateway.cli import BEGIN_MARK, END_MARK

TARGET = Target("GRID.LOCAL.cn", "ce.local.test")


@pytest.fixture(scope="module")
def exposition() -> str:
    run = subprocess.run([sys.executable, "-m", "probe_pushgateway", "--site", TARGET.site, "--ce", TARGET.ce,
                          "--dry-run", "--timeout", "30", "--job-id", "104242"], capture_output=True, text=True,
                         timeout=60, input="", env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert "dirac_probe_success" in run.stdout, run.stderr
    return run.stdout


def block(text: str, site: str = TARGET.site, ce: str = TARGET.ce) -> str:
    head = "<<<<<<<<<< python3 Standard Output >>>>>>>>>>\n\n"  # as DIRAC's Script module writes the log
    return f"{head}{BEGIN_MARK} site={site} ce={ce} exit=2\n{text}{END_MARK}\n"


def parse(output: str):
    return parse_result(output, TARGET, time.time() - 600, time.time() + 120)


def test_the_probes_own_result_is_accepted_and_marked(exposition):
    found = parse(block(exposition))
    text = generate_latest(found.registry).decode()
    assert f"{HARVESTED} 1.0" in text and "dirac_probe_check_info{" in text
    assert "dirac_probe_job_id 104242.0" in text and 'dirac_probe_info{host="' in text
    assert abs(found.run_time - time.time()) < 120


@pytest.mark.parametrize("change, why", [
    (lambda t: block(t, site="BES.WHU.cn"), "not the job's target"),
    (lambda t: block(t, ce="none"), "not the job's target"),
    (lambda t: block(t + 'evil_metric{site="X"} 1\n'), "unexpected metric 'evil_metric'"),
    (lambda t: block(t.replace('dirac_probe_success{check="all"}', 'dirac_probe_success{check="all",site="X"}')),
     "does not match the probe's metrics"),
    (lambda t: block("\n".join(f"dirac_probe_last_run_timestamp_seconds {time.time() - 86400}"
                               if ln.startswith("dirac_probe_last_run_timestamp_seconds ") else ln
                               for ln in t.splitlines()) + "\n"), "outside the job's life"),
    (lambda t: block(t).replace(END_MARK, ""), "no end marker"),
    (lambda t: block("not { exposition\n"), "not valid exposition format"),
    (lambda t: block("# TYPE x counter\n" * 40000), "larger than"),
])
def test_what_the_node_cannot_vouch_for_is_refused(exposition, change, why):
    with pytest.raises(HarvestRefused, match=why) as exc:
        parse(change(exposition))
    assert "\n" not in str(exc.value) and not isinstance(exc.value, NoResult)


def test_output_without_a_block_is_no_result():
    with pytest.raises(NoResult):
        parse("<<<<<<<<<< python3 Standard Output >>>>>>>>>>\n\nbes-probe: pushed\n")
