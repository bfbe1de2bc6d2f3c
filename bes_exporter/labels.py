"""Label values: DIRAC's fixed status sets, bounded failure reasons, sanitised site and host names."""

from __future__ import annotations

import re
from functools import lru_cache

# DIRACCommon.WorkloadManagementSystem.Client.JobStatus
ACTIVE_STATES = ("Submitting", "Received", "Checking", "Staging", "Scouting", "Waiting", "Matched",
                 "Rescheduled", "Running", "Stalled", "Completing")
FINAL_STATES = ("Done", "Completed", "Failed", "Killed")
GONE_STATES = ("Deleted",)
PLACEHOLDER_SITES = ("ANY", "Multiple", "MultipleInput")

SITE_STATES = ("Active", "Banned", "Degraded", "Probing", "Error", "Unknown")

# Pilot statuses (PilotAgentsDB); Scheduled is deprecated and read as Submitted.
PILOT_ACTIVE_STATES = ("Submitted", "Waiting", "Running", "Unknown")
PILOT_FINAL_STATES = ("Done", "Failed", "Aborted", "Deleted")

# DIRAC's JobMinorStatus failure strings -> bounded reason codes. Numbers are replaced by N first.
_REASONS = {
    "application finished with errors": "application_error",
    "application not found": "application_not_found",
    "application thread failed": "application_thread_failed",
    "application thread did not complete": "application_thread_failed",
    "job stalled: pilot not running": "stalled_pilot_not_running",
    "watchdog identified this job as stalled": "watchdog_stalled",
    "stalling for more than n sec": "stalling",
    "input data not available": "input_data_not_available",
    "failed downloading inputsandbox": "input_sandbox_download",
    "failed downloading inputsandbox lfn(s)": "input_sandbox_download",
    "pending requests": "pending_requests",
    "failed sending requests": "failed_sending_requests",
    "job has reached the cpu limit of the queue": "cpu_limit",
    "job has exceeded maximum wall clock time": "wall_clock_limit",
    "job has insufficient disk space to continue": "insufficient_disk",
    "exception during execution": "exception_during_execution",
    "no candidate sites available": "no_candidate_sites",
    "marked for termination": "marked_for_termination",
    "received kill signal": "received_kill_signal",
    "illegal job jdl": "illegal_jdl",
    "payload failed": "payload_failed",
    "maximum of reschedulings reached": "max_reschedulings",
}
FAIL_REASONS = tuple(sorted(set(_REASONS.values()))) + ("Other",)

_NUMBER = re.compile(r"\d+(\.\d+)?")
_SPACES = re.compile(r"\s+")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def fail_reason(minor_status: str | None) -> str:
    """Bounded reason code for a Failed job's MinorStatus."""
    if not minor_status:
        return "Other"
    text = _SPACES.sub(" ", _NUMBER.sub("N", str(minor_status))).strip().lower()
    return _REASONS.get(text, "Other")


@lru_cache(maxsize=65536)  # called per row: the same few thousand names again and again
def site_label(site: str | None) -> str:
    """A DIRAC site name as it is, when it looks like one; anything else is ``invalid``."""
    site = (site or "").strip()
    return site if _SITE.match(site) else "invalid"


@lru_cache(maxsize=65536)
def ce_label(ce: str | None) -> str:
    """A CE host name (PilotAgents.DestinationSite), normalised like host names."""
    return host_label(ce)


@lru_cache(maxsize=65536)
def host_label(host: str | None) -> str:
    """A worker-node name, lower case and stripped; anything that is not a host name is ``unknown``."""
    if not isinstance(host, str) or not host.isascii():  # before lower(): the Kelvin sign lowers to "k"
        return "unknown"
    host = host.strip().lower().rstrip(".")
    if not host or len(host) > 253:
        return "unknown"
    if all(_HOST_LABEL.fullmatch(part) for part in host.split(".")):  # fullmatch: "$" would pass "a\n"
        return host
    return "unknown"
