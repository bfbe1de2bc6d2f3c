"""``python -m dirac_server up|down|status [--dir DIR]`` (``scripts/dirac-server.sh`` calls this)."""

from __future__ import annotations

import argparse
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
    if args.command == "up":
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
    if args.command == "down":
        down(base)
        return 0
    running, lines = status(base)
    print("\n".join(lines))
    return 0 if running else 3


if __name__ == "__main__":
    sys.exit(main())
