"""Outbound TCP reachability of configured services (``host:port``), BES3's 5-second rule."""

from __future__ import annotations

import socket
from typing import Any, Dict, Tuple
from urllib.parse import urlsplit

from . import Context, Outcome, failed, ok, unknown

NAME = "tcp"
TIMEOUT = 30.0
DEFAULTS: Dict[str, Any] = {
    "targets": [],            # "host:port" or "[v6addr]:port"; empty: the Pushgateway's address
    "connect_timeout": 5.0,
}
REASONS = ("refused", "dns", "unreachable", "not_configured")


def split_target(target: str) -> Tuple[str, int]:
    """``host:port`` / ``[v6]:port`` -> (host, port); ValueError when malformed."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(target)
    return host.strip("[]"), int(port)


def validate(opts: Dict[str, Any]) -> None:
    """Config-time check of the target syntax."""
    from ..config import ConfigError

    for target in opts["targets"]:
        try:
            split_target(target)
        except ValueError:
            raise ConfigError(f"checks.tcp.targets: {target!r} is not host:port "
                              f"(e.g. dirac.example.org:9135)") from None


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    targets = list(opts["targets"])
    if not targets and ctx.pushgateway_url:
        parts = urlsplit(ctx.pushgateway_url if "//" in ctx.pushgateway_url
                         else "http://" + ctx.pushgateway_url)
        if parts.hostname:
            targets = [f"[{parts.hostname}]:{parts.port or (443 if parts.scheme == 'https' else 80)}"]
    if not targets:
        return unknown("not_configured", "no checks.tcp.targets and no Pushgateway")
    per_target = min(opts["connect_timeout"], max(0.5, opts["timeout"] / len(targets)))
    reached = []
    for target in targets:
        host, port = split_target(target)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return failed("dns", f"{target}: {exc.strerror}")
        addr = infos[0]
        try:
            with socket.socket(addr[0], addr[1], addr[2]) as sock:
                sock.settimeout(per_target)
                sock.connect(addr[4])
        except ConnectionRefusedError:
            return failed("refused", f"{target}: connection refused")
        except socket.timeout:
            return failed("timeout", f"{target}: no answer within {per_target:.1f}s")
        except OSError as exc:
            return failed("unreachable", f"{target}: {exc.strerror or exc}")
        reached.append(target)
    return ok("reached " + ", ".join(reached))
