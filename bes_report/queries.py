"""The PromQL bes-report sends, and the series it reads (see docs/report.md for the formulas).

Time windows are written in milliseconds so that any period fits; a window of length L evaluated at
``t`` holds the samples in [t - L, t] (Prometheus 2.x ranges are closed), so state samples of the bin
[a, b) are read at ``b - 1ms`` over ``L - 1ms``.
"""

from __future__ import annotations

import json
import math

STATE_RECORD = "site:dirac_probe_state:bool"  # alerts/src/probes.yml: 1 for the site's ARGO state, label `state`
STATES = ("up", "critical", "unknown", "missing", "downtime")
BLACK_HOLE_ALERT = "DiracBlackHoleHost"  # alerts/src/hosts.yml: its condition held for its `for:`
BLACK_HOLE_RECORD = "site_host:dirac_host_black_hole:bool"  # else this rule (where loaded), held once
NOT_A_SITE = "ANY|Multiple|MultipleInput|Group[.].+|invalid"  # DIRAC's placeholders: alerts/thresholds.yml not_a_site
JOBS = "dirac_jobs_finished_total"
FAILED = "dirac_jobs_failed_total"
PILOTS = "dirac_pilots_finished_total"
SITE_STATUS = "dirac_site_status"
HOST_JOBS = "dirac_host_jobs_finished_total"  # per-node counters (DIRAC <= 9.0 schemas)


def ms(seconds: float) -> str:
    """A PromQL duration in whole milliseconds."""
    return f"{round(seconds * 1000)}ms"


def selector(instance: str | None) -> str:
    """Label matchers of the exporter's series: real sites, one DIRAC instance if given."""
    parts = [f'site!~"{NOT_A_SITE}"']
    if instance is not None:
        parts.append(f"dirac_instance={json.dumps(instance)}")
    return ",".join(parts)


def states(window: float) -> str:
    """Samples of each (site, state) in a window: one per rule evaluation spent in that state."""
    return f"sum by (site, state) (sum_over_time({STATE_RECORD}[{ms(window - 0.001)}]))"


def increase(metric: str, by: str, instance: str | None, window: float) -> str:
    """How much ``metric`` grew in a window, summed by ``by`` (counter resets handled by increase())."""
    return f"sum by ({by}) (increase({metric}{{{selector(instance)}}}[{ms(window)}]))"


def black_hole(condition: str, hold: float, step: float, window: float) -> str:
    """Time, in steps, each node was a black hole: the condition (the alert's expression, or the recording
    rule) held at ``n`` evaluations in a row, as the alert needs to fire after its ``for:`` of ``hold`` s."""
    n = (math.ceil(hold / step - 1e-9) if hold > 0 else 0) + 1
    held = f"count_over_time(({condition})[{ms((n - 0.5) * step)}:{ms(step)}]) >= {n}"
    return f"sum by (dirac_instance, site, host) (count_over_time(({held})[{ms(window - 0.001)}:{ms(step)}]))"
