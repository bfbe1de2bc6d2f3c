"""Several bench/run results side by side, with the issue's targets checked across them.

    python -m bench.report run100k.json run1m.json run10m.json [--markdown FILE]

The flatness targets compare rows examined per scrape between runs of the same generation and active
volume (independence of the history N), and between runs of the same generation and N at 10 k and 100 k
active jobs (independence of the active volume); the steady stream is the same in every run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .driver import TARGETS, targets
from .measure import OneLineParser


def _n(x: int) -> str:
    for div, unit in ((1_000_000, " M"), (1_000, " k")):
        if x >= div and x % (div // 10) == 0:
            v = x / div
            return f"{v:g}{unit}"
    return f"{x:,}"


def _ms(s: float) -> str:
    return f"{s * 1000:,.1f} ms" if s < 10 else f"{s:,.1f} s"


def table(runs: list[dict]) -> str:
    head = "| | " + " | ".join(f"N = {_n(r['jobs'])}, {_n(r['active'])} active"
                               + "".join(f" −{c}" for c in _left_out(r)) for r in runs) + " |"
    rows = [
        ("DIRAC schema / active jobs", lambda r: f"{r['generation']} / {r['active']:,}"),
        ("dataset size (data + indexes)", lambda r: f"{r['dataset']['size_mb'] / 1024:,.1f} GiB"),
        ("**ours**: scrape wall time p50 / p95", lambda r: f"{_ms(r['ours']['scrape_p50_s'])} / "
                                                           f"{_ms(r['ours']['scrape_p95_s'])}"),
        ("ours: rows examined per scrape (median)", lambda r: f"{r['ours']['rows_examined_per_scrape']:,}"),
        ("ours: database time per scrape (median)", lambda r: _ms(r["ours"]["db_s_per_scrape"])),
        ("ours: database time per scrape, amortised (mean)", lambda r: _ms(r["ours"]["db_s_mean"])),
        ("ours: passes of the sweeps in the run (heartbeat / jobs / pilots)", lambda r: " / ".join(
            str(r["ours"].get("resync_passes", {}).get(k, "–")) for k in ("heartbeat", "jobs", "pilots"))),
        ("ours: first scrape (reads every active job once)", lambda r: _ms(r["ours"]["first_scrape"]["wall_s"])),
        ("ours: exporter CPU per scrape (mean)", lambda r: _ms(r["ours"]["exporter_cpu_s_per_scrape"])),
        ("ours: slowest collectors (p50)", lambda r: ", ".join(
            f"{k} {v * 1000:.0f} ms" for k, v in sorted(r["ours"]["collector_p50_s"].items(),
                                                          key=lambda kv: -kv[1])[:3])),
        ("ours: collectors left out / failing", lambda r: ", ".join(
            [f"−{n}" for n in _left_out(r)]
            + [f"{n} failed" for n in r["ours"]["collector_failures"]]) or "none"),
        ("ours: exporter peak RSS", lambda r: f"{r['ours']['rss_peak_mb']:.1f} MB"),
        ("every metric from scratch: minimal indexed queries, mysql client", lambda r: _ms(r["minimal_sql_s"])),
        ("ours p50 ÷ minimal", lambda r: f"{r['ratios']['ours_scrape_p50_over_minimal_sql']:.2f}×"),
        ("**naive**: database time per cycle", lambda r: _ms(r["naive"]["cycle_db_s"])),
        ("naive: rows examined per cycle", lambda r: f"{r['naive']['rows_examined_per_cycle']:,}"),
        ("naive: cycle wall time", lambda r: _ms(r["naive"]["cycle_wall_s"])),
        ("**naive ÷ ours**: database time, amortised", lambda r: f"{_amortised(r):,.0f}×"),
        ("naive ÷ ours: rows examined", lambda r: f"{r['ratios']['naive_rows_over_ours_rows']:,.0f}×"),
        ("machine load (1 min average) during the scrapes", lambda r: f"{r['ours']['load_average_1m_mean']:.1f}"),
    ]
    lines = [head, "|---|" + "---:|" * len(runs)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in runs) + " |")
    return "\n".join(lines)


def _amortised(r: dict) -> float:
    return r["ratios"].get("naive_db_s_over_ours_db_s_amortised") or r["ratios"]["naive_db_s_over_ours_db_s"]


def _left_out(r: dict) -> list[str]:
    return r.get("config", {}).get("left_out", [])


def independence(runs: list[dict], of: str = "jobs") -> list[dict]:
    """Spread of rows examined per scrape between runs that differ only in ``of``: ``jobs`` (the history
    N, same generation and active volume) or ``active`` (10 k and 100 k active jobs, same generation and
    N). Runs with a collector left out are not comparable and skipped."""
    same = "active" if of == "jobs" else "jobs"
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if _left_out(r) or (of == "active" and r["active"] not in (10_000, 100_000)):
            continue
        groups.setdefault((r["generation"], r[same]), []).append(r)
    out = []
    for (gen, fixed), rs in sorted(groups.items()):
        if len({r[of] for r in rs}) < 2:
            continue
        rs = sorted(rs, key=lambda r: r[of])
        rows = [r["ours"]["rows_examined_per_scrape"] for r in rs]
        spread = max(rows) / min(rows) - 1 if min(rows) else float("inf")
        out.append({"generation": gen, same: fixed, of: [r[of] for r in rs], "rows": rows,
                    "spread": round(spread, 3), "met": spread <= TARGETS["rows_spread"]})
    return out


def summary(runs: list[dict]) -> str:
    lines = []
    for r in runs:
        t = targets(r)  # recomputed: the rules may be newer than the file
        bad = [k for k, v in t.items() if v["met"] is False]
        good = [k for k, v in t.items() if v["met"]]
        extra = "".join(f", without {c}" for c in _left_out(r))
        lines.append(f"- N = {_n(r['jobs'])} ({r['generation']}, {r['active']:,} active{extra}): "
                     + (f"met: {', '.join(good)}" if good else "")
                     + ("; " if good and bad else "") + (f"missed: {', '.join(bad)}" if bad else ""))
    for g in independence(runs):
        lines.append(f"- rows examined per scrape, DIRAC {g['generation']}, {g['active']:,} active, N = "
                     + ", ".join(_n(j) for j in g["jobs"]) + f": {', '.join(f'{x:,}' for x in g['rows'])}"
                     + f" (spread {g['spread'] * 100:.1f} %, target ≤ {TARGETS['rows_spread'] * 100:.0f} %:"
                     + f" {'met' if g['met'] else 'missed'})")
    for g in independence(runs, of="active"):
        lines.append(f"- rows examined per scrape, DIRAC {g['generation']}, N = {_n(g['jobs'])}, active "
                     + ", ".join(_n(a) for a in g["active"]) + f": {', '.join(f'{x:,}' for x in g['rows'])}"
                     + f" (spread {g['spread'] * 100:.1f} %, target ≤ {TARGETS['rows_spread'] * 100:.0f} %:"
                     + f" {'met' if g['met'] else 'missed'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="JSON files written by bench/run --json")
    p.add_argument("--markdown", metavar="FILE", help="also write the table here")
    args = p.parse_args(argv)
    runs = []
    for f in args.files:
        try:
            runs.append(json.loads(Path(f).read_text()))
        except (OSError, ValueError) as exc:
            print(f"bench.report: {f}: {getattr(exc, 'strerror', None) or exc}; give a bench/run --json file",
                  file=sys.stderr)
            return 2
    runs.sort(key=lambda r: (r["generation"], bool(_left_out(r)), r["jobs"], r["active"]))
    text = table(runs) + "\n\n" + summary(runs) + "\n"
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
