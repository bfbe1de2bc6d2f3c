"""Failures before running: DIRAC 9.1's optimizer strings -> (stage, reason), one case per DIRAC string, and
a check against DIRAC's own source that no S_ERROR message of the four executors is left unmapped."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bes_exporter.labels import BEFORE_RUNNING_REASONS, BEFORE_RUNNING_STAGES, before_running, optimizer_reason

# (ApplicationStatus as DIRAC writes it, reason code, where DIRAC 9.1 returns it)
MESSAGES = [
    ("Failed to instantiate DataManager for vo bes", "data_manager_unavailable", "InputData._resolveInputData"),
    ("Failed to instantiate FileCatalog for vo bes", "file_catalog_unavailable", "InputData._resolveInputData"),
    ("No replica Info available", "no_replica_info", "InputData.__checkReplicas"),
    ("Input data not available", "input_data_not_available", "InputData.__checkReplicas"),
    ("No candidate sites available", "no_candidate_sites", "InputData._getSiteCandidates"),
    ("RescheduleCounter has to be an integer", "invalid_reschedule_counter", "JobScheduling.optimizeJob"),
    ("Impossible site requirement", "impossible_site_requirement", "JobScheduling.__getSitesRequired"),
    ("No possible site candidates", "no_site_candidates", "JobScheduling.optimizeJob"),
    ("Impossible InputData * Site requirements", "impossible_input_data_site", "JobScheduling.optimizeJob"),
    ("Site candidates do not have all the input data", "site_candidates_missing_input_data",
     "JobScheduling.optimizeJob"),
    ("No destination sites available", "no_destination_sites", "JobScheduling.optimizeJob"),
    ("Stage not allowed", "stage_not_allowed", "JobScheduling.optimizeJob"),
    ("Could not determine SEs for site BES.IHEP-PBS.cn", "site_ses_unknown", "JobScheduling.__preRequestStaging"),
    ("No Local SEs for site BES.IHEP-PBS.cn", "no_local_ses", "JobScheduling.__preRequestStaging"),
    ("Cannot find tape replicas", "no_tape_replicas", "JobScheduling.__preRequestStaging"),
    ("No such file or directory ( 2 : File not in FC)", "input_file_missing",
     "JobScheduling.optimizeJob <- StorageManagerClient.getFilesToStage"),
    ("No such file or directory ( 2 : File not at IHEP-DST,IHEP-USER),No such file or directory ( 2 : File not in FC)",
     "input_file_missing", "JobScheduling.optimizeJob <- getFilesToStage, several reasons joined"),
    ("Sandbox does not exist or you are not authorized to assign it being alice@bes_user", "sandbox_not_available",
     "JobSanity.checkInputSandbox <- SandboxMetadataDB.assignSandboxesToEntities"),
    ("SB Location has to have SEName|SEPFN form", "invalid_sandbox_location",
     "JobSanity.checkInputSandbox <- SandboxMetadataDB.assignSandboxesToEntities"),
    ("No manifest for job 1234", "no_manifest", "every executor <- JobState.getManifest"),
    ("Optimizer JobScheduling is not in the chain!", "not_in_optimizer_chain", "OptimizerExecutor.setNextOptimizer"),
    ("This function can only be called inside the optimizeJob function", "optimizer_internal_error",
     "OptimizerExecutor.storeOptimizerParam"),
]


@pytest.mark.parametrize(("message", "code", "where"), MESSAGES, ids=[m[0][:50] for m in MESSAGES])
def test_each_dirac_optimizer_message_has_its_code(message, code, where):
    assert optimizer_reason(message) == code, where
    assert code in BEFORE_RUNNING_REASONS


@pytest.mark.parametrize(("minor", "stage"), [
    ("JobPath optimizer", "JobPath"), ("JobSanity optimizer", "JobSanity"), ("InputData optimizer", "InputData"),
    ("JobScheduling optimizer", "JobScheduling"), ("BESDataCheck optimizer", "optimizer"),
])
def test_stage_is_the_optimizer_name(minor, stage):
    assert before_running(minor, "No possible site candidates") == (stage, "no_site_candidates")
    assert before_running(minor, "a message nobody mapped") == (stage, "Other")


@pytest.mark.parametrize(("minor", "reason"), [
    ("Maximum of reschedulings reached", "max_reschedulings"),  # JobDB.rescheduleJob
    ("Illegal Job JDL", "illegal_jdl"),
    ("Failed", "Other"),  # OptimizationMind.exec_taskError: the executor's error as MinorStatus
    ("", "Other"), (None, "Other"), ("optimizer", "Other"), ("Job Sanity optimizer", "Other"),
])
def test_other_failures_before_running_keep_the_usual_reason(minor, reason):
    assert before_running(minor, "No possible site candidates") == ("other", reason)


def _dirac_source(relative: str) -> ast.Module:
    DIRAC = pytest.importorskip("DIRAC", reason="DIRAC is not installed here; run `make dirac` (make test does)")
    return ast.parse((Path(DIRAC.__file__).parent / "WorkloadManagementSystem" / relative).read_text())


def _messages(tree: ast.AST) -> list[str]:
    """The S_ERROR messages in ``tree``: literals, f-strings with their fields as "X", JobMinorStatus names."""
    from DIRAC.WorkloadManagementSystem.Client import JobMinorStatus

    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "S_ERROR" and node.args):
            continue
        arg = node.args[-1]
        if isinstance(arg, ast.Constant):
            out.append(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "X" for v in arg.values))
        elif isinstance(arg, ast.Attribute) and getattr(arg.value, "id", None) == "JobMinorStatus":
            out.append(getattr(JobMinorStatus, arg.attr))
        else:  # JobScheduling's S_ERROR(error): getFilesToStage's reasons, in MESSAGES
            assert isinstance(arg, ast.Name), ast.unparse(arg)
    return out


def test_every_message_of_diracs_four_executors_is_mapped():
    """Read from DIRAC's installed source, so a message a new DIRAC adds fails here until it is mapped."""
    messages = []
    for name in ("InputData", "JobScheduling", "JobPath", "JobSanity"):
        messages += _messages(_dirac_source(f"Executor/{name}.py"))
    base = _dirac_source("Executor/Base/OptimizerExecutor.py")
    for fn in ast.walk(base):  # the base class's functions an executor's optimizeJob calls
        if isinstance(fn, ast.FunctionDef) and fn.name in ("setNextOptimizer", "storeOptimizerParam",
                                                          "retrieveOptimizerParam"):
            messages += _messages(fn)
    assert len(messages) >= 20, messages
    unmapped = sorted({m for m in messages if optimizer_reason(m) == "Other"})
    assert not unmapped, f"map these DIRAC messages in bes_exporter/labels.py: {unmapped}"
    assert {optimizer_reason(m) for m in messages} <= {code for _, code, _ in MESSAGES}


def test_labels_are_bounded():
    for minor in ("JobSanity optimizer", "x" * 300 + " optimizer", "Maximum of reschedulings reached", "\n"):
        for app in (None, "", "Input data not available", "Input data not available\nfor 3 files", "é" * 10):
            stage, reason = before_running(minor, app)
            assert stage in BEFORE_RUNNING_STAGES and reason in BEFORE_RUNNING_REASONS, (minor, app)
