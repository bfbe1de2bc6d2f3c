"""``bes-probe-agent``: the ``submit`` and ``reap`` agents, once (cron) or as a loop (systemd)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .agent import Agent, run_loop
from .config import ConfigError, load

DEFAULT_CONFIG = "/etc/bes-monitoring/probe-agent.yml"
CONFIG_ENV = "BES_PROBE_AGENT_CONFIG"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bes-probe-agent",
        description="Submit the bes-probe job to every DIRAC site/CE and reap (kill, classify) stuck ones.")
    p.add_argument("--config.file", "-c", "--config", dest="config", default=os.environ.get(CONFIG_ENV, DEFAULT_CONFIG),
                   help=f"YAML configuration (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})")
    p.add_argument("--log.level", "--log-level", dest="log_level", choices=["debug", "info", "warning", "error"],
                   help="override the configuration's log_level")
    sub = p.add_subparsers(dest="command", required=True, metavar="{submit,reap}")
    for name, text in (("submit", "submit a probe job to every due target without a pending one"),
                       ("reap", "kill and classify probe jobs past their timeouts, push every target's state")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("--loop", action="store_true", help="run cycles until stopped (systemd); default: once")
        s.add_argument("--interval", type=float, help="seconds between cycle starts (default: config 'interval')")
        s.add_argument("--max-cycles", type=int, help="with --loop: stop after this many cycles")
        if name == "submit":
            s.add_argument("--dry-run", action="store_true", help="print the JDL of each due target, submit nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"bes-probe-agent: {exc}", file=sys.stderr)
        return 2
    level = (args.log_level or cfg.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.interval is not None and args.interval < 1:
        print("bes-probe-agent: --interval must be at least 1 second", file=sys.stderr)
        return 2
    if args.max_cycles is not None and args.max_cycles < 1:
        print("bes-probe-agent: --max-cycles must be at least 1", file=sys.stderr)
        return 2
    agent = Agent(cfg)

    def cycle():
        return agent.cycle(args.command, dry_run=getattr(args, "dry_run", False))
    if not args.loop:
        try:
            stats = cycle()
        except KeyboardInterrupt:
            return 130
        logging.getLogger("bes_probe_agent").info("%s", stats.summary())
        return 0 if stats.ok else 1
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_loop(cycle, args.interval or cfg.interval, args.max_cycles, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
