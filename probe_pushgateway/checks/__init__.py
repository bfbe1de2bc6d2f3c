"""Pluggable probe checks and the runner that gives each one a bounded time.

A check is a module with ``NAME``, ``TIMEOUT`` (seconds), ``DEFAULTS`` (its options), ``REASONS``
(the bounded set of reason codes it can return besides ``ok``) and ``run(opts, ctx) -> Outcome``.
``opts`` are the merged options plus ``timeout`` (the effective time the check may take). Outcomes:
``ok`` (reason ``ok``), ``failed`` (the site cannot run BES3 jobs well) or ``unknown`` (the check could
not run: missing tool, nothing configured). Reasons every check may get from the runner:
``timeout`` (failed: ran past its time), ``deadline`` (unknown: the global deadline left no time),
``error`` (unknown: the check itself crashed, a probe bug).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"
COMMON_REASONS = ("ok", "timeout", "deadline", "error")
GRACE = 2.0  # the runner waits this much past a check's own timeout before giving up on it


class Outcome(NamedTuple):
    """What a check found: status, bounded reason code, free-text detail (logged, never a label)."""

    status: str
    reason: str
    detail: str = ""


def ok(detail: str = "") -> Outcome:
    return Outcome(OK, "ok", detail)


def failed(reason: str, detail: str = "") -> Outcome:
    return Outcome(FAILED, reason, detail)


def unknown(reason: str, detail: str = "") -> Outcome:
    return Outcome(UNKNOWN, reason, detail)


@dataclass
class Context:
    """What checks may need from the run: work dir, environment, the Pushgateway for clock/tcp."""

    workdir: str
    env: Dict[str, str]
    pushgateway_url: str | None = None
    ssl_context: Any = None


@dataclass
class Result:
    """One check's outcome with its name and duration."""

    name: str
    status: str
    reason: str
    duration: float
    detail: str = ""


def modules() -> Dict[str, Any]:
    """All built-in checks by name, in run order."""
    from . import clock, cvmfs, environment, proxy, software, tcp

    mods = (environment, cvmfs, software, tcp, proxy, clock)
    return {m.NAME: m for m in mods}


def run_one(module: Any, opts: Dict[str, Any], ctx: Context, budget: float) -> Result:
    """Run one check in a worker thread, bounded by min(its timeout, ``budget``) plus a grace."""
    name = module.NAME
    if budget <= 0.5:
        return Result(name, UNKNOWN, "deadline", 0.0, "global --timeout reached before this check")
    limit = min(float(opts.get("timeout") or module.TIMEOUT), budget)
    opts = dict(opts, timeout=limit)
    box: List[Outcome] = []

    def target() -> None:
        try:
            box.append(module.run(opts, ctx))
        except Exception as exc:  # a bug in a check must not take the others down
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            box.append(unknown("error", tb))

    start = time.monotonic()
    worker = threading.Thread(target=target, name=f"check-{name}", daemon=True)
    worker.start()
    worker.join(limit + GRACE)
    duration = time.monotonic() - start
    if not box:
        return Result(name, FAILED, "timeout", duration, f"no answer within {limit:.0f}s")
    out = box[0]
    allowed = set(COMMON_REASONS) | set(module.REASONS)
    if out.status not in (OK, FAILED, UNKNOWN) or out.reason not in allowed:
        return Result(name, UNKNOWN, "error", duration, f"check returned {out.status}/{out.reason}")
    return Result(name, out.status, out.reason, duration, out.detail)


def run_checks(selected: Dict[str, Dict[str, Any]], ctx: Context, deadline: float) -> List[Result]:
    """Run the selected checks (name -> merged options) one after the other until ``deadline``."""
    mods = modules()
    results = []
    for name, opts in selected.items():
        results.append(run_one(mods[name], opts, ctx, deadline - time.monotonic()))
    return results


def abandoned_threads() -> bool:
    """True if a check thread is still running (stuck in a system call, e.g. a hung mount)."""
    return any(t.name.startswith("check-") and t.is_alive() for t in threading.enumerate())
