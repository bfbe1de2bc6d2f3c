"""A software set-up command (e.g. BES3's BOSS environment) succeeds within its timeout."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import Any, Dict

from . import Context, Outcome, failed, ok, unknown

NAME = "software"
TIMEOUT = 120.0
DEFAULTS: Dict[str, Any] = {
    "command": None,        # run with `shell -c`; site/VO specific, so no default
    "shell": "/bin/bash",
    "expect": None,         # optional regular expression the output must contain
}
REASONS = ("exit_nonzero", "output_mismatch", "not_configured", "no_shell")


def validate(opts: Dict[str, Any]) -> None:
    """Config-time check: ``expect`` must compile."""
    if opts.get("expect"):
        try:
            re.compile(opts["expect"])
        except re.error as exc:
            from ..config import ConfigError

            raise ConfigError(f"checks.software.expect: not a valid regular expression: {exc}") from None


def _tail(text: str, n: int = 300) -> str:
    text = text.strip().replace("\n", " | ")
    return text if len(text) <= n else "..." + text[-n:]


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    if not opts["command"]:
        return unknown("not_configured", "no checks.software.command")
    if not os.access(opts["shell"], os.X_OK):
        return unknown("no_shell", f"{opts['shell']} is not executable")
    # Own process group, so a timeout kills the whole tree the command started.
    proc = subprocess.Popen([opts["shell"], "-c", opts["command"]], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ctx.workdir,
                            start_new_session=True)
    limit = max(0.1, opts["timeout"] - 0.5)
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipe
            out = b""
        return failed("timeout", f"still running after {limit:.0f}s, killed; output: "
                                 f"{_tail(out.decode(errors='replace'))}")
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        return failed("exit_nonzero", f"exit code {proc.returncode}; output: {_tail(text)}")
    if opts["expect"] and not re.search(opts["expect"], text):
        return failed("output_mismatch", f"output lacks /{opts['expect']}/: {_tail(text)}")
    return ok(f"exit 0; output: {_tail(text, 120)}")
