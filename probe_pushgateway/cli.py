"""``bes-probe``: run worker-node checks and push the result to a Prometheus Pushgateway.

Exit codes: 0 all checks passed (or were unknown), 1 a check failed, 2 the push failed (the result
is then printed to stdout in exposition format between ``# bes-probe result`` marker lines),
3 usage or configuration error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any, Dict, List

from . import checks as checks_mod
from .config import (
    PUSH_DEFAULTS,
    ConfigError,
    check_allowed,
    check_options,
    load_file,
    parse_allowed_sites,
    read_allowed_sites_file,
    read_secret,
    sanitize_label,
    validate_label,
    validate_top,
)

EXIT_OK, EXIT_CHECK_FAILED, EXIT_PUSH_FAILED, EXIT_USAGE = 0, 1, 2, 3
DEFAULT_TIMEOUT = 300.0
BEGIN_MARK = "# bes-probe result"
END_MARK = "# end bes-probe result"


def log(msg: str) -> None:
    print(f"bes-probe: {msg}", file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see bes-probe --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bes-probe", description="Check a worker node and push the result to a Pushgateway.",
                epilog="Exit codes: 0 ok, 1 a check failed, 2 push failed (result printed to stdout), "
                       "3 usage/config error.")
    p.add_argument("--config.file", dest="config_file", metavar="FILE",
                   help="YAML (or JSON) config; without it the built-in default checks run")
    p.add_argument("--site", help="DIRAC site name, e.g. BES.IHEP-PBS.cn")
    p.add_argument("--ce", help="computing element targeted (default: none)")
    p.add_argument("--pushgateway", metavar="URL", help="e.g. https://pgw.example.org:9091")
    p.add_argument("--dry-run", action="store_true", help="print the exposition instead of pushing")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help=f"global deadline for the whole run (default {DEFAULT_TIMEOUT:.0f})")
    p.add_argument("--ca-file", metavar="FILE", help="CA bundle to verify the Pushgateway's certificate")
    p.add_argument("--push-user", metavar="NAME", help="basic-auth user name")
    p.add_argument("--password-file", metavar="FILE", help="file holding the basic-auth password")
    p.add_argument("--client-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--client-key", metavar="FILE", help="key of --client-cert (default: in the cert file)")
    p.add_argument("--retries", type=int, metavar="N", help="push retries after the first attempt (default 3)")
    p.add_argument("--allowed-sites", metavar="FILE",
                   help="refuse to run for a site (or CE) not listed in FILE (one site [CEs...] a line)")
    p.add_argument("--job-id", help="DIRAC job ID for dirac_probe_job_id (default: $DIRACJOBID, or $JOBID as DIRAC 9"
                                    " job wrappers set it)")
    p.add_argument("--workdir", metavar="DIR", help="job work dir to check (default: current dir)")
    return p


def select_checks(cfg_checks: Any) -> Dict[str, Dict[str, Any]]:
    """The checks to run (config order, or all built-ins) with their merged, validated options."""
    mods = checks_mod.modules()
    if cfg_checks is None:
        cfg_checks = {name: None for name in mods}
    elif isinstance(cfg_checks, list):
        cfg_checks = {name: None for name in cfg_checks}
    if not isinstance(cfg_checks, dict):
        raise ConfigError("checks: expected a mapping of check name -> options, or a list of names")
    selected = {}
    for name, given in cfg_checks.items():
        if name not in mods:
            raise ConfigError(f"checks: unknown check {name!r} (known: {', '.join(mods)})")
        mod = mods[name]
        defaults = dict(mod.DEFAULTS, timeout=mod.TIMEOUT, enabled=True)
        opts = check_options(name, given, defaults)
        if hasattr(mod, "validate"):
            mod.validate(opts)
        if opts.pop("enabled"):
            selected[name] = opts
    return selected


def _setting(cli_value: Any, cfg: Dict[str, Any], key: str, default: Any = None) -> Any:
    return cli_value if cli_value is not None else cfg.get(key, default)


def prepare(argv: List[str] | None):
    """Parse and validate everything that can be wrong before any check runs."""
    args = build_parser().parse_args(argv)
    cfg = validate_top(load_file(args.config_file), args.config_file) if args.config_file else {}
    site = validate_label("--site", _setting(args.site, cfg, "site") or _missing_site())
    ce = validate_label("--ce", _setting(args.ce, cfg, "ce", "none") or "none")
    if args.allowed_sites:
        check_allowed(site, ce, read_allowed_sites_file(args.allowed_sites), args.allowed_sites)
    elif cfg.get("allowed_sites") is not None:
        check_allowed(site, ce, parse_allowed_sites(cfg["allowed_sites"], "allowed_sites"),
                      f"allowed_sites of {args.config_file}")
    timeout = _setting(args.timeout, cfg, "timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 86400:
        raise ConfigError(f"--timeout: expected seconds between 1 and 86400, got {timeout!r}")
    selected = select_checks(cfg.get("checks"))

    push_cfg = dict(PUSH_DEFAULTS, **(cfg.get("pushgateway") or {}))
    for opt, key in (("pushgateway", "url"), ("ca_file", "ca_file"), ("push_user", "user"),
                     ("password_file", "password_file"), ("client_cert", "client_cert"),
                     ("client_key", "client_key"), ("retries", "retries")):
        if getattr(args, opt) is not None:
            push_cfg[key] = getattr(args, opt)
    target = None
    if not args.dry_run:
        target = _push_target(push_cfg)
    # DIRAC <= 8 job wrappers set DIRACJOBID, DIRAC 9 ones only JOBID (seen on a real 9.1 server).
    job_id = args.job_id if args.job_id is not None else (os.environ.get("DIRACJOBID")
                                                          or os.environ.get("JOBID") or "none")
    # pushed as the value of dirac_probe_job_id: exact in a float64
    job_id = job_id if job_id.isdigit() and len(job_id) <= 16 and int(job_id) < 2 ** 53 else "none"
    return args, site, ce, float(timeout), selected, target, job_id


def _missing_site() -> str:
    raise ConfigError("--site: required (the DIRAC site this probe runs for, e.g. BES.IHEP-PBS.cn)")


def _push_target(push_cfg: Dict[str, Any]):
    from .push import PushTarget

    for key in ("url", "ca_file", "user", "password_file", "client_cert", "client_key"):
        if push_cfg[key] is not None and not isinstance(push_cfg[key], str):
            raise ConfigError(f"pushgateway.{key}: expected a string, got {push_cfg[key]!r}")
    url = push_cfg["url"]
    if not url:
        raise ConfigError("--pushgateway: required unless --dry-run (e.g. https://pgw.example.org:9091)")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) and "//" in url:
        raise ConfigError(f"--pushgateway: {url!r} must be http(s)://host:port")
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise ConfigError("--pushgateway: put no credentials in the URL; use --push-user and --password-file")
    user, pw_file = push_cfg["user"], push_cfg["password_file"]
    if bool(user) != bool(pw_file):
        raise ConfigError("--push-user and --password-file go together: give both or neither")
    for key in ("ca_file", "client_cert", "client_key"):
        path = push_cfg[key]
        if path and not os.path.isfile(path):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag}: {path} is not a readable file")
    for key, low in (("retries", 0), ("timeout", 0.1), ("backoff", 0)):
        value = push_cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or value > 100:
            raise ConfigError(f"pushgateway.{key}: expected a number between {low} and 100, got {value!r}")
    target = PushTarget(url=url, ca_file=push_cfg["ca_file"], user=user,
                        password=read_secret(pw_file, "--password-file") if pw_file else None,
                        client_cert=push_cfg["client_cert"], client_key=push_cfg["client_key"],
                        timeout=float(push_cfg["timeout"]), retries=int(push_cfg["retries"]),
                        backoff=float(push_cfg["backoff"]))
    if not target.base.startswith("https://") and user:
        log("warning: sending a password over plain http; use https:// and --ca-file")
    try:
        target.ssl_context()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--ca-file/--client-cert: cannot load TLS files: {exc}") from None
    return target


def run(argv: List[str] | None = None) -> int:
    """The whole probe run; returns the exit code."""
    start_wall, start = time.time(), time.monotonic()
    try:
        args, site, ce, timeout, selected, target, job_id = prepare(argv)
    except ConfigError as exc:
        log(f"error: {exc}")
        return EXIT_USAGE
    from .push import PushError, RunInfo, all_ok, build_registry, exposition, previous_last_success
    from .push import push as do_push

    deadline = start + timeout
    check_deadline = deadline - min(timeout * 0.25, 30.0)
    ctx = checks_mod.Context(workdir=os.path.abspath(args.workdir or os.getcwd()), env=dict(os.environ),
                             pushgateway_url=target.base if target else None,
                             ssl_context=target.ssl_context() if target else None)
    log(f"site={site} ce={ce} checks={','.join(selected)} timeout={timeout:.0f}s")
    results = checks_mod.run_checks(selected, ctx, check_deadline)
    for r in results:
        log(f"{r.name}: {r.status} ({r.reason}, {r.duration:.2f}s) {r.detail}")
    passed = all_ok(results)
    code = EXIT_OK if passed else EXIT_CHECK_FAILED
    last_success = None
    if target is not None and not passed:
        last_success = previous_last_success(target, site, ce)
    info = RunInfo(site=site, ce=ce, host=sanitize_label(socket.gethostname()), job_id=job_id,
                   duration=time.monotonic() - start, finished=start_wall + (time.monotonic() - start))
    reg = build_registry(results, info, last_success)
    if target is None:
        sys.stdout.write(exposition(reg))
        sys.stdout.flush()
        return code
    try:
        attempts = do_push(target, site, ce, reg, deadline, log)
    except PushError as exc:
        log(f"error: push to {target.base} failed: {exc}; result follows on stdout")
        sys.stdout.write(f"{BEGIN_MARK} site={site} ce={ce} exit={EXIT_PUSH_FAILED}\n")
        sys.stdout.write(exposition(reg))
        sys.stdout.write(f"{END_MARK}\n")
        sys.stdout.flush()
        return EXIT_PUSH_FAILED
    log(f"pushed to {target.base} (job=bes_probe site={site} ce={ce}, {attempts} attempt(s)); "
        f"{'all checks passed' if passed else 'a check failed'}")
    return code


def main(argv: List[str] | None = None) -> int:
    """Console-script entry point."""
    code = run(argv)
    if checks_mod.abandoned_threads():  # a check is stuck in a system call: do not wait for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
