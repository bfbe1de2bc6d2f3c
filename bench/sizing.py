"""Sizing of a production set-up, measured on the demo: series per site, CE, host and probe target, samples/s,
and VictoriaMetrics' bytes per sample (docs/deployment.md, "Sizing").

    .venv/bin/python -m bench.sizing [--minutes 12] [--speed 20] [--scale 1] [--interval 1500ms] [--json out.json]

Starts the demo (``bes_demo up`` in its own directory, on free ports, with its own databases) at ``--speed`` and
``--scale`` (1 = BES3's ~2500 slots), and one Prometheus replica of packaging/prometheus/prometheus.yml (the demo's
rules) scraping the demo's exporter and Pushgateway every ``--interval`` and remote-writing to a VictoriaMetrics
(deduplication at the same interval). speed x interval is the simulated time between two samples: 20 x 1.5 s =
30 s, production's scrape interval, so values change per sample as they would in production. After
``--minutes`` it counts the series by family and by what they are about, forces VictoriaMetrics to merge its
data, reads its rows and bytes on disk, prints the per-entity model and the figures for a BES3-size and an
LHCb-size instance, stops everything it started and drops its databases (``bes_sizing_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pymysql
import yaml

from bes_demo import services
from bes_demo.rules import duration_seconds
from bes_demo.topology import api, query, replica_config
from bes_simulator.topology import load_topology

ROOT = Path(__file__).resolve().parent.parent
YEAR = 365 * 86400
# Production: scrape and rule evaluation every 30 s (packaging/prometheus/prometheus.yml).
PRODUCTION_INTERVAL = 30.0
# The instances sized in docs/deployment.md: sites, CEs, worker nodes with a job in 24 h (the exporter exports
# at most hosts.max_per_site = 500 per site), probe targets (one per CE). BES3 is the simulator's topology at
# scale 1; LHCb's are round numbers of LHCbDIRAC's order of magnitude, inputs rather than measurements.
INSTANCES = {"BES3": None, "LHCb": {"site": 120, "ce": 400, "host": 30000, "probe_target": 400}}
ENTITIES = ("host", "probe_target", "ce", "site")


def what(labels: dict) -> str:
    """The entity a series is about (the most specific label it carries)."""
    if labels.get("host"):
        return "host"
    if labels.get("job") in ("bes_probe", "bes_probe_agent") or labels.get("__name__", "").startswith("dirac_probe"):
        return "probe_target" if labels.get("ce") or labels.get("site") else "instance"
    if labels.get("ce"):
        return "ce"
    if labels.get("site"):
        return "site"
    return "instance"


def vm_metrics(url: str) -> dict[str, float]:
    """VictoriaMetrics' own /metrics: ``name`` or ``name|type`` -> value (summed)."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            m = re.match(r"^(vm_rows|vm_data_size_bytes|vm_rows_inserted_total)(?:\{(.*)\})? (\S+)$", line)
            if m:
                kind = re.search(r'type="([^"]+)"', m.group(2) or "")
                key = f"{m.group(1)}|{kind.group(1)}" if kind else m.group(1)
                out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def storage(url: str) -> tuple[float, float, float]:
    """Rows and bytes of VictoriaMetrics' data, and bytes of its index, after merging everything it holds."""
    urllib.request.urlopen(url + "/internal/force_merge", timeout=600).read()
    time.sleep(15)  # the merge runs in the background
    vmm = vm_metrics(url)
    return (sum(v for k, v in vmm.items() if k.startswith("vm_rows|storage/")),
            sum(v for k, v in vmm.items() if k.startswith("vm_data_size_bytes|storage/")),
            sum(v for k, v in vmm.items() if k.startswith("vm_data_size_bytes|indexdb")))


def rss_mib(pid: int) -> float:
    """Resident memory of a process (MiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def inserted(url: str) -> float:
    return sum(v for k, v in vm_metrics(url).items() if k.startswith("vm_rows_inserted_total"))


def entity_counts_bes3(scale: float) -> dict[str, int]:
    topo = load_topology()
    ces = [c for s in topo.sites for c in s.ces]
    return {"site": len(topo.sites), "ce": len(ces), "host": round(sum(len(c.hosts) for c in ces) * scale),
            "probe_target": len(ces)}


def measure(args, work: Path) -> dict:
    env = {**os.environ, "BES_DEMO_DIR": str(work / "demo"), "BES_DEMO_SPEED": str(args.speed),
           "BES_DEMO_SCALE": str(args.scale), "BES_DEMO_DB_PREFIX": "bes_sizing_",
           **{f"BES_DEMO_{n}_PORT": str(services.free_port())
              for n in ("EXPORTER", "PUSHGATEWAY", "PROMETHEUS", "ALERTMANAGER")}}
    demo = [sys.executable, "-m", "bes_demo"]
    subprocess.run([*demo, "up"], env=env, cwd=ROOT, check=True, timeout=900)
    interval = duration_seconds(args.interval)
    vm = services.victoria_metrics(work / "vm", dedup_interval=args.interval,
                                   extra_args=["-search.latencyOffset=1s", "-search.disableCache"])
    prom = None
    try:
        vm.start()
        cfg = replica_config("a", f"127.0.0.1:{env['BES_DEMO_EXPORTER_PORT']}",
                             f"127.0.0.1:{env['BES_DEMO_PUSHGATEWAY_PORT']}",
                             [f"127.0.0.1:{env['BES_DEMO_ALERTMANAGER_PORT']}"], vm.url + "/api/v1/write",
                             work / "demo" / "rules", args.interval)
        (work / "prometheus").mkdir(parents=True, exist_ok=True)
        (work / "prometheus" / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        prom = services.start_prometheus(work / "prometheus" / "prometheus.yml", work / "prometheus")
        start = time.time()
        rows0 = inserted(vm.url)
        merged = []  # (minutes, samples per series, bytes per sample) after each forced merge
        while time.time() - start < args.minutes * 60:
            time.sleep(min(180.0, start + args.minutes * 60 - time.time() + 0.1))
            head = api(prom.url + "/api/v1/status/tsdb")["data"]["headStats"]["numSeries"]
            rows, data, _ = storage(vm.url)
            merged.append(((time.time() - start) / 60, rows / head, data / rows))
            print(f"sizing: {merged[-1][0]:.1f} min, {head} series, {merged[-1][1]:.0f} samples per series, "
                  f"{merged[-1][2]:.2f} bytes per sample", flush=True)
        elapsed = time.time() - start
        rows1 = inserted(vm.url)
        series = [r["metric"] for r in query(vm.url, '{__name__=~".+"}')]
        counts: dict[str, int] = {}
        for labels in series:
            counts[what(labels)] = counts.get(what(labels), 0) + 1
        entities = {
            "site": len({s["site"] for s in series if s.get("site")}),
            "ce": len({(s["site"], s["ce"]) for s in series if s.get("ce") and s.get("__name__") == "dirac_pilots"}),
            "host": len({s["host"] for s in series if s.get("host")}),
            "probe_target": len({(s.get("site"), s.get("ce")) for s in series
                                 if s.get("__name__") == "dirac_probe_status"}),
        }
        families: dict[str, int] = {}
        for labels in series:
            families[labels.get("__name__", "")] = families.get(labels.get("__name__", ""), 0) + 1
        rows, data, index = storage(vm.url)
        return {"minutes": elapsed / 60, "speed": args.speed, "scale": args.scale, "interval": interval,
                "series": len(series), "by_entity": counts, "entities": entities, "families": families,
                "samples_per_s": (rows1 - rows0) / elapsed, "vm_rows": rows, "vm_data_bytes": data,
                "vm_index_bytes": index, "bytes_per_sample": data / rows,
                "index_bytes_per_series": index / len(series), "merges": merged,
                "rss_mib": {"prometheus": rss_mib(prom.proc.pid), "victoria-metrics": rss_mib(vm.proc.pid)}}
    finally:
        if prom:
            prom.stop()
        vm.stop()
        subprocess.run([*demo, "down"], env=env, cwd=ROOT, timeout=300)
        drop_databases("bes_sizing_")


def drop_databases(prefix: str) -> None:
    """Drop the demo databases this run created (root@127.0.0.1, as the demo's defaults)."""
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (prefix.replace("_", "\\_") + "%",))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


def model(m: dict) -> dict[str, dict]:
    """Series per entity from the measurement, and each instance's series, samples/s and disk per year."""
    per = {e: m["by_entity"].get(e, 0) / m["entities"][e] for e in ENTITIES if m["entities"].get(e)}
    fixed = m["by_entity"].get("instance", 0)
    out = {}
    for name, ent in INSTANCES.items():
        ent = ent or entity_counts_bes3(1.0)
        series = fixed + sum(per.get(e, 0) * ent[e] for e in ENTITIES)
        sps = series / PRODUCTION_INTERVAL
        data = sps * YEAR * m["bytes_per_sample"]
        index = series * 365 * m["index_bytes_per_series"]  # VictoriaMetrics indexes each series once per day
        out[name] = {"entities": ent, "series": round(series), "samples_per_s": round(sps, 1),
                     "disk_gib_per_year": round((data + index) / 2**30, 1),
                     "data_gib_per_year": round(data / 2**30, 1), "index_gib_per_year": round(index / 2**30, 1)}
    return {"series_per_entity": {**per, "instance": fixed}, "instances": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--speed", type=float, default=20)
    ap.add_argument("--scale", type=float, default=1)
    ap.add_argument("--interval", default="1500ms")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "sizing")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    m = measure(args, args.workdir)
    result = {"measured": m, **model(m)}
    text = json.dumps(result, indent=1, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
