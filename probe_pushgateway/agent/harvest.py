"""Harvest a probe result that never reached the Pushgateway from the probe job's output.

When its push fails, ``bes-probe`` exits 2 and prints its exposition to stdout between
``# bes-probe result site=… ce=… exit=2`` and ``# end bes-probe result``; DIRAC's job wrapper writes the
probe's stdout to :data:`PROBE_LOG`, which the probe job carries in its output sandbox. The reaper reads
that file through the back-end, and this module turns it into a registry to push for the job's target.

Nothing in the output is trusted: the grouping key must be the job's target, only the probe's own metric
families (with their own labels) are accepted, the run time must fall within the job's life, and the size
is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from ..cli import BEGIN_MARK, END_MARK
from .targets import Target

PROBE_LOG = "bes-probe.log"  # the probe step's log (stdout, stderr), in the job's output sandbox
MAX_OUTPUT = 1 << 20  # bytes of the log read at most
MAX_BLOCK = 256 << 10  # characters of one result block
HARVESTED = "dirac_probe_harvested"
# The probe's metric families and the labels each may carry (probe_pushgateway.push.build_registry).
FAMILIES: dict[str, tuple[str, ...]] = {
    "dirac_probe_success": ("check",),
    "dirac_probe_duration_seconds": ("check",),
    "dirac_probe_check_info": ("check", "reason"),
    "dirac_probe_last_run_timestamp_seconds": (),
    "dirac_probe_last_success_timestamp_seconds": (),
    "dirac_probe_info": ("host",),
    "dirac_probe_job_id": (),
}
_BEGIN_RE = re.compile(re.escape(BEGIN_MARK) + r" site=(\S+) ce=(\S+) exit=(\d+)\s*$")


class HarvestRefused(Exception):
    """The output holds no acceptable probe result (one line, safe to log)."""


class NoResult(HarvestRefused):
    """The output holds no result block at all (the probe pushed, crashed or never ran)."""


@dataclass
class Harvest:
    """A probe result read from a job's output: its registry (with ``dirac_probe_harvested``) and run time."""

    registry: CollectorRegistry
    run_time: float
    success: bool


def _block(output: str) -> tuple[str, str, str]:
    """(site, ce, exposition) of the last complete result block in ``output``."""
    lines = output.splitlines()
    begins = [i for i, line in enumerate(lines) if line.startswith(BEGIN_MARK + " ")]
    if not begins:
        raise NoResult("no '# bes-probe result' block in the probe's output")
    start = begins[-1]
    m = _BEGIN_RE.fullmatch(lines[start])
    if m is None:
        raise HarvestRefused("malformed '# bes-probe result' line")
    try:
        end = lines.index(END_MARK, start + 1)
    except ValueError:
        raise HarvestRefused("the result block has no end marker (output cut short?)") from None
    text = "\n".join(lines[start + 1:end]) + "\n"
    if len(text) > MAX_BLOCK:
        raise HarvestRefused(f"the result block is larger than {MAX_BLOCK} characters")
    return m.group(1), m.group(2), text


def parse_result(output: str, target: Target, not_before: float, not_after: float) -> Harvest:
    """The probe result for ``target`` in a probe job's output; :class:`HarvestRefused` if unacceptable.

    ``not_before``/``not_after``: the run time (``dirac_probe_last_run_timestamp_seconds``) must lie in the
    job's life, so a node cannot replay an old result or date one in the future.
    """
    site, ce, text = _block(output)
    if (site, ce) != target.key:
        raise HarvestRefused(f"the result is for site={site[:130]} ce={ce[:130]}, not the job's target {target}")
    reg = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    values: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise HarvestRefused(f"the result block is not valid exposition format ({str(exc)[:100]})") from None
    for family in families:
        names = FAMILIES.get(family.name)
        if names is None or family.type not in ("gauge", "unknown"):
            raise HarvestRefused(f"unexpected metric {family.name[:100]!r} ({family.type}) in the result")
        if family.name in gauges:
            raise HarvestRefused(f"metric {family.name} appears twice in the result")
        gauge = gauges[family.name] = Gauge(family.name, family.documentation or family.name, names, registry=reg)
        for sample in family.samples:
            if sample.name != family.name or set(sample.labels) != set(names):
                raise HarvestRefused(f"sample {sample.name[:100]} with labels {sorted(sample.labels)[:5]} does not"
                                     " match the probe's metrics")
            (gauge.labels(**sample.labels) if names else gauge).set(sample.value)
            if sample.name != "dirac_probe_success" or sample.labels.get("check") == "all":
                values.setdefault(sample.name, sample.value)
    run_time, success = values.get("dirac_probe_last_run_timestamp_seconds"), values.get("dirac_probe_success")
    if run_time is None or success is None:
        raise HarvestRefused("the result lacks dirac_probe_last_run_timestamp_seconds or"
                             " dirac_probe_success{check=\"all\"}")
    if not not_before <= run_time <= not_after:
        raise HarvestRefused(f"the result's run time {run_time:.0f} is outside the job's life"
                             f" [{not_before:.0f}, {not_after:.0f}]")
    Gauge(HARVESTED, "1: this result could not be pushed by the probe; the reaper harvested it from the probe"
          " job's output", registry=reg).set(1)
    return Harvest(registry=reg, run_time=run_time, success=success >= 1)
