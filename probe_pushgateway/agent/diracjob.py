"""DIRAC side of the agents: the minimal local configuration, initialisation, and probe job building.

DIRAC is imported lazily (only the agents need it; the exporter never does). Install it with
``scripts/install-dirac.sh``.
"""

from __future__ import annotations

import io
import os
import shlex
from pathlib import Path
from typing import Any, Iterable

from .config import render
from .harvest import PROBE_LOG
from .targets import Target

_initialized: set[tuple] = set()


class DiracError(Exception):
    """DIRAC is missing, could not be initialised, or refused a request (one-line message)."""


def one_line(message: Any, limit: int = 300) -> str:
    """Collapse a DIRAC message (often multi-line, sometimes a dict) into one short line."""
    if isinstance(message, dict):
        message = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in message.items())
    text = " ".join(str(message).split())
    # DIRAC's API._reportError wraps the real message in "Problem with X() call: Arguments: ... Message: ..."
    if "Message: " in text and text.startswith("Problem with"):
        text = text.split("Message: ", 1)[1]
    return text[:limit] + ("..." if len(text) > limit else "")


def check_result(result: Any, what: str) -> Any:
    """Return the ``Value`` of a DIRAC ``S_OK``; raise :class:`DiracError` for an ``S_ERROR``."""
    if not isinstance(result, dict) or "OK" not in result:
        raise DiracError(f"{what}: DIRAC returned {str(result)[:100]!r} instead of S_OK/S_ERROR")
    if not result["OK"]:
        raise DiracError(f"{what}: {one_line(result.get('Message', 'unknown error'))}")
    return result.get("Value")


def local_cfg_text(targets: Iterable[Target], setup: str = "BESProbe", vo: str = "bes") -> str:
    """A minimal DIRAC configuration listing the targets' sites and CEs (``Resources/Sites/<Domain>``).

    Names were validated by the config loader (letters, digits, ``.-_:``), so no quoting is needed.
    The first site becomes ``/LocalSite/Site`` (what the local job wrapper reports as its site).
    """
    sites: dict[str, list[str]] = {}
    for t in targets:
        ces = sites.setdefault(t.site, [])
        if t.ce and t.ce not in ces:
            ces.append(t.ce)
    if not sites:
        raise DiracError("no targets to write into the local DIRAC configuration")
    domains: dict[str, list[str]] = {}
    for site in sites:
        domains.setdefault(site.split(".", 1)[0], []).append(site)
    out = ["DIRAC", "{", f"  Setup = {setup}", f"  VirtualOrganization = {vo}", "}",
           "LocalSite", "{", f"  Site = {next(iter(sites))}", "}",
           "Resources", "{", "  Sites", "  {"]
    for domain, names in domains.items():
        out += [f"    {domain}", "    {"]
        for site in names:
            out += [f"      {site}", "      {", f"        Name = {site}"]
            if sites[site]:
                out.append(f"        CE = {', '.join(sites[site])}")
            # An empty CEs section keeps DIRAC's getSiteCEMapping from logging "Wrong configuration".
            out += ["        CEs", "        {"]
            for ce in sites[site]:
                out += [f"          {ce}", "          {", "            CEType = HTCondorCE", "          }"]
            out.append("        }")
            out.append("      }")
        out.append("    }")
    out += ["  }", "}"]
    return "\n".join(out) + "\n"


def write_local_cfg(targets: Iterable[Target], path: Path, setup: str = "BESProbe", vo: str = "bes") -> Path:
    """Write :func:`local_cfg_text` to ``path`` (atomically) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(local_cfg_text(targets, setup, vo))
    os.replace(tmp, path)
    return path


def initialize(config_files: Iterable[str | os.PathLike] = (), require_auth: bool = True,
               log_level: str = "ERROR") -> None:
    """``DIRAC.initialize()`` once per process and set of cfg files; one-line :class:`DiracError` on failure."""
    files = [str(f) for f in config_files]
    for f in files:
        if not os.path.isfile(f):
            raise DiracError(f"DIRAC configuration file {f} does not exist")
    key = (tuple(files), require_auth)
    if key in _initialized:
        return
    try:
        import DIRAC
    except ImportError as exc:
        raise DiracError(f"DIRAC is not installed in this Python ({exc}); run scripts/install-dirac.sh") from None
    try:
        DIRAC.initialize(require_auth=require_auth, extra_config_files=files)
    except Exception as exc:  # noqa: BLE001 - DIRACInitError and whatever the CS client raises
        raise DiracError(f"DIRAC initialisation failed: {one_line(exc)}") from None
    DIRAC.gLogger.setLevel(log_level)
    _initialized.add(key)


def configured_sites() -> dict[str, list[str]]:
    """Every site of DIRAC's configuration with its CEs (for ``targets: all``)."""
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getSiteCEMapping

    return check_result(getSiteCEMapping(), "reading the sites from DIRAC's configuration")


def target_probe(probe: dict, target: Target) -> dict:
    """The probe section for one target: ``{site}`` and ``{ce}`` in ``probe.config`` name its own file."""
    config = probe.get("config")
    if not config or "{" not in config:
        return probe
    return {**probe, "config": render(config, target.site, target.ce_label)}


# The probes' own Pushgateway settings (agents' ``pushgateway.probe_*`` keys) -> bes-probe's options.
PROBE_PUSH_OPTIONS = {"probe_user": "--push-user", "probe_password_file": "--password-file",
                      "probe_ca_file": "--ca-file", "probe_client_cert": "--client-cert",
                      "probe_client_key": "--client-key"}


def probe_push(push: dict | None, target: Target) -> dict[str, str]:
    """The ``pushgateway.probe_*`` settings given, for one target (``{site}``/``{ce}`` replaced): a per-site
    user and password file, so each site's probes carry only their own credential."""
    return {key: render(push[key], target.site, target.ce_label) for key in PROBE_PUSH_OPTIONS
            if (push or {}).get(key)}


def probe_arguments(target: Target, probe: dict, pushgateway_url: str, push: dict[str, str] | None = None
                    ) -> list[str]:
    """The probe's command line inside the job (run from the job's directory, files from the sandbox)."""
    args = [probe["python"], Path(probe["pyz"]).name, "--site", target.site]
    if target.ce:
        args += ["--ce", target.ce]
    args += ["--pushgateway", pushgateway_url]
    for key, value in (push or {}).items():
        args += [PROBE_PUSH_OPTIONS[key], value if key == "probe_user" else Path(value).name]
    if probe.get("config"):
        args += ["--config.file", Path(probe["config"]).name]
    return args + list(probe.get("args") or [])


def build_probe_job(target: Target, probe: dict, pushgateway_url: str, push: dict[str, str] | None = None):
    """A DIRAC ``Job`` for one target: name, job group, destination (site, CE), CPU time, sandbox, executable.

    ``push`` (:func:`probe_push`) adds the probe's own Pushgateway credential files to the input sandbox.
    Raises :class:`DiracError` when DIRAC rejects a value (e.g. a site or CE missing from its configuration).
    """
    from DIRAC.Interfaces.API.Job import Job

    probe = target_probe(probe, target)

    job = Job()
    check_result(job.setName(target.job_name), f"{target}: job name")
    check_result(job.setJobGroup(probe["job_group"]), f"{target}: job group")
    if target.ce:
        from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getCESiteMapping

        mapping = check_result(getCESiteMapping(target.ce), f"{target}: CE lookup")
        if target.ce not in mapping:
            raise DiracError(f"{target}: CE {target.ce} is not in DIRAC's configuration "
                             f"(Resources/Sites/*/{target.site}/CEs)")
        if mapping[target.ce] != target.site:
            raise DiracError(f"{target}: CE {target.ce} belongs to site {mapping[target.ce]} in DIRAC's "
                             f"configuration, not {target.site}")
        check_result(job.setDestinationCE(target.ce, target.site), f"{target}: destination")
    else:
        result = job.setDestination(target.site)
        if not result["OK"]:
            raise DiracError(f"{target}: site {target.site} is not in DIRAC's configuration (Resources/Sites)")
    check_result(job.setCPUTime(int(probe["cpu_time"])), f"{target}: CPU time")
    sandbox = [str(Path(probe["pyz"]).resolve())]
    if probe.get("config"):
        sandbox.append(str(Path(probe["config"]).resolve()))
    sandbox += [str(Path(v).resolve()) for k, v in (push or {}).items() if k != "probe_user"]
    check_result(job.setInputSandbox(sandbox), f"{target}: input sandbox")
    argv = probe_arguments(target, probe, pushgateway_url, push)
    # The probe's stdout (its result, when its own push failed) goes to PROBE_LOG, in the output sandbox.
    check_result(job.setExecutable(argv[0], arguments=shlex.join(argv[1:]), logFile=PROBE_LOG),
                 f"{target}: executable")
    check_result(job.setOutputSandbox([PROBE_LOG]), f"{target}: output sandbox")
    if job.errorDict:
        raise DiracError(f"{target}: {one_line(job.errorDict)}")
    return job


def job_jdl(job) -> str:
    """The JDL DIRAC sends to its WMS for ``job`` (as ``Dirac.submitJob`` renders it)."""
    return job._toJDL(jobDescriptionObject=io.StringIO(job._toXML()))  # noqa: SLF001 - DIRAC's own path
