"""bes-exporter: command line, Prometheus-style flags."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from . import __version__
from .collector import DiracCollector
from .config import ConfigError, load
from .scrapers import SCRAPERS
from .web import serve
from .webconfig import WebConfigSource

DEFAULT_LISTEN = ":9875"
log = logging.getLogger("bes_exporter")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bes-exporter", description="Prometheus exporter for DIRAC's JobDB.")
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    p.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to serve /metrics on (default {DEFAULT_LISTEN})")
    p.add_argument("--web.config.file", dest="web_config", metavar="PATH",
                   help="TLS and basic auth settings, exporter-toolkit format (docs/security.md)")
    p.add_argument("--web.timeout-offset", dest="timeout_offset", type=float, default=0.5, metavar="SECONDS",
                   help="finish this long before Prometheus's scrape timeout (X-Prometheus-Scrape-Timeout-Seconds);"
                        " default 0.5")
    p.add_argument("--once", action="store_true",
                   help="collect once, print the exposition, exit 0 if the database answered, else 1")
    p.add_argument("--log.level", dest="log_level", default="info",
                   choices=["debug", "info", "warn", "error"], help="log level (default info)")
    p.add_argument("--version", action="version", version=f"bes-exporter {__version__}")
    for cls in SCRAPERS:
        default = "enabled" if cls.enabled_by_default else "disabled"
        p.add_argument(f"--collect.{cls.name}", dest=f"collect_{cls.name}", action="store_true", default=None,
                       help=f"{cls.help} [{default} by default]")
        p.add_argument(f"--no-collect.{cls.name}", dest=f"collect_{cls.name}", action="store_false",
                       help=argparse.SUPPRESS)
    return p


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--web.listen-address {value!r}: give HOST:PORT, e.g. 127.0.0.1:9875 or :9875")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper().replace("WARN", "WARNING")),
                        format="ts=%(asctime)s level=%(levelname)s msg=%(message)s", stream=sys.stderr)
    try:
        config = load(args.config_file)
        host, port = parse_listen(args.listen)
        web = WebConfigSource(args.web_config) if args.web_config else None
        if not 0 <= args.timeout_offset <= 60:
            raise ConfigError(f"--web.timeout-offset {args.timeout_offset}: give seconds from 0 to 60, e.g. 0.5")
    except ConfigError as exc:
        print(f"bes-exporter: {exc}", file=sys.stderr)
        return 2
    scrapers = [cls for cls in SCRAPERS
                if (getattr(args, f"collect_{cls.name}") is None and cls.enabled_by_default)
                or getattr(args, f"collect_{cls.name}")]
    collector = DiracCollector(config, scrapers)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0 if collector.last_up else 1
    try:
        server = serve(registry, host, port, web, args.timeout_offset)
    except OSError as exc:
        print(f"bes-exporter: --web.listen-address {args.listen}: {exc.strerror}; choose a free port",
              file=sys.stderr)
        return 2
    log.info("bes-exporter %s listening on %s:%d (%s%s), collectors: %s", __version__, host,
             server.server_address[1], "https" if web and web.config.tls else "http",
             ", basic auth" if web and web.config.users else "", ",".join(s.name for s in scrapers))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
