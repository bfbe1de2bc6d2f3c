"""The report's plots as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import argo  # noqa: E402
from .figures import Report, SiteFigures  # noqa: E402
from .period import DAY, HOUR, Period  # noqa: E402

STATE_COLORS = {"up": "#2da44e", "critical": "#cf222e", "unknown": "#d4a72c", "missing": "#8c959f",
                "downtime": "#0969da"}
DONE, FAILED, LINE, TARGET = "#2da44e", "#cf222e", "#1f2328", "#8250df"
DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _bin_labels(p: Period) -> tuple[list[str], str]:
    """Tick label of every plot bin, and the x-axis title."""
    starts = p.plot_edges()[:-1]
    if p.plot_bin >= DAY:
        title = f"day ({time.strftime('%B %Y', time.gmtime(p.start))}, UTC)"
        return [time.strftime("%d", time.gmtime(t)) for t in starts], title
    fmt = "%H:%M" if p.plot_bin % HOUR else "%H"
    return [time.strftime(fmt, time.gmtime(t)) for t in starts], "time (UTC)"


def _axis(ax, p: Period) -> None:
    labels, title = _bin_labels(p)
    every = max(1, -(-len(labels) // 16))
    ax.set_xticks(range(0, len(labels), every), labels[::every], fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(title, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def availability_plot(site: SiteFigures, p: Period, target: float) -> bytes:
    """Share of each plot bin spent in each state (stacked), the bin's availability, the target."""
    per = p.plot_bin // p.base
    bins = argo.regroup(site.state_bins, per)
    edges = p.plot_edges()
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    bottom = [0.0] * len(bins)
    for state, color in STATE_COLORS.items():
        share = [100 * b[state] / (edges[i + 1] - edges[i]) for i, b in enumerate(bins)]
        ax.bar(range(len(bins)), share, bottom=bottom, color=color, width=0.85, label=state.upper(), linewidth=0)
        bottom = [a + b for a, b in zip(bottom, share)]
    avail = [argo.availability(b) for b in bins]
    xs = [i for i, a in enumerate(avail) if a is not None]
    ax.plot(xs, [100 * avail[i] for i in xs], color=LINE, marker="o", markersize=2.5, linewidth=1.2,
            label="availability")
    ax.axhline(100 * target, color=TARGET, linestyle="--", linewidth=1, label=f"target {100 * target:g} %")
    ax.set_ylim(0, 104)
    ax.set_ylabel("% of time", fontsize=8)
    _axis(ax, p)
    ax.legend(fontsize=6.5, ncol=7, loc="upper center", bbox_to_anchor=(0.5, 1.2), frameon=False)
    return _png(fig)


def jobs_plot(site: SiteFigures, p: Period) -> bytes:
    """Jobs done and failed per plot bin (stacked)."""
    done = [d for d, _ in site.job_bins]
    failed = [f for _, f in site.job_bins]
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    ax.bar(range(len(done)), done, color=DONE, width=0.85, label="done", linewidth=0)
    ax.bar(range(len(done)), failed, bottom=done, color=FAILED, width=0.85, label="failed", linewidth=0)
    ax.set_ylabel("jobs", fontsize=8)
    _axis(ax, p)
    ax.legend(fontsize=6.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.2), frameon=False)
    return _png(fig)


def overview_plot(report: Report) -> bytes | None:
    """Availability and reliability of every probed site against the targets (None: no probed site)."""
    sites = [s for s in report.sites if s.probed]
    if not sites:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.32 * len(sites)))
    ys = range(len(sites))
    t = report.targets
    for offset, name, values, target in ((-0.2, "availability", [s.availability for s in sites], t.availability),
                                         (0.2, "reliability", [s.reliability for s in sites], t.reliability)):
        colors = [STATE_COLORS["up"] if v is not None and v >= target else STATE_COLORS["critical"] for v in values]
        ax.barh([y + offset for y in ys], [100 * (v or 0) for v in values], height=0.38, color=colors,
                alpha=1.0 if name == "availability" else 0.55, label=name)
    ax.axvline(100 * t.availability, color=TARGET, linestyle="--", linewidth=1)
    ax.axvline(100 * t.reliability, color=TARGET, linestyle=":", linewidth=1)
    ax.set_yticks(list(ys), [s.site for s in sites], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% — solid: availability (target {100 * t.availability:g} %, dashed), pale: reliability "
                  f"(target {100 * t.reliability:g} %, dotted)", fontsize=7)
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
