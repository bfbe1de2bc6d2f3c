"""The demo's alert log: every alert that reached Alertmanager, kept after it resolves.

Alertmanager's API forgets an alert once it has resolved, so a lead-time report made at the end of a run
would miss the alerts of faults already over. This loop polls ``/api/v2/alerts`` and keeps, in one JSON
file in Alertmanager's own format (what ``bes-simulate --report --alerts FILE`` reads), each alert that
was ever active (notified, not inhibited or silenced), with its ``startsAt`` and the last ``endsAt`` seen.

    python -m bes_demo.alertlog --alertmanager http://127.0.0.1:19093 --out .demo/alerts.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

QUERY = "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true"


def _key(alert: dict[str, Any]) -> str:
    return f"{alert.get('fingerprint', '')}@{alert.get('startsAt', '')}"


def merge(log: dict[str, dict[str, Any]], alerts: list[dict[str, Any]]) -> bool:
    """Add or update the ever-active alerts of one poll; True if ``log`` changed."""
    changed = False
    for alert in alerts:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict) or not alert.get("startsAt"):
            continue
        key = _key(alert)
        active = (alert.get("status") or {}).get("state") == "active"
        if key not in log:
            if not active:
                continue
            log[key] = {"labels": alert["labels"], "annotations": alert.get("annotations", {}),
                        "fingerprint": alert.get("fingerprint"), "startsAt": alert["startsAt"],
                        "endsAt": alert.get("endsAt"), "status": {"state": "active"}}
            changed = True
        elif log[key]["endsAt"] != alert.get("endsAt"):
            log[key]["endsAt"] = alert.get("endsAt")
            changed = True
    return changed


def write(path: Path, log: dict[str, dict[str, Any]]) -> None:
    """The log as a JSON list sorted by start, written atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(sorted(log.values(), key=lambda a: a["startsAt"]), indent=1) + "\n")
    os.replace(tmp, path)


def run(url: str, out: Path, interval: float, stop: threading.Event) -> None:
    """Poll until ``stop`` is set; Alertmanager being unreachable is logged once per outage."""
    log: dict[str, dict[str, Any]] = {}
    if out.exists():
        try:
            log = {_key(a): a for a in json.loads(out.read_text())}
        except (OSError, ValueError, TypeError):
            log = {}
    down = False
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url.rstrip("/") + QUERY, timeout=10) as resp:  # noqa: S310 - loopback
                alerts = json.loads(resp.read())
            if down:
                print("demo-alertlog: Alertmanager answers again", file=sys.stderr, flush=True)
            down = False
            if merge(log, alerts if isinstance(alerts, list) else []):
                write(out, log)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            if not down:
                print(f"demo-alertlog: cannot read {url} ({exc}); retrying", file=sys.stderr, flush=True)
            down = True
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo-alertlog", description=__doc__.splitlines()[0])
    p.add_argument("--alertmanager", required=True, help="Alertmanager base URL")
    p.add_argument("--out", required=True, help="JSON file to keep the alerts in")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    args = p.parse_args(argv)
    if args.interval <= 0:
        print("demo-alertlog: --interval must be positive", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(args.alertmanager, Path(args.out), args.interval, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
