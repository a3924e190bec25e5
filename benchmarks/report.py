"""Turn saved benchmark JSON into a Markdown report and PNG charts.

    uv run --group bench python benchmarks/report.py [--suite FILE] [--grain FILE] [--memory FILE]

Inputs (each optional; by default whichever exist in benchmarks/results/):

- ``suite.json``: pytest-benchmark's ``--benchmark-json`` output of test_bench.py
- ``grain.json``: from grain.py
- ``memory.json``: from memory.py

Writes benchmarks/results/report.md with, per source, a table of items/s, speed-up over sync and
efficiency vs the ideal (sync items/s x workers), and the targets of the issues (met or not);
and charts drawn with matplotlib's Agg backend: ``speedup_by_grain.png`` (suite),
``grain_efficiency.png`` (grain.py), ``modes_by_workload.png`` (suite), ``memory.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchutil

CRUNCH_MODES = ("crunch-sync", "crunch-thread", "crunch-async", "crunch-process")
PEERS = ("ppe-default", "ppe-tuned", "pool-tuned", "joblib", "mpire")
CPU_WORKLOADS = ("cpu-10us", "cpu-100us", "cpu-1ms", "cpu-10ms")
WORKLOAD_ORDER = (*CPU_WORKLOADS, "hash", "sleep", "mixed")


# ----------------------------------------------------------------------------- suite
def suite_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark case with items/s, speed-up over crunch-sync and efficiency."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "engine" not in info:
            continue
        median = bench["stats"]["median"]
        rows.append(
            {
                "workload": info["workload"],
                "kind": info.get("kind", ""),
                "engine": info["engine"],
                "items": info["items"],
                "workers": info["workers"],
                "grain_seconds": info.get("grain_seconds"),
                "median": median,
                "min": bench["stats"].get("min", median),
                "items_per_second": info["items"] / median if median > 0 else float("inf"),
            }
        )
    by_workload: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_workload.setdefault(row["workload"], {})[row["engine"]] = row
    for engines in by_workload.values():
        sync = engines.get("crunch-sync")
        for row in engines.values():
            if sync is None:
                row["speedup"] = row["efficiency"] = None
                continue
            ratio = row["items_per_second"] / sync["items_per_second"]
            row["speedup"] = ratio
            row["efficiency"] = ratio / row["workers"]
    order = {name: i for i, name in enumerate(WORKLOAD_ORDER)}
    engines_order = {name: i for i, name in enumerate(("loop", *CRUNCH_MODES, *PEERS))}
    rows.sort(key=lambda r: (order.get(r["workload"], 99), engines_order.get(r["engine"], 99)))
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def suite_markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = ["workload", "engine", "N", "workers", "items/s", "speedup", "efficiency"]
    body = [
        [
            r["workload"],
            r["engine"],
            f"{r['items']:,}",
            r["workers"],
            f"{r['items_per_second']:,.0f}",
            _fmt(r["speedup"], ".2f") + ("x" if r["speedup"] is not None else ""),
            _fmt(r["efficiency"], ".1%"),
        ]
        for r in rows
    ]
    return benchutil.markdown_table(header, body)


def suite_checks(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets of the issues, measured on this suite's numbers."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        table.setdefault(row["workload"], {})[row["engine"]] = row
    checks = []
    for workload in CPU_WORKLOADS:
        engines = table.get(workload, {})
        mine = engines.get("crunch-process")
        peers = [engines[p] for p in PEERS if p in engines]
        if mine is None or not peers:
            continue
        best = max(peers, key=lambda r: r["items_per_second"])
        ratio = mine["items_per_second"] / best["items_per_second"]
        checks.append(
            {
                "target": f"{workload}: crunch process >= best peer ({best['engine']})",
                "value": ratio,
                "shown": f"{ratio:.2f}x",
                "met": ratio >= 1.0,
            }
        )
    sleep = table.get("sleep", {})
    for mode in ("crunch-thread", "crunch-async"):
        row = sleep.get(mode)
        if row is not None and row["speedup"] is not None:
            checks.append(
                {
                    "target": f"sleep: {mode} ({row['workers']} workers) >= 12x sync",
                    "value": row["speedup"],
                    "shown": f"{row['speedup']:.1f}x",
                    "met": row["speedup"] >= 12,
                }
            )
    row = table.get("hash", {}).get("crunch-thread")
    if row is not None and row["speedup"] is not None:
        checks.append(
            {
                "target": f"hash: crunch-thread ({row['workers']} workers) >= 1.8x sync",
                "value": row["speedup"],
                "shown": f"{row['speedup']:.2f}x",
                "met": row["speedup"] >= 1.8,
            }
        )
    return checks


def checks_markdown(checks: Sequence[dict[str, Any]]) -> str:
    best = any("value_best" in c for c in checks)
    header = ["target", "value", "met"] + (["best runs", "met (best)"] if best else [])
    body = []
    for c in checks:
        row = [c["target"], c.get("shown") or f"{c['value']:.3g}", "yes" if c["met"] else "NO"]
        if best:
            row += [
                f"{c['value_best']:.3g}" if "value_best" in c else "-",
                ("yes" if c["met_best"] else "NO") if "met_best" in c else "-",
            ]
        body.append(row)
    return benchutil.markdown_table(header, body)


# ----------------------------------------------------------------------------- charts
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_speedup_by_grain(
    points: Sequence[tuple[str, float, float]], path: Path, title: str, ideal: float | None
) -> Path:
    """``points``: (engine, grain seconds, speed-up over sync); one line per engine."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    engines = list(dict.fromkeys(p[0] for p in points))
    for engine in engines:
        mine = sorted((g, s) for e, g, s in points if e == engine)
        style = {"linewidth": 2.5} if "crunch" in engine else {"linewidth": 1.2, "alpha": 0.8}
        ax.plot([g for g, _ in mine], [s for _, s in mine], marker="o", label=engine, **style)
    if ideal is not None:
        ax.axhline(ideal, color="grey", linestyle="--", linewidth=1, label=f"ideal ({ideal:g}x)")
    ax.set_xscale("log")
    grains = sorted({p[1] for p in points})
    ax.set_xticks(grains, [_grain_label(g) for g in grains])
    ax.minorticks_off()
    ax.set_xlabel("CPU cost per item")
    ax.set_ylabel("speed-up over sync")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_modes_by_workload(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: crunch's four modes (and the best peer) per workload, speed-up over sync."""
    plt = _pyplot()
    workloads = [w for w in WORKLOAD_ORDER if any(r["workload"] == w for r in rows)]
    series = [*CRUNCH_MODES, "best peer"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for index, name in enumerate(series):
        heights = []
        for workload in workloads:
            mine = [r for r in rows if r["workload"] == workload and r["speedup"] is not None]
            if name == "best peer":
                peers = [r["speedup"] for r in mine if r["engine"] in PEERS]
                heights.append(max(peers) if peers else 0.0)
            else:
                heights.append(next((r["speedup"] for r in mine if r["engine"] == name), 0.0))
        positions = [i + (index - (len(series) - 1) / 2) * width for i in range(len(workloads))]
        bars = ax.bar(positions, heights, width, label=name.removeprefix("crunch-"))
        ax.bar_label(bars, labels=[f"{h:.1f}" for h in heights], fontsize=6, padding=1)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("speed-up over crunch sync")
    ax.set_yscale("log")
    ax.set_title("crunch modes by workload (sleep on 16 workers, the rest on 2)")
    ax.legend(fontsize="small", ncols=5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_memory(data: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    sizes = data["sizes"]
    engines = list(dict.fromkeys(r["engine"] for r in data["rows"]))
    width = 0.8 / len(sizes)
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    for index, n in enumerate(sizes):
        heights = [
            next((r["rss_mb"] for r in data["rows"] if r["engine"] == e and r["items"] == n), 0)
            for e in engines
        ]
        positions = [i + (index - (len(sizes) - 1) / 2) * width for i in range(len(engines))]
        bars = ax.bar(positions, heights, width, label=f"{n:,} items")
        ax.bar_label(bars, labels=[f"{h:.0f}" for h in heights], fontsize=7, padding=1)
    ax.set_xticks(range(len(engines)), engines)
    ax.set_ylabel("parent peak RSS (MB)")
    ax.set_title("parent memory vs number of items (~10 us items)")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _grain_label(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{round(seconds * 1e6)}us"
    return f"{round(seconds * 1e3)}ms"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    results = benchutil.RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=results / "suite.json")
    parser.add_argument("--grain", type=Path, default=results / "grain.json")
    parser.add_argument("--memory", type=Path, default=results / "memory.json")
    parser.add_argument("--out", type=Path, default=results, help="directory for the report")
    parser.add_argument("--no-charts", action="store_true", help="Markdown only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = ["# crunch benchmark report", ""]
    charts: list[Path] = []
    found = False

    if args.grain.exists():
        found = True
        grain = json.loads(args.grain.read_text())
        parts += [_grain_section(grain), ""]
        if not args.no_charts:
            points = [
                (c["engine"], c["grain_seconds"], c["speedup"])
                for c in grain["cases"]
                if c["engine"] not in ("loop", "crunch sync")
            ]
            title = f"grain.py: speed-up over crunch sync, {grain['workers']} workers"
            path = args.out / "grain_efficiency.png"
            charts.append(plot_speedup_by_grain(points, path, title, grain["workers"]))

    if args.memory.exists():
        found = True
        memory = json.loads(args.memory.read_text())
        parts += [_memory_section(memory), ""]
        if not args.no_charts:
            charts.append(plot_memory(memory, args.out / "memory.png"))

    if args.suite.exists():
        found = True
        suite = json.loads(args.suite.read_text())
        rows = suite_rows(suite)
        machine = suite.get("machine_info", {})
        cpu = machine.get("cpu", {})
        parts += [
            "## pytest-benchmark suite (median of the rounds)",
            "",
            f"Machine: {cpu.get('count', '?')} CPUs ({cpu.get('brand_raw', '?')}), Python "
            f"{machine.get('python_version', '?')}; run {suite.get('datetime', '?')}.",
            "Speed-up and efficiency are against crunch sync of the same workload; "
            "efficiency = speed-up / workers.",
            "",
            suite_markdown(rows),
            "",
            "### Targets",
            "",
            checks_markdown(suite_checks(rows)),
            "",
        ]
        if not args.no_charts:
            points = [
                (r["engine"], r["grain_seconds"], r["speedup"])
                for r in rows
                if r["workload"] in CPU_WORKLOADS
                and r["engine"] not in ("loop", "crunch-sync")
                and r["speedup"] is not None
            ]
            workers = max((r["workers"] for r in rows if r["workload"] in CPU_WORKLOADS), default=0)
            if points:
                title = f"suite: CPU work, speed-up over crunch sync, {workers} workers"
                path = args.out / "speedup_by_grain.png"
                charts.append(plot_speedup_by_grain(points, path, title, workers or None))
                charts.append(plot_modes_by_workload(rows, args.out / "modes_by_workload.png"))

    if not found:
        print(
            "no benchmark JSON found; run grain.py, memory.py or the suite first", file=sys.stderr
        )
        return 1
    if charts:
        parts += ["## Charts", "", *(f"![{p.stem}]({p.name})" for p in charts), ""]
    report = args.out / "report.md"
    report.write_text("\n".join(parts))
    print(f"wrote {report}" + "".join(f"\nwrote {p}" for p in charts))
    return 0


def _grain_section(grain: dict[str, Any]) -> str:
    rows = [
        [
            c["grain"],
            c["engine"],
            f"{c['items']:,}",
            c["workers"],
            f"{c['items_per_second']:,.0f}",
            f"{c['speedup']:.2f}x",
            f"{c['efficiency']:.1%}",
            f"{c['efficiency_vs_loop']:.1%}",
            f"{c['vs_tuned_pool']:.2f}",
            f"{c['parent_cpu_us_per_item']:.2f}",
        ]
        for c in grain["cases"]
    ]
    header = ["grain", "engine", "N", "workers", "items/s", "speedup", "efficiency"]
    header += ["eff. vs loop", "vs Pool tuned", "parent CPU us/item"]
    checks = [
        {**k, "target": f"{k['grain']}: {k['target']}", "shown": f"{k['value']:.3g}"}
        for k in grain["checks"]
    ]
    return "\n".join(
        [
            f"## Grain (grain.py): {grain['workers']} workers, median of {grain['repeat']}",
            "",
            f"Machine: {benchutil.machine_line(grain['machine'])}.",
            "",
            benchutil.markdown_table(header, rows),
            "",
            "### Targets",
            "",
            checks_markdown(checks),
        ]
    )


def _memory_section(memory: dict[str, Any]) -> str:
    sizes = memory["sizes"]
    header = ["engine", *(f"RSS MB @ {n:,}" for n in sizes), "ratio", "items/s @ largest"]
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for row in memory["rows"]:
        table.setdefault(row["engine"], {})[row["items"]] = row
    body = []
    for engine, per in table.items():
        lo, hi = per.get(min(sizes)), per.get(max(sizes))
        rate = hi.get("items_per_second") if hi else None
        body.append(
            [
                engine,
                *(f"{per[n]['rss_mb']:.1f}" if n in per else "-" for n in sizes),
                f"{hi['rss_mb'] / lo['rss_mb']:.2f}" if lo and hi else "-",
                f"{rate:,.0f}" if rate else "-",
            ]
        )
    checks = [{**c, "shown": f"{c['value']:.3g}"} for c in memory.get("checks", [])]
    return "\n".join(
        [
            f"## Memory (memory.py): parent peak RSS, {memory['workers']} workers",
            "",
            f"Machine: {benchutil.machine_line(memory['machine'])}.",
            "",
            benchutil.markdown_table(header, body),
            "",
            "### Targets",
            "",
            checks_markdown(checks),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
