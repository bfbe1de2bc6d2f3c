"""The monitoring stack on loopback: exporter, Pushgateway, Prometheus with our rules, Alertmanager.

Used by the end-to-end tests (alerts, dashboards) and by the demo. Every daemon runs in its own session
with a pid file in its directory, so a stack started by one process can be stopped by another.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from . import services

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "alerts" / "rules"
ALERTMANAGER_CONFIG = ROOT / "alerts" / "alertmanager.yml"
EXPORTER_JOB = "bes_exporter"  # alerts/thresholds.yml: exporter_job
PUSHGATEWAY_JOB = "pushgateway"  # alerts/thresholds.yml: pushgateway_job


def exporter_binary() -> str:
    local = Path(sys.executable).parent / "bes-exporter"
    found = str(local) if local.exists() else shutil.which("bes-exporter")
    if not found:
        raise services.ServiceError("bes-exporter is not installed; run make setup")
    return found


def exporter(config: dict, data_dir: Path, port: int | None = None, extra_args=()) -> services.Daemon:
    """The exporter (not started) with ``config`` written to ``data_dir/exporter.yml``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "exporter.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return services.Daemon("exporter", exporter_binary(), [f"--config.file={path}", *extra_args], data_dir,
                           port=port, ready_path="/")


def prometheus_config(exporter_addr: str, pushgateway_addr: str, alertmanager_addr: str | None,
                      rules_dir: Path = RULES_DIR, interval: str = "1s") -> dict:
    cfg: dict = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {"job_name": EXPORTER_JOB, "static_configs": [{"targets": [exporter_addr]}]},
            {"job_name": PUSHGATEWAY_JOB, "honor_labels": True, "static_configs": [{"targets": [pushgateway_addr]}]},
        ],
    }
    if alertmanager_addr:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_addr]}]}]}
    return cfg



def wait_until(what, timeout: float, message: str = "", interval: float = 0.2):
    """Poll ``what()`` until it returns something truthy, for at most ``timeout`` seconds, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = what()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {message or what}")
        time.sleep(interval)

class Stack:
    """Start with ``start()``, stop with ``stop()``; ``query()`` asks Prometheus, ``alerts()`` Alertmanager."""

    def __init__(self, workdir: Path, exporter_config: dict, interval: str = "1s",
                 alertmanager_config: Path | None = ALERTMANAGER_CONFIG, rules_dir: Path = RULES_DIR,
                 ports: dict[str, int] | None = None, prometheus_args=()):
        self.dir = Path(workdir)
        ports = ports or {}
        self.exporter = exporter(exporter_config, self.dir / "exporter", ports.get("exporter"))
        self.pushgateway = services.pushgateway(self.dir / "pushgateway", port=ports.get("pushgateway"))
        self.alertmanager = (services.alertmanager(alertmanager_config, self.dir / "alertmanager",
                                                   port=ports.get("alertmanager"))
                             if alertmanager_config else None)
        self.interval = interval
        self.rules_dir = rules_dir
        self.prometheus_port = ports.get("prometheus")
        self.prometheus_args = list(prometheus_args)
        self.prometheus: services.Daemon | None = None

    def start(self) -> Stack:
        try:
            self.exporter.start()
            self.pushgateway.start()
            if self.alertmanager:
                self.alertmanager.start()
            cfg = prometheus_config(self.exporter.address, self.pushgateway.address,
                                    self.alertmanager.address if self.alertmanager else None,
                                    self.rules_dir, self.interval)
            pdir = self.dir / "prometheus"
            pdir.mkdir(parents=True, exist_ok=True)
            (pdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
            self.prometheus = services.prometheus(pdir / "prometheus.yml", pdir, port=self.prometheus_port,
                                                  extra_args=self.prometheus_args)
            self.prometheus.start(timeout=60)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for daemon in (self.prometheus, self.alertmanager, self.pushgateway, self.exporter):
            if daemon is not None:
                daemon.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- reading back ---------------------------------------------------------------------------

    def api(self, path: str, params: dict | None = None, base: str | None = None) -> dict | list:
        url = (base or self.prometheus.url) + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict]:
        """Instant query; raises on a PromQL error, returns the result vector/matrix."""
        try:
            body = self.api("/api/v1/query", {"query": expr})
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{expr}: {exc.read().decode(errors='replace')[:300]}") from None
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body}")
        return body["data"]["result"]

    def alerts(self, active: bool = True) -> list[dict]:
        """Alerts at Alertmanager (v2 API); ``active`` False adds inhibited/silenced ones."""
        params = {} if active else {"inhibited": "true", "silenced": "true", "active": "true"}
        return self.api("/api/v2/alerts", params, base=self.alertmanager.url)

    def wait_for(self, what, timeout: float, interval: float = 1.0, message: str = ""):
        """Poll ``what()`` until it returns something truthy (bounded), and return it."""
        return wait_until(what, timeout, message, interval)
