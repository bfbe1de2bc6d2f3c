"""Label values: DIRAC's fixed status sets, bounded failure reasons, sanitised site, host and owner names."""

from __future__ import annotations

import re
from functools import lru_cache

# DIRACCommon.WorkloadManagementSystem.Client.JobStatus
ACTIVE_STATES = ("Submitting", "Received", "Checking", "Staging", "Scouting", "Waiting", "Matched",
                 "Rescheduled", "Running", "Stalled", "Completing")
FINAL_STATES = ("Done", "Completed", "Failed", "Killed")
GONE_STATES = ("Deleted",)
PLACEHOLDER_SITES = ("ANY", "Multiple", "MultipleInput")  # and Group.<domain> (JobScheduling): is_real_site

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

# Why a life was rescheduled before it ended: the MinorStatus of its "Rescheduled" LoggingInfo record
# (JobWrapperUtilities.rescheduleFailedJob; StalledJobAgent for StalledJobsToRescheduleSites), and who.
_RESCHEDULE_MINOR = {
    "downloading inputsandbox": "input_sandbox",
    "downloading inputsandbox lfn(s)": "input_sandbox",
    "failed downloading inputsandbox": "input_sandbox",
    "failed downloading inputsandbox lfn(s)": "input_sandbox",
    "input data resolution": "input_data",
    "uploading outputs": "output_upload",
    "uploading output sandbox": "output_upload",
    "uploading output data": "output_upload",
    "job wrapper initialization": "job_wrapper",
    "jobwrapper execution": "job_wrapper",
    "could not create working directory": "job_wrapper",
    "working directory already exists": "job_wrapper",
    "job stalled: pilot not running": "stalled",
    "stalling for more than n sec": "stalled",
}
RESCHEDULE_REASONS = (*sorted(set(_RESCHEDULE_MINOR.values())), "job_agent", "stuck_matched", "other")

_NUMBER = re.compile(r"\d+(\.\d+)?")
_SPACES = re.compile(r"\s+")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def is_real_site(label: str) -> bool:
    """A site label that names one DIRAC site: not a placeholder DIRAC sets before matching (ANY, Multiple,
    MultipleInput, and JobScheduling's ``Group.<domain>`` for input data at one domain), not ``invalid``."""
    return label not in PLACEHOLDER_SITES and label != "invalid" and not label.startswith("Group.")


def fail_reason(minor_status: str | None) -> str:
    """Bounded reason code for a Failed job's MinorStatus."""
    if not minor_status:
        return "Other"
    text = _SPACES.sub(" ", _NUMBER.sub("N", str(minor_status))).strip().lower()
    return _REASONS.get(text, "Other")


# DIRAC 9.1's optimizers fail a job with MinorStatus "<Name> optimizer" and the S_ERROR message in
# ApplicationStatus (WorkloadManagementSystem/Executor/Base/OptimizerExecutor.py, processTask).
OPTIMIZER_STAGES = ("JobPath", "JobSanity", "InputData", "JobScheduling")
BEFORE_RUNNING_STAGES = OPTIMIZER_STAGES + ("optimizer", "other")
_OPTIMIZER_MINOR = re.compile(r"(\S+) optimizer")
# Every S_ERROR message the four executors return, their own and what they propagate -> reason codes.
# Variable parts (a VO, a site, a user) are matched by pattern.
_OPTIMIZER_REASONS = tuple((re.compile(pattern, re.DOTALL), code) for pattern, code in (
    # Executor/InputData.py
    (r"Failed to instantiate DataManager for vo .*", "data_manager_unavailable"),
    (r"Failed to instantiate FileCatalog for vo .*", "file_catalog_unavailable"),
    (r"No replica Info available", "no_replica_info"),
    (r"Input data not available", "input_data_not_available"),
    (r"No candidate sites available", "no_candidate_sites"),  # JobMinorStatus.NO_CANDIDATE_SITE_FOUND
    # Executor/JobScheduling.py
    (r"RescheduleCounter has to be an integer", "invalid_reschedule_counter"),
    (r"Impossible site requirement", "impossible_site_requirement"),
    (r"No possible site candidates", "no_site_candidates"),
    (r"Impossible InputData \* Site requirements", "impossible_input_data_site"),
    (r"Site candidates do not have all the input data", "site_candidates_missing_input_data"),
    (r"No destination sites available", "no_destination_sites"),
    (r"Stage not allowed", "stage_not_allowed"),
    (r"Could not determine SEs for site .*", "site_ses_unknown"),
    (r"No Local SEs for site .*", "no_local_ses"),
    (r"Cannot find tape replicas", "no_tape_replicas"),
    # JobScheduling <- StorageManagerClient.getFilesToStage: files absent from the catalog or their SEs
    (r"No such file or directory \( 2 : File not (in FC|at ).*", "input_file_missing"),
    # JobSanity <- SandboxMetadataDB.assignSandboxesToEntities
    (r"Sandbox does not exist or you are not authorized to assign it being .*", "sandbox_not_available"),
    (r"SB Location has to have SEName\|SEPFN form", "invalid_sandbox_location"),
    # every executor <- JobState.getManifest; OptimizerExecutor.setNextOptimizer, storeOptimizerParam
    (r"No manifest for job .*", "no_manifest"),
    (r"Optimizer .* is not in the chain!", "not_in_optimizer_chain"),
    (r"This function can only be called inside the optimizeJob function", "optimizer_internal_error"),
))
OPTIMIZER_REASONS = tuple(code for _, code in _OPTIMIZER_REASONS) + ("Other",)
BEFORE_RUNNING_REASONS = tuple(sorted(set(OPTIMIZER_REASONS) | set(FAIL_REASONS)))


def optimizer_reason(app_status: str | None) -> str:
    """Bounded reason code for the message an optimizer left in ApplicationStatus; ``Other`` if unknown."""
    text = (app_status or "").strip()
    return next((code for pattern, code in _OPTIMIZER_REASONS if pattern.fullmatch(text)), "Other")


def reschedule_reason(record: tuple | None, last_status: str | None) -> str:
    """Bounded reason of a reschedule from the life's last "Rescheduled" record (Status, MinorStatus, ...):
    the JobWrapper's step that failed; ``job_agent`` when only the ApplicationStatus says why
    (JobAgent._rescheduleFailedJob); without such a record, ``stuck_matched`` for a life last Matched
    (StalledJobAgent._kickStuckJobs after MatchedTime), else ``other``."""
    if record is None:
        return "stuck_matched" if last_status == "Matched" else "other"
    minor = record[1]
    if not minor or minor == "idem":
        return "job_agent"
    text = _SPACES.sub(" ", _NUMBER.sub("N", str(minor))).strip().lower()
    return _RESCHEDULE_MINOR.get(text, "other")


def before_running(minor_status: str | None, app_status: str | None) -> tuple[str, str]:
    """(stage, reason) of a job life that failed before it ran: the optimizer and the code of its message,
    or ``other`` and the usual reason of the MinorStatus."""
    m = _OPTIMIZER_MINOR.fullmatch((minor_status or "").strip())
    if m is None:
        return "other", fail_reason(minor_status)
    stage = m.group(1) if m.group(1) in OPTIMIZER_STAGES else "optimizer"
    return stage, optimizer_reason(app_status)


@lru_cache(maxsize=65536)
def owner_label(name: str | None) -> str:
    """A DIRAC user or group name as it is when it looks like one; anything else (a DN, free text) is
    ``invalid``."""
    return name if isinstance(name, str) and _OWNER.fullmatch(name) else "invalid"


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
