"""The report as one self-contained HTML page (inline CSS, PNG plots as data: URIs)."""

from __future__ import annotations

import base64
import html
import math

from . import argo, plots
from .figures import Report, SiteFigures
from .period import HOUR, fmt_period, fmt_time

# Colour lines of the job and pilot columns: DIRAC RSS's Degraded/Banned lines (alerts/thresholds.yml
# site_failure_ratio_warning/critical) and the DiracPilotsFailing line (pilot_failure_ratio).
JOB_WARN, JOB_BAD, PILOT_BAD = 0.1, 0.5, 0.5
WORST = 5

CSS = """
@page { size: A4 landscape; margin: 11mm 10mm 12mm;
        @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; color: #57606a;
                        font-family: "DejaVu Sans", sans-serif; } }
body { font-family: "DejaVu Sans", "Helvetica", "Arial", sans-serif; color: #1f2328; font-size: 10pt;
       margin: 0 auto; max-width: 1180px; padding: 14px; background: #ffffff; }
h1 { font-size: 18pt; margin: 0 0 2px; }
h2 { font-size: 13pt; margin: 18px 0 6px; border-bottom: 2px solid #d0d7de; padding-bottom: 2px; }
h3 { font-size: 12pt; margin: 0 0 4px; }
h4 { font-size: 10pt; margin: 8px 0 3px; }
.meta { color: #57606a; font-size: 8.5pt; margin: 2px 0; }
.verdict { font-size: 12pt; font-weight: bold; margin: 10px 0 4px; padding: 8px 10px; border-radius: 4px; }
.verdict.bad { background: #ffebe9; border-left: 5px solid #cf222e; }
.verdict.ok { background: #dafbe1; border-left: 5px solid #2da44e; }
.summary li { margin: 2px 0; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th { background: #f6f8fa; text-align: left; font-weight: bold; }
th, td { border: 1px solid #d0d7de; padding: 3px 5px; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
td.ok { background: #dafbe1; color: #116329; font-weight: bold; }
td.warn { background: #fff8c5; color: #7d4e00; font-weight: bold; }
td.bad { background: #ffebe9; color: #a40e26; font-weight: bold; }
td.na { color: #8c959f; }
.legend, .notes { color: #57606a; font-size: 8pt; }
.site { margin: 14px 0 10px; padding-top: 6px; border-top: 1px solid #d0d7de; }
.site h3, .site .facts, .site h4 { break-after: avoid; page-break-after: avoid; }
.plots, tr { break-inside: avoid; page-break-inside: avoid; }
.facts { font-size: 8.5pt; margin: 2px 0 6px; }
figure { display: inline-block; width: 49%; margin: 0 0.5% 0 0; vertical-align: top; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 7.5pt; color: #57606a; }
img.overview { width: 62%; height: auto; display: block; margin: 6px 0; }
table.worst { width: auto; min-width: 55%; }
@media print { figure { width: 40%; margin-right: 4%; } .site { margin: 6px 0 4px; } }
"""


def pct(v: float | None) -> str:
    """A ratio as a percentage rounded down to 0.1 (a figure shown as 90.0 % did reach 90 %)."""
    return "n/a" if v is None else f"{math.floor(v * 1000 + 1e-9) / 10:.1f} %"


def count(v: float) -> str:
    return f"{round(v):,}"


def span(seconds: float) -> str:
    """A duration: hours from one hour up, else minutes or seconds."""
    if seconds >= HOUR or seconds == 0:
        return f"{seconds / HOUR:.1f} h" if seconds else "0 h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _img(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode()
    return f'<img{f" class={cls!r}" if cls else ""} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(text: str, cls: str = "num") -> str:
    return f'<td class="{cls}">{html.escape(text)}</td>'


def _target_cell(v: float | None, target: float) -> str:
    return _cell(pct(v), "num na" if v is None else "num ok" if v >= target else "num bad")


def _ratio_cell(v: float | None, warn: float | None, bad: float) -> str:
    if v is None:
        return _cell("n/a", "num na")
    cls = "bad" if v >= bad else "warn" if warn is not None and v >= warn else ""
    return _cell(pct(v), f"num {cls}".strip())


def summary(report: Report) -> list[str]:
    """The text summary, first line the verdict ("2 sites below target: ...")."""
    t = report.targets
    probed = [s for s in report.sites if s.probed]
    below = [s for s in probed if s.missed(t)]
    lines = []
    if not probed:
        lines.append("No site has probe results in this period: availability and reliability not measured.")
    elif below:
        parts = []
        for s in below:
            why = []
            if "availability" in s.missed(t):
                why.append(f"availability {pct(s.availability)} < {100 * t.availability:g} %")
            if "reliability" in s.missed(t):
                why.append(f"reliability {pct(s.reliability)} < {100 * t.reliability:g} %")
            parts.append(f"{s.site} ({', '.join(why)})")
        noun = "site" if len(below) == 1 else "sites"
        lines.append(f"{len(below)} {noun} below target (of {len(probed)} with probe results): {'; '.join(parts)}.")
    else:
        lines.append(f"All {len(probed)} sites with probe results met the targets (availability ≥ "
                     f"{100 * t.availability:g} %, reliability ≥ {100 * t.reliability:g} %).")
    met = [s.site for s in probed if not s.missed(t)]
    if below and met:
        lines.append(f"Met both targets: {', '.join(met)}.")
    unprobed = [s.site for s in report.sites if not s.probed]
    if unprobed:
        lines.append(f"No probe results (availability not measured): {', '.join(unprobed)}.")
    done = sum(s.jobs_done for s in report.sites)
    failed = sum(s.jobs_failed for s in report.sites)
    if done + failed:
        lines.append(f"Jobs: {count(done)} done, {count(failed)} failed ({pct(argo.ratio(failed, done + failed))}).")
    holes = [f"{h} ({s.site})" for s in report.sites for h, _ in (s.black_holes or [])]
    if holes:
        lines.append(f"Black-hole nodes seen: {', '.join(holes)}.")
    return lines


def _table(report: Report) -> str:
    t = report.targets
    head = ("Site", "Availability", "Reliability", "Unknown", "Monitored", "Downtime", "Jobs done", "Jobs failed",
            "Failure ratio", "Top failure reasons", "Black-hole nodes", "Pilot failure ratio")
    rows = []
    for s in report.sites:
        seen = argo.seen(s.states)
        holes = ("n/a" if s.black_holes is None else
                 ", ".join(f"{h} ({span(sec)})" for h, sec in s.black_holes) or "none")
        reasons = ", ".join(f"{r} ({count(c)})" for r, c in s.reasons) or "—"
        rows.append(
            "<tr>" + f'<td><a href="#site-{html.escape(s.site)}">{html.escape(s.site)}</a></td>'
            + _target_cell(s.availability, t.availability) + _target_cell(s.reliability, t.reliability)
            + _cell(pct(s.unknown_fraction), "num" if s.probed else "num na")
            + _cell(pct(seen / report.period.seconds) if s.probed else "n/a", "num" if s.probed else "num na")
            + _cell(span(s.states["downtime"]) if s.probed else "n/a", "num" if s.probed else "num na")
            + _cell(count(s.jobs_done)) + _cell(count(s.jobs_failed))
            + _ratio_cell(s.failure_ratio, JOB_WARN, JOB_BAD) + _cell(reasons, "")
            + _cell(holes, "warn" if s.black_holes else "") + _ratio_cell(s.pilot_failure_ratio, None, PILOT_BAD)
            + "</tr>")
    return (f"<table class=\"sites\"><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _facts(s: SiteFigures, report: Report) -> str:
    st = s.states
    parts = [f"availability {pct(s.availability)}", f"reliability {pct(s.reliability)}",
             f"seen {span(argo.seen(st))} of {span(report.period.seconds)}",
             ", ".join(f"{k.upper()} {span(v)}" for k, v in st.items())] if s.probed else ["no probe results"]
    parts.append(f"jobs {count(s.jobs_done)} done, {count(s.jobs_failed)} failed ({pct(s.failure_ratio)})")
    if s.pilots:
        parts.append(f"pilots {count(s.pilots.get('Done', 0))} done, {count(s.pilots_failed)} failed or aborted "
                     f"({pct(s.pilot_failure_ratio)})")
    return " · ".join(parts)


def _worst(s: SiteFigures, report: Report) -> str:
    unit = "hours" if report.period.base == HOUR else "minutes"
    if not s.probed:
        return ""
    stretches = argo.worst(s.state_bins, report.period.base_edges(), WORST)
    title = f"<h4>Worst {unit}</h4>"
    if not stretches:
        return title + "<p class=\"legend\">No CRITICAL, UNKNOWN or MISSING time.</p>"
    rows = "".join(
        f"<tr><td>{fmt_time(w.start)}</td><td>{fmt_time(w.end)}</td>" + _cell(span(w.end - w.start))
        + "".join(_cell(span(w.seconds[k]) if w.seconds[k] else "—") for k in ("critical", "unknown", "missing"))
        + _cell(pct(argo.availability(w.seconds)), "num") + "</tr>" for w in stretches)
    return (title + "<table class=\"worst\"><thead><tr><th>From (UTC)</th><th>To</th><th>Length</th><th>CRITICAL</th>"
            f"<th>UNKNOWN</th><th>MISSING</th><th>Availability</th></tr></thead><tbody>{rows}</tbody></table>")


def _site(s: SiteFigures, report: Report) -> str:
    p = report.period
    bin_name = {86400: "Daily", 3600: "Hourly"}.get(p.plot_bin, f"Per {p.plot_bin // 60}-minute")
    figs = []
    if s.probed:
        png = plots.availability_plot(s, p, report.targets.availability)
        figs.append(f"<figure>{_img(png, f'{s.site} availability')}<figcaption>{bin_name} share of time in "
                    "each state; line: availability of each bar"
                    "</figcaption></figure>")
    figs.append(f"<figure>{_img(plots.jobs_plot(s, p), f'{s.site} jobs')}<figcaption>{bin_name} jobs done "
                "(Done, Completed) and failed</figcaption></figure>")
    return (f'<section class="site" id="site-{html.escape(s.site)}"><h3>{html.escape(s.site)}</h3>'
            f'<p class="facts">{html.escape(_facts(s, report))}</p><div class="plots">{"".join(figs)}</div>'
            f"{_worst(s, report)}</section>")


def page(report: Report) -> str:
    """The whole HTML document."""
    p, t = report.period, report.targets
    lines = summary(report)
    verdict_cls = "bad" if any(s.missed(t) for s in report.sites) else "ok"
    overview = plots.overview_plot(report)
    meta = [f"Period {fmt_period(p)}",
            f"DIRAC instance {report.instance}" if report.instance else "all DIRAC instances",
            f"Prometheus {report.prometheus}", f"generated {fmt_time(report.generated)} UTC"]
    legend = (
        f"Targets: availability ≥ {100 * t.availability:g} %, reliability ≥ {100 * t.reliability:g} % (green met, red "
        "missed). ARGO formulas from the probe states (one sample every "
        f"{report.interval:g} s): availability = UP / (T − UNKNOWN − MISSING), reliability = UP / (T − UNKNOWN − "
        "MISSING − DOWNTIME), T = the time the site was seen (Monitored, share of the period). Unknown = (UNKNOWN + "
        "MISSING) / T. Downtime = scheduled downtime. Failure ratio = Failed / (Done + Completed + Failed) "
        f"(yellow ≥ {100 * JOB_WARN:g} %, red ≥ {100 * JOB_BAD:g} %: DIRAC RSS's Degraded and Banned lines). Pilot "
        "failure ratio = (Failed + Aborted) / (Done + Failed + Aborted). Black-hole nodes: "
        + (f"nodes flagged {report.black_hole_source}, and for how long. " if report.black_hole_source
           else "not measurable here. ") + "Percentages rounded down to 0.1 %.")
    notes = "".join(f"<p class=\"notes\">{html.escape(n)}</p>" for n in report.notes)
    title = f"Site availability and reliability — {p.label}"
    return (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1>"
        f"<p class=\"meta\">{html.escape(' · '.join(meta))}</p></header>"
        f"<p class=\"verdict {verdict_cls}\">{html.escape(lines[0])}</p>"
        f"<ul class=\"summary\">{''.join(f'<li>{html.escape(line)}</li>' for line in lines[1:])}</ul>{notes}"
        + (_img(overview, "availability and reliability per site", "overview") if overview else "")
        + f"<h2>Summary</h2>{_table(report)}<p class=\"legend\">{html.escape(legend)}</p>"
        f"<h2>Sites</h2>{''.join(_site(s, report) for s in report.sites)}"
        "</body></html>")
