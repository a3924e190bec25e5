"""``crunch report --plot FILE.png``: the report as pictures.

Top: how long items took, a histogram on a log axis (10 bars per decade) with the p50, p90 and
p99 marked. Bottom: failures by group (kind, type and message shape), largest first. The title
is the report's counts line. matplotlib comes from ``_plotting`` (the extra ``crunch[plot]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crunch._histogram import duration
from crunch._tally import printable

if TYPE_CHECKING:
    from crunch._report import Report

GROUPS_DRAWN = 8
KIND_COLOURS = {"error": "#c44e52", "timeout": "#dd8452", "crash": "#8172b3", "memory": "#937860"}
OTHER_COLOUR = "#8c8c8c"


def draw(report: Report, path: str | Path) -> Path:
    """Write the report's picture as a PNG at ``path``; returns the path. Without matplotlib,
    ``MissingExtraError`` says how to install it."""
    from crunch._plotting import figure_module

    figure = figure_module()
    path = Path(path)
    fig = figure.Figure(figsize=(8.0, 6.4), dpi=100, layout="constrained")
    # Two subfigures, so the long failure labels below do not squeeze the histogram above.
    upper, lower = fig.subfigures(2, 1, height_ratios=(1.1, 1.0))
    top, bottom = upper.subplots(), lower.subplots()
    fig.suptitle(
        printable(f"{report.name}: {report.tally.records} records, {report.tally.counts()}")
    )
    _durations(report, top)
    _failures(report, bottom)
    fig.savefig(path, format="png")
    return path


def _durations(report: Report, ax: Any) -> None:
    d = report.durations
    rows = d.fine_rows(10)
    ax.set_title("seconds per item")
    if not rows:
        ax.text(0.5, 0.5, "no record has a duration of 1 µs or more", ha="center", va="center")
        ax.set_axis_off()
        return
    ax.bar(
        [lo for lo, _, _ in rows],
        [n for _, _, n in rows],
        width=[hi - lo for lo, hi, _ in rows],
        align="edge",
        color="#4c72b0",
    )
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale)")
    ax.set_ylabel("items")
    ax.yaxis.get_major_locator().set_params(integer=True)
    for name, style in (("p50", ":"), ("p90", "--"), ("p99", "-.")):
        value = d.quantile(int(name[1:]) / 100)
        if value:
            ax.axvline(
                value,
                color="#222222",
                linestyle=style,
                linewidth=1,
                label=f"{name} {duration(value)}",
            )
    ax.legend(loc="upper right", fontsize="small", title=f"max {duration(d.max)}")
    if d.counts[0]:
        ax.annotate(
            f"{d.counts[0]} under 1 µs not shown",
            (0.01, 0.95),
            xycoords="axes fraction",
            va="top",
            fontsize="small",
        )


def _failures(report: Report, ax: Any) -> None:
    groups = report.sorted_groups()
    ax.set_title("failures by kind, type and message")
    if not groups:
        ax.text(0.5, 0.5, "no failures", ha="center", va="center")
        ax.set_axis_off()
        return
    drawn = groups[:GROUPS_DRAWN][::-1]  # the largest on top
    labels = []
    for g in drawn:
        label = printable(f"{g.kind} {g.type}: {g.shape or '(no message)'}")
        labels.append(label if len(label) <= 60 else label[:57] + "...")
    bars = ax.barh(
        range(len(drawn)),
        [g.count for g in drawn],
        color=[KIND_COLOURS.get(g.kind, OTHER_COLOUR) for g in drawn],
        tick_label=labels,
    )
    ax.bar_label(bars, padding=2)
    ax.set_xlabel("items")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.margins(x=0.12)
    ax.tick_params(axis="y", labelsize="small")
    rest = groups[GROUPS_DRAWN:]
    if rest:
        ax.annotate(
            f"and {len(rest)} more groups ({sum(g.count for g in rest)} items)",
            (1.0, -0.18),
            xycoords="axes fraction",
            ha="right",
            fontsize="small",
        )
