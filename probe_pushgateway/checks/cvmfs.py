"""CVMFS repositories are mounted and readable (listing a repository triggers its automount)."""

from __future__ import annotations

import os
from typing import Any, Dict

from . import Context, Outcome, failed, ok, unknown

NAME = "cvmfs"
TIMEOUT = 60.0  # a first mount can take a while; a hung mount is cut by the runner
DEFAULTS: Dict[str, Any] = {"repositories": ["/cvmfs/boss.cern.ch"]}
REASONS = ("not_mounted", "unreadable", "empty", "not_configured")


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    repos = opts["repositories"]
    if not repos:
        return unknown("not_configured", "no checks.cvmfs.repositories")
    seen = []
    for repo in repos:
        try:
            entries = os.listdir(repo)
        except FileNotFoundError:
            return failed("not_mounted", f"{repo} does not exist")
        except NotADirectoryError:
            return failed("unreadable", f"{repo} is not a directory")
        except OSError as exc:
            return failed("unreadable", f"{repo}: {exc.strerror or exc}")
        if not entries:
            return failed("empty", f"{repo} is empty (mount failed?)")
        seen.append(f"{repo} ({len(entries)} entries)")
    return ok(", ".join(seen))
