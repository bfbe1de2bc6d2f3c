"""System clock sanity: plausible, and close to a reference server's clock (HTTP ``Date``).

The reference is ``reference_url`` or, by default, the Pushgateway's ``/-/healthy``. The ``Date``
header has one-second resolution, so the offset is estimated from the request's midpoint and
offsets below about one second plus half the round trip cannot be seen.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any, Dict

from . import Context, Outcome, failed, ok, unknown

NAME = "clock"
TIMEOUT = 10.0
DEFAULTS: Dict[str, Any] = {"reference_url": None, "max_offset_seconds": 30.0}
REASONS = ("offset", "implausible", "no_reference")
EARLIEST = 1704067200.0  # 2024-01-01T00:00:00Z: a clock before this is wrong whatever the reference


def server_date(url: str, timeout: float, ssl_context: Any) -> float | None:
    """The reference's ``Date`` header as a Unix time (an HTTP error answer still carries one)."""
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ssl_context) as resp:
            header = resp.headers.get("Date")
    except urllib.error.HTTPError as exc:
        header = exc.headers.get("Date") if exc.headers else None
    if not header:
        return None
    return parsedate_to_datetime(header).timestamp()


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    now = time.time()
    if now < EARLIEST:
        return failed("implausible", f"system time {now:.0f} is before 2024")
    url = opts["reference_url"]
    if not url and ctx.pushgateway_url:
        url = ctx.pushgateway_url.rstrip("/") + "/-/healthy"
    if not url:
        return unknown("no_reference", "no checks.clock.reference_url and no Pushgateway")
    if "//" not in url:
        url = "http://" + url
    t0 = time.time()
    try:
        ref = server_date(url, max(1.0, opts["timeout"] - 1), ctx.ssl_context if url.startswith("https") else None)
    except (OSError, ValueError) as exc:
        return unknown("no_reference", f"{url}: {exc}")
    t1 = time.time()
    if ref is None:
        return unknown("no_reference", f"{url} sent no Date header")
    offset = (t0 + t1) / 2 - (ref + 0.5)
    detail = f"offset {offset:+.1f}s against {url} (max {opts['max_offset_seconds']:.0f}s)"
    if abs(offset) > opts["max_offset_seconds"]:
        return failed("offset", detail)
    return ok(detail)
