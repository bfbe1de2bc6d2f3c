"""Child process of the local back-end: run one pickled DIRAC job with ``Dirac().submitJob(job, mode="local")``.

Usage: ``python -m probe_pushgateway.agent.localrun JOBDIR`` (JOBDIR holds ``job.pkl``; DIRACSYSCONFIG
points at the generated local configuration). Writes ``JOBDIR/result.json`` with DIRAC's final status.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

from .diracjob import DiracError, initialize, one_line


def _write(jobdir: Path, status: str, message: str) -> None:
    tmp = jobdir / "result.tmp"
    tmp.write_text(json.dumps({"status": status, "message": message, "finished": time.time()}))
    os.replace(tmp, jobdir / "result.json")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0], "job.pkl").is_file():
        print("usage: python -m probe_pushgateway.agent.localrun JOBDIR (with JOBDIR/job.pkl)", file=sys.stderr)
        return 2
    jobdir = Path(argv[0]).resolve()
    try:
        initialize([os.environ["DIRACSYSCONFIG"]], require_auth=False, log_level="INFO")
        with open(jobdir / "job.pkl", "rb") as fh:
            job = pickle.load(fh)  # noqa: S301 - written by our own agent in its private directory
        from DIRAC.Interfaces.API.Dirac import Dirac

        os.chdir(jobdir)
        result = Dirac().submitJob(job, mode="local")
    except (DiracError, KeyError, OSError, pickle.UnpicklingError) as exc:
        _write(jobdir, "Failed", one_line(exc))
        print(f"localrun: {one_line(exc)}", file=sys.stderr)
        return 1
    ok = isinstance(result, dict) and result.get("OK")
    message = one_line(result.get("Value") if ok else result.get("Message", result))
    _write(jobdir, "Done" if ok else "Failed", message)
    print(f"localrun: {'Done' if ok else 'Failed'}: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
