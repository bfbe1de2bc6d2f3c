"""The production topology on loopback: one exporter and Pushgateway, two Prometheus replicas (a, b) with our
rules, two Alertmanagers in a cluster, one VictoriaMetrics receiving both replicas' remote write.

The replicas' configuration is packaging/prometheus/prometheus.yml (the file shipped to sites) pointed at
loopback addresses, with short intervals; the Alertmanagers gossip on free loopback ports. Every daemon is
a :class:`~bes_demo.services.Daemon`: ``stop()`` a replica or an Alertmanager and ``start()`` it again to
play a fault.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from . import services
from .stack import EXPORTER_JOB, PUSHGATEWAY_JOB, ROOT, RULES_DIR, exporter

PROMETHEUS_EXAMPLE = ROOT / "packaging" / "prometheus" / "prometheus.yml"
REPLICAS = ("a", "b")


def replica_config(replica: str, exporter_addr: str, pushgateway_addr: str, alertmanagers: list[str],
                   remote_write_url: str, rules_dir: Path = RULES_DIR, interval: str = "1s",
                   example: Path = PROMETHEUS_EXAMPLE) -> dict:
    """The shipped example for ``replica``, its targets, rules and remote write on loopback."""
    cfg = copy.deepcopy(yaml.safe_load(example.read_text()))
    cfg["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
    cfg["global"]["external_labels"]["replica"] = replica
    cfg["rule_files"] = [str(rules_dir / "*.yml")]
    (am,) = cfg["alerting"]["alertmanagers"]
    am["static_configs"] = [{"targets": alertmanagers}]
    (rw,) = cfg["remote_write"]
    rw["url"] = remote_write_url
    rw["queue_config"]["batch_send_deadline"] = interval
    targets = {EXPORTER_JOB: exporter_addr, PUSHGATEWAY_JOB: pushgateway_addr}
    for job in cfg["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return cfg


class Topology:
    """Start with ``start()`` (or ``with``), stop with ``stop()``. ``prometheus["a"]``/``["b"]``,
    ``alertmanagers[0]``/``[1]``, ``vm``; ``query(base_url, expr, at)`` asks any of them."""

    def __init__(self, workdir: Path, exporter_config: dict, alertmanager_config: Path,
                 rules_dir: Path = RULES_DIR, interval: str = "1s", prometheus_args=(), alertmanager_args=(),
                 vm_args=()):
        self.dir = Path(workdir)
        self.interval = interval
        self.rules_dir = rules_dir
        self.exporter = exporter(exporter_config, self.dir / "exporter")
        self.pushgateway = services.pushgateway(self.dir / "pushgateway")
        self.vm = services.victoria_metrics(self.dir / "vm", dedup_interval=interval, extra_args=vm_args)
        gossip = [services.free_port() for _ in range(2)]
        self.alertmanagers = [
            services.alertmanager(alertmanager_config, self.dir / f"alertmanager-{i + 1}", cluster_port=port,
                                  peers=[f"{services.HOST}:{p}" for p in gossip if p != port],
                                  extra_args=alertmanager_args)
            for i, port in enumerate(gossip)]
        self.prometheus_args = list(prometheus_args)
        self.prometheus: dict[str, services.Daemon] = {}

    def start(self, replicas: bool = True) -> Topology:
        """Start everything; with ``replicas`` False all but the Prometheus replicas (``start_replicas()``)."""
        try:
            for daemon in (self.exporter, self.pushgateway, self.vm, *self.alertmanagers):
                daemon.start()
            if replicas:
                self.start_replicas()
        except Exception:
            self.stop()
            raise
        return self

    def start_replicas(self) -> None:
        """Write each replica's configuration and start it (both scrape, evaluate and remote-write)."""
        try:
            for replica in REPLICAS:
                pdir = self.dir / f"prometheus-{replica}"
                pdir.mkdir(parents=True, exist_ok=True)
                cfg = replica_config(replica, self.exporter.address, self.pushgateway.address,
                                     [am.address for am in self.alertmanagers], self.vm.url + "/api/v1/write",
                                     self.rules_dir, self.interval)
                (pdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
                self.prometheus[replica] = services.prometheus(pdir / "prometheus.yml", pdir,
                                                               extra_args=self.prometheus_args).start(timeout=60)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for daemon in (*self.prometheus.values(), *self.alertmanagers, self.vm, self.pushgateway, self.exporter):
            daemon.stop()

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def api(url: str, params: dict | None = None, timeout: float = 30) -> dict | list:
    """GET ``url`` (with query ``params``) and decode its JSON."""
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def query(base: str, expr: str, at: float | None = None) -> list[dict]:
    """Instant query of ``expr`` at ``at`` (Unix seconds; now if None) on Prometheus or VictoriaMetrics."""
    params = {"query": expr, "nocache": "1"}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        body = api(base + "/api/v1/query", params)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{expr}: {exc.read().decode(errors='replace')[:300]}") from None
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body}")
    return body["data"]["result"]
