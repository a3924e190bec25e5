"""Small helpers the benchmark scripts share: machine facts, load, JSON and Markdown output."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict[str, Any]:
    """What the numbers came from: CPU count and model, Python, OS, load at the time."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": load(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def parent_cpu() -> float:
    """CPU seconds (user + system) this process has used, all its threads, not its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def warn_if_busy(workers: int) -> None:
    """Say so when other work on the machine will skew the numbers."""
    now = load()
    cpus = os.cpu_count() or 1
    if now and now[0] > 0.5:
        print(
            f"note: load average {now[0]:.2f} on {cpus} CPUs before measuring; other work "
            f"competes with the {workers} workers, so the absolute numbers are low and noisy "
            "(ratios within one run are fairer)",
            file=sys.stderr,
        )


def joblib_parallel(workers: int) -> Any:
    """``joblib.Parallel`` streaming results as they complete where this joblib can, else in
    order (``return_as="generator"``), with its default auto batching."""
    from joblib import Parallel

    try:
        return Parallel(n_jobs=workers, return_as="generator_unordered", batch_size="auto")
    except ValueError:  # joblib < 1.4
        return Parallel(n_jobs=workers, return_as="generator", batch_size="auto")


def save_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def save_text(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    numeric = [
        all(_looks_numeric(r[i]) for r in cells) if cells else False for i in range(len(header))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2))
            for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(header)), rule, *(line(r) for r in cells)])


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return stripped in ("-", "")
    return True


def machine_line(info: dict[str, Any]) -> str:
    load_now = info.get("load_average") or []
    shown = f", load {load_now[0]:.2f}" if load_now else ""
    return (
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), "
        f"{info['implementation']} {info['python']}, {info['platform']}{shown}"
    )
