"""A real Prometheus holding :mod:`month`: raw series backfilled with ``promtool tsdb create-blocks-from
openmetrics``, then the shipped recording rules that bes-report reads evaluated over that history by the
same Prometheus and backfilled the same way.

Prometheus evaluates no recording rule over backfilled history. ``promtool tsdb create-blocks-from rules``
would, but it writes one block per rule and 2 h (about 45 s per level for a month here), so the rules are
evaluated as promtool does, with one range query per rule at the evaluation interval, and the results
(named after the rule, with its labels) imported as OpenMetrics. Rules that use other rules go level by
level: each level's blocks are added and Prometheus restarted before the next level is evaluated.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from bes_demo import services
from bes_report import queries

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "alerts" / "rules"
PROMTOOL = "/usr/bin/promtool"
EVAL = "5m"  # rule evaluation interval, as the month's sample step
# A sample is read by one 5-min evaluation only (live Prometheus writes staleness markers instead).
PROM_ARGS = ["--storage.tsdb.retention.time=100y", "--query.lookback-delta=4m"]


def _rules() -> tuple[dict[str, dict], dict[str, str]]:
    """Recording rules by name, and alert expressions by alert name, from the shipped rule files."""
    records, alerts = {}, {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    records.setdefault(rule["record"], {"record": rule["record"], "exprs": []})
                    records[rule["record"]]["exprs"].append(rule)
                else:
                    alerts[rule["alert"]] = rule["expr"]
    return records, alerts


def _uses(expr: str, names: set[str]) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", expr)}


def rule_levels() -> list[list[dict]]:
    """The recording rules bes-report needs (the ARGO states, the black-hole condition), in levels:
    a rule's level is one more than the highest level of the rules it uses."""
    records, alerts = _rules()
    names = set(records)
    todo = [queries.STATE_RECORD, *_uses(alerts[queries.BLACK_HOLE_ALERT], names)]
    if queries.BLACK_HOLE_RECORD in names:
        todo.append(queries.BLACK_HOLE_RECORD)
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in level:
            deps = set().union(*(_uses(r["expr"], names - {name}) for r in records[name]["exprs"]))
            level[name] = 1 + max((depth(d) for d in deps), default=0)
        return level[name]

    for name in todo:
        depth(name)
    out: list[list[dict]] = [[] for _ in range(max(level.values()))]
    for name, lvl in sorted(level.items()):
        out[lvl - 1].extend(records[name]["exprs"])
    return out


def prometheus_config(path: Path) -> Path:
    cfg = {"global": {"scrape_interval": EVAL, "evaluation_interval": EVAL},
           "rule_files": [str(RULES_DIR / "*.yml")]}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(cmd: list[str], timeout: float) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()[-800:]}")


def import_openmetrics(path: Path, tsdb: Path) -> None:
    """``path`` into blocks in ``tsdb`` (the hidden --max-block-duration: a few blocks, one pass each)."""
    _run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", "--max-block-duration=768h", str(path),
          str(tsdb)], timeout=120)
    path.unlink()


def evaluate(prom: services.Daemon, rules: list[dict], start: int, end: int, out: Path) -> int:
    """Evaluate recording rules at every evaluation step of [start, end] as OpenMetrics; returns samples."""
    step = int(EVAL.rstrip("m")) * 60
    count = 0
    with open(out, "w") as fh:
        for rule in rules:
            query = urllib.parse.urlencode({"query": rule["expr"], "start": start, "end": end, "step": step})
            with urllib.request.urlopen(f"{prom.url}/api/v1/query_range?{query}", timeout=120) as resp:
                body = json.loads(resp.read())
            for series in body["data"]["result"]:
                labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
                labels.update(rule.get("labels") or {})
                text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                fh.writelines(f"{rule['record']}{{{text}}} {v} {t}\n" for t, v in series["values"])
                count += len(series["values"])
        fh.write("# EOF\n")
    return count


def build(workdir: Path, openmetrics_writer, start: int, end: int) -> services.Daemon:
    """Backfill ``workdir/prometheus/tsdb`` and return the running Prometheus (the caller stops it)."""
    pdir = workdir / "prometheus"
    tsdb = pdir / "tsdb"
    tsdb.mkdir(parents=True)
    raw = workdir / "month.om"
    openmetrics_writer(raw)
    import_openmetrics(raw, tsdb)
    prom = services.prometheus(prometheus_config(pdir / "prometheus.yml"), pdir, extra_args=PROM_ARGS)
    prom.start(timeout=60)
    try:
        for i, rules in enumerate(rule_levels(), 1):
            recorded = workdir / f"level{i}.om"
            if evaluate(prom, rules, start, end, recorded):
                import_openmetrics(recorded, tsdb)
                prom.restart(timeout=60)
    except BaseException:
        prom.stop()
        raise
    return prom
