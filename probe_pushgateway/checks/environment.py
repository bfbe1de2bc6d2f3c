"""Worker-node environment: free disk in the job's work dir and /tmp, memory, cores, load."""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, List

from . import Context, Outcome, failed, ok, unknown

NAME = "environment"
TIMEOUT = 10.0
DEFAULTS: Dict[str, Any] = {
    "workdir": None,              # default: the job's work dir (the probe's current directory)
    "min_free_workdir_mb": 2048,
    "tmpdir": None,               # default: $TMPDIR or /tmp
    "min_free_tmp_mb": 200,
    "min_memory_mb": 1024,        # MemAvailable from /proc/meminfo
    "min_cores": 1,               # cores this job may use (CPU affinity)
    "max_load_per_core": 4.0,     # 1-minute load average divided by the node's cores
}
REASONS = ("low_disk_workdir", "low_disk_tmp", "missing_dir", "low_memory", "few_cores", "high_load",
           "unavailable")


def free_mb(path: str) -> float:
    """Megabytes available to unprivileged users on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1048576.0


def memory_available_mb(meminfo: str = "/proc/meminfo") -> float | None:
    """MemAvailable in MB, or None where /proc/meminfo does not say."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), else the node's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    problems: List[str] = []
    facts = [f"host={socket.gethostname()}"]
    measured = 0
    dirs = ((opts["workdir"] or ctx.workdir, opts["min_free_workdir_mb"], "low_disk_workdir"),
            (opts["tmpdir"] or ctx.env.get("TMPDIR") or "/tmp", opts["min_free_tmp_mb"], "low_disk_tmp"))
    for path, minimum, reason in dirs:
        try:
            mb = free_mb(path)
        except OSError as exc:
            problems.append("missing_dir")
            facts.append(f"{path}: {exc.strerror}")
            continue
        measured += 1
        facts.append(f"free {path}={mb:.0f}MB (min {minimum:.0f})")
        if mb < minimum:
            problems.append(reason)
    mem = memory_available_mb()
    if mem is not None:
        measured += 1
        facts.append(f"memory available={mem:.0f}MB (min {opts['min_memory_mb']:.0f})")
        if mem < opts["min_memory_mb"]:
            problems.append("low_memory")
    cores = usable_cores()
    facts.append(f"cores={cores} (min {opts['min_cores']:.0f})")
    if cores < opts["min_cores"]:
        problems.append("few_cores")
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        measured += 1
        facts.append(f"load/core={load:.2f} (max {opts['max_load_per_core']:.2f})")
        if load > opts["max_load_per_core"]:
            problems.append("high_load")
    except OSError:
        pass
    detail = "; ".join(facts)
    if problems:
        return failed(problems[0], detail)
    if not measured:
        return unknown("unavailable", detail)
    return ok(detail)
