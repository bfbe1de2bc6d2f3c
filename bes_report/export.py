"""report.csv (one row per site, ratios as fractions 0-1, empty when not measurable) and report.pdf
(the HTML page laid out by WeasyPrint)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from . import argo
from .figures import Report

COLUMNS = ("site", "availability", "reliability", "unknown_fraction", "downtime_hours", "monitored_fraction",
           "up_hours", "critical_hours", "unknown_hours", "missing_hours", "jobs_done", "jobs_failed",
           "job_failure_ratio", "top_failure_reasons", "black_hole_hosts", "pilots_done", "pilots_failed",
           "pilot_failure_ratio", "targets_met")


def _fraction(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _hours(seconds: float, probed: bool) -> str:
    return f"{seconds / 3600:.4f}" if probed else ""


def rows(report: Report) -> list[dict[str, str]]:
    out = []
    for s in report.sites:
        st, probed = s.states, s.probed
        out.append({
            "site": s.site, "availability": _fraction(s.availability), "reliability": _fraction(s.reliability),
            "unknown_fraction": _fraction(s.unknown_fraction), "downtime_hours": _hours(st["downtime"], probed),
            "monitored_fraction": _fraction(argo.seen(st) / report.period.seconds) if probed else "",
            "up_hours": _hours(st["up"], probed), "critical_hours": _hours(st["critical"], probed),
            "unknown_hours": _hours(st["unknown"], probed), "missing_hours": _hours(st["missing"], probed),
            "jobs_done": f"{round(s.jobs_done)}", "jobs_failed": f"{round(s.jobs_failed)}",
            "job_failure_ratio": _fraction(s.failure_ratio),
            "top_failure_reasons": ";".join(f"{r}:{round(c)}" for r, c in s.reasons),
            "black_hole_hosts": "" if s.black_holes is None else ";".join(h for h, _ in s.black_holes),
            "pilots_done": f"{round(s.pilots.get('Done', 0.0))}", "pilots_failed": f"{round(s.pilots_failed)}",
            "pilot_failure_ratio": _fraction(s.pilot_failure_ratio),
            "targets_met": "" if not probed else "no" if s.missed(report.targets) else "yes",
        })
    return out


def write_csv(report: Report, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows(report))


def write_pdf(page: str, path: Path) -> None:
    """Lay the HTML page out as a PDF (A4 landscape, from the page's own @page rule)."""
    import weasyprint  # imported here: it loads Pango at import time

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    weasyprint.HTML(string=page, base_url=str(path.parent)).write_pdf(str(path))
