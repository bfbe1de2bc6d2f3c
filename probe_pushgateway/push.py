"""Turn check results into the probe's metrics and deliver them to the Pushgateway.

One dedicated registry per run, pushed with PUT to the group ``job=bes_probe, site, ce`` so each run
replaces its target's previous result. HTTPS with a CA file, basic auth and an optional client
certificate; bounded retries with back-off on connection errors and HTTP 5xx.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, List

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

from .checks import FAILED, OK, Result

JOB = "bes_probe"


@dataclass
class RunInfo:
    """What a run was about, for the labels and the timestamps."""

    site: str
    ce: str
    host: str
    job_id: str
    duration: float
    finished: float


@dataclass
class PushTarget:
    """Where and how to push; ``password`` is read from a file by the CLI, never from argv."""

    url: str
    ca_file: str | None = None
    user: str | None = None
    password: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0

    @property
    def base(self) -> str:
        url = self.url if "//" in self.url else "http://" + self.url
        return url.rstrip("/")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (our CA, else the system's), with the client cert if given."""
        if not self.base.startswith("https://"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx

    def headers(self) -> List[tuple]:
        if self.user is None or self.password is None:
            return []
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return [("Authorization", f"Basic {token}")]


class PushError(Exception):
    """The result could not be delivered; ``retriable`` says whether trying again could help."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def all_ok(results: List[Result]) -> bool:
    """The run passes when no check failed (``unknown`` checks do not fail it)."""
    return all(r.status != FAILED for r in results)


def build_registry(results: List[Result], info: RunInfo,
                   last_success: float | None) -> CollectorRegistry:
    """The metrics of one run (see docs/metrics.md), in a fresh registry."""
    reg = CollectorRegistry()
    success = Gauge("dirac_probe_success", "1 if the check passed, 0 if it failed (absent if unknown); "
                    "check=all: no check failed", ["check"], registry=reg)
    duration = Gauge("dirac_probe_duration_seconds", "Time the check took; check=all: the whole run",
                     ["check"], registry=reg)
    reason = Gauge("dirac_probe_check_info", "1 for the check's bounded reason code (ok when it passed)",
                   ["check", "reason"], registry=reg)
    for r in results:
        if r.status != "unknown":
            success.labels(r.name).set(1 if r.status == OK else 0)
        duration.labels(r.name).set(round(r.duration, 6))
        reason.labels(r.name, r.reason).set(1)
    passed = all_ok(results)
    success.labels("all").set(1 if passed else 0)
    duration.labels("all").set(round(info.duration, 6))
    Gauge("dirac_probe_last_run_timestamp_seconds", "When this run finished",
          registry=reg).set(info.finished)
    if passed:
        last_success = info.finished
    if last_success is not None:
        Gauge("dirac_probe_last_success_timestamp_seconds", "Last run where all checks passed",
              registry=reg).set(last_success)
    Gauge("dirac_probe_info", "Which worker node produced this result", ["host"],
          registry=reg).labels(info.host).set(1)
    if info.job_id.isdigit():  # a value, not a label: a label would make a new series every run
        Gauge("dirac_probe_job_id", "DIRAC job ID of the probe job that produced this result",
              registry=reg).set(int(info.job_id))
    return reg


def exposition(reg: CollectorRegistry) -> str:
    """The registry in Prometheus text format."""
    return generate_latest(reg).decode()


def _connection_error(target: PushTarget, exc: OSError) -> PushError:
    """Classify a connection-level failure: TLS trust/credential problems are final, others retried."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return PushError(f"TLS verification of {target.base} failed ({reason.verify_message}): "
                         f"check --ca-file", retriable=False)
    if isinstance(reason, ssl.SSLError) and "ALERT" in str(getattr(reason, "reason", "")):
        return PushError(f"TLS handshake with {target.base} refused ({reason.reason}): check "
                         f"--client-cert/--client-key", retriable=False)
    if isinstance(reason, ssl.SSLEOFError):
        return PushError(f"{target.base} closed the TLS connection (if it requires a client certificate: "
                         f"check --client-cert/--client-key)", retriable=True)
    return PushError(f"cannot reach {target.base}: {reason}", retriable=True)


def _handler(target: PushTarget) -> Callable:
    """A prometheus_client push handler doing TLS (CA, client cert) and basic auth together."""
    ctx = target.ssl_context()

    def handler(url, method, timeout, headers, data):
        def handle() -> None:
            req = urllib.request.Request(url, data=data, method=method)
            for key, value in list(headers) + target.headers():
                req.add_header(key, value)
            try:
                with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                body = exc.read(300).decode(errors="replace").strip().replace("\n", " ")
                if exc.code in (401, 403):
                    raise PushError(f"Pushgateway refused the credentials (HTTP {exc.code}): check "
                                    f"--push-user and --password-file", retriable=False) from None
                raise PushError(f"Pushgateway answered HTTP {exc.code}: {body[:200]}",
                                retriable=exc.code >= 500) from None
            except OSError as exc:  # URLError, bare SSL errors (TLS 1.3 alerts come late), timeouts
                raise _connection_error(target, exc) from None

        return handle

    return handler


def push(target: PushTarget, site: str, ce: str, reg: CollectorRegistry, deadline: float,
         log: Callable[[str], None] = lambda s: None) -> int:
    """PUT ``reg`` to the group (job, site, ce); retries bounded by ``target.retries`` and ``deadline``
    (a monotonic time; the first attempt always happens). Returns the number of attempts made."""
    handler = _handler(target)
    attempt = 0
    delay = target.backoff
    while True:
        attempt += 1
        timeout = max(1.0, min(target.timeout, deadline - time.monotonic()))
        try:
            push_to_gateway(target.base, job=JOB, registry=reg, grouping_key={"site": site, "ce": ce},
                            timeout=timeout, handler=handler)
            return attempt
        except PushError as exc:
            if not exc.retriable or attempt > target.retries or time.monotonic() + delay >= deadline:
                raise PushError(f"{exc} (after {attempt} attempt{'s' if attempt > 1 else ''})",
                                exc.retriable) from None
            log(f"push attempt {attempt} failed: {exc}; retrying in {delay:.1f}s")
            time.sleep(delay)
            delay *= 2


def previous_last_success(target: PushTarget, site: str, ce: str) -> float | None:
    """``dirac_probe_last_success_timestamp_seconds`` of this group as the Pushgateway has it now.

    Read through ``/api/v1/metrics`` (one short attempt; None on any problem), so a failed run can
    carry the last success forward while still replacing the whole group with PUT.
    """
    req = urllib.request.Request(target.base + "/api/v1/metrics")
    for key, value in target.headers():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=min(5.0, target.timeout),
                                    context=target.ssl_context()) as resp:
            groups = json.loads(resp.read(32 << 20))["data"]
        for group in groups:
            labels = group.get("labels", {})
            if labels.get("job") == JOB and labels.get("site") == site and labels.get("ce") == ce:
                family = group.get("dirac_probe_last_success_timestamp_seconds")
                if family:
                    return float(family["metrics"][0]["value"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, ssl.SSLError):
        return None
    return None
