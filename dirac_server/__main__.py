"""``python -m dirac_server up|down|status [--dir DIR]`` (``scripts/dirac-server.sh`` calls this)."""

from __future__ import annotations

import argparse
import fcntl
import sys
from pathlib import Path

from . import topology as topo
from .layout import DIR_ENV, Layout, default_dir
from .server import ServerError, down, status, up


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dirac-server", description="A DIRAC server on loopback for tests and demos.")
    p.add_argument("command", choices=["up", "down", "status"])
    p.add_argument("--dir", type=Path, default=None,
                   help=f"instance directory (default: ${DIR_ENV} or {default_dir()})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    base = (args.dir or default_dir()).resolve()
    if args.command == "status":
        running, lines = status(base)
        print("\n".join(lines))
        return 0 if running else 3
    if args.command == "down" and not base.is_dir():
        print(f"dirac-server: nothing to stop in {base}")
        return 0
    try:
        lock = instance_lock(base)
    except OSError as exc:
        print(f"dirac-server: cannot use {base} (--dir): {exc.strerror}", file=sys.stderr)
        return 1
    with lock:
        return up_or_down(args.command, base)


def instance_lock(base: Path):
    """An exclusive lock on the instance directory: one ``up``/``down`` at a time (waits for the other)."""
    base.mkdir(parents=True, exist_ok=True)
    fh = open(base / ".lock", "w")  # closed by the caller's ``with``
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def up_or_down(command: str, base: Path) -> int:
    if command == "up":
        try:
            up(base)
        except ServerError as exc:
            print(f"dirac-server: {exc}", file=sys.stderr)
            return 1
        layout = Layout(base)
        print(f"dirac-cfg: {layout.client_cfg}")
        print(f"proxy: {layout.proxy(topo.USER)}")
        print(f"probe-proxy: {layout.proxy(topo.PROBE_USER)}")
        print(f"state: {layout.state_file}")
        return 0
    down(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
