"""What ``crunch bench`` measures: the user's task on a sample of their inputs, in each mode.

    sample(items, n, seed)              a deterministic sample, in input order
    bench_modes(fn, items, workers=N)   -> BenchReport: items/s and speedup over sync per mode
    report.table()                      a fixed-width text table naming the fastest mode
    plot(report, path)                  a bar chart PNG (needs the optional extra crunch[plot])

Every mode runs through the public ``crunch.run``, exactly as a real run would, so the numbers
include crunch's own costs (dispatch, chunking, result handling). Each mode first gets a short
untimed warm-up on a few items: one-time costs of the *process* (importing the task, starting
the forkserver) would otherwise be charged to whichever mode runs first, while a real run pays
them once for thousands of items. Pool start-up of each run is still timed, since a real run
pays it too. A mode that cannot run the task at all (a process-mode task that does not pickle)
is reported with its reason rather than stopping the comparison.

Each mode also runs once on just ``workers`` items (timed, after the warm-up): comparing
that short run with the full one splits a mode's time into a fixed *start-up* (starting
workers, the first round trip) and a per-item rate. On a small sample the start-up of
process mode can outweigh everything else, while a real run of many thousands of items pays
it once; the table shows it, and names the mode that would be fastest at scale when that
differs from the fastest on the sample.

The numbers are a sample: a few hundred items on a busy machine vary by several percent
between runs, so ``repeat`` > 1 times each mode several times and keeps the median.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from crunch._exceptions import CrunchError, UsageError
from crunch._modes import MODES

T = TypeVar("T")

#: The modes ``crunch bench`` compares, baseline first (dask needs a cluster: not by default).
LOCAL_MODES = tuple(mode for mode in MODES if mode != "dask")  # what bench compares


@dataclass(frozen=True, slots=True)
class ModeTiming:
    """One mode's measurement: the median wall time of ``runs`` runs over ``items`` items."""

    mode: str
    workers: int
    items: int
    seconds: float | None  # None: the mode could not run the task (see ``error``)
    runs: tuple[float, ...] = ()
    ok: int = 0
    failed: int = 0
    error: str | None = None
    startup: float | None = None  # fixed seconds per run, estimated (see the module docstring)

    @property
    def items_per_second(self) -> float | None:
        if self.seconds is None:
            return None
        return self.items / self.seconds if self.seconds > 0 else float("inf")

    @property
    def steady_items_per_second(self) -> float | None:
        """Items/s once started: what a run of many more items approaches."""
        if self.seconds is None or self.startup is None:
            return None
        working = self.seconds - self.startup
        return self.items / working if working > 0 else None


@dataclass(slots=True)
class BenchReport:
    """Every mode's timing on the same sample; ``fastest`` names the winner."""

    items: int
    workers: int
    timings: list[ModeTiming] = field(default_factory=list)

    def timing(self, mode: str) -> ModeTiming | None:
        return next((t for t in self.timings if t.mode == mode), None)

    def speedup(self, mode: str) -> float | None:
        """How many times faster than ``sync`` (None without a sync or a timing for ``mode``)."""
        base, this = self.timing("sync"), self.timing(mode)
        if base is None or this is None or base.seconds is None or this.seconds is None:
            return None
        return base.seconds / this.seconds if this.seconds > 0 else float("inf")

    @property
    def fastest(self) -> str | None:
        """The mode with the highest items/s among those where some item succeeded (None when
        no mode could run, or every item failed: failing fast is no speed)."""
        timed = [t for t in self.timings if t.seconds is not None and t.ok]
        if not timed:
            return None
        return min(timed, key=lambda t: t.seconds or 0.0).mode

    @property
    def fastest_at_scale(self) -> str | None:
        """The mode with the highest items/s once started (None when not estimated)."""
        rated = [t for t in self.timings if t.steady_items_per_second is not None and t.ok]
        if not rated:
            return None
        return max(rated, key=lambda t: t.steady_items_per_second or 0.0).mode

    def table(self) -> str:
        """A fixed-width text table, one row a mode, and a last line naming the fastest."""
        runs = max((len(t.runs) for t in self.timings), default=0)
        of = f"median of {runs} runs" if runs > 1 else "1 run"
        lines = [
            f"{self.items} items, {self.workers} workers ({of} per mode)",
            f"{'mode':<8} {'workers':>7} {'seconds':>9} {'start-up':>9} {'items/s':>11}"
            f" {'speedup':>8}  failed",
        ]
        for t in self.timings:
            if t.seconds is None:
                lines.append(f"{t.mode:<8} {t.workers:>7}  could not run: {t.error}")
                continue
            rate = t.items_per_second or 0.0
            speedup = self.speedup(t.mode)
            shown = f"{speedup:.2f}x" if speedup is not None else "-"
            startup = f"{t.startup:.3f}" if t.startup is not None else "-"
            lines.append(
                f"{t.mode:<8} {t.workers:>7} {t.seconds:>9.3f} {startup:>9} {rate:>11,.1f}"
                f" {shown:>8}  {t.failed}"
            )
        fastest = self.fastest
        if fastest is None:
            if any(t.seconds is not None for t in self.timings):
                why = "every item failed in every mode; crunch process on them shows why"
            else:
                why = "no mode could run the task"
            lines.append(f"fastest: none ({why})")
            return "\n".join(lines)
        speedup = self.speedup(fastest)
        detail = f" ({speedup:.2f}x sync)" if speedup is not None else ""
        lines.append(f"fastest: {fastest}{detail}")
        at_scale = self.fastest_at_scale
        if at_scale is not None and at_scale != fastest:
            lines.append(
                f"at scale: {at_scale} (its start-up dominates this sample; on many more "
                "items it would be fastest)"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON)."""
        return {
            "items": self.items,
            "workers": self.workers,
            "fastest": self.fastest,
            "fastest_at_scale": self.fastest_at_scale,
            "modes": [
                {
                    "mode": t.mode,
                    "workers": t.workers,
                    "seconds": t.seconds,
                    "runs": list(t.runs),
                    "items_per_second": t.items_per_second,
                    "startup": t.startup,
                    "steady_items_per_second": t.steady_items_per_second,
                    "speedup": self.speedup(t.mode),
                    "ok": t.ok,
                    "failed": t.failed,
                    "error": t.error,
                }
                for t in self.timings
            ],
        }


def sample(items: Sequence[T], n: int, seed: int = 0) -> list[T]:
    """Up to ``n`` items picked at random with ``seed``, kept in input order.

    The same items, seed and ``n`` always give the same sample; all items when there are no
    more than ``n``.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    if len(items) <= n:
        return list(items)
    picked = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in picked]


def bench_modes(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int,
    modes: Sequence[str] = LOCAL_MODES,
    repeat: int = 1,
    warmup: bool = True,
    **options: Any,
) -> BenchReport:
    """Time ``fn`` over ``items`` in each of ``modes`` through ``crunch.run``.

    ``sync`` runs one item at a time (its ``workers`` is 1); the other modes get ``workers``.
    ``options`` go to ``crunch.run`` as they are (``chunk_size``, ``timeout``...). Raises
    ``UsageError`` for no items or bad arguments, and the first mode's error when no mode
    could run the task at all.
    """
    import crunch

    items = list(items)
    if not items:
        raise UsageError("no items to time")
    if repeat < 1:
        raise UsageError(f"repeat must be at least 1, got {repeat}")
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UsageError(
            f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(LOCAL_MODES)}"
        )
    report = BenchReport(items=len(items), workers=workers)
    errors: list[CrunchError] = []
    for mode in modes:
        lanes = 1 if mode == "sync" else workers
        few = items[: max(2, lanes)]
        try:
            if warmup:
                crunch.run(fn, few, mode=mode, workers=lanes, **options)
            runs: list[float] = []
            batch = None
            for _ in range(repeat):
                began = time.perf_counter()
                batch = crunch.run(fn, items, mode=mode, workers=lanes, **options)
                runs.append(time.perf_counter() - began)
            short = None
            if len(few) < len(items):
                began = time.perf_counter()
                crunch.run(fn, few, mode=mode, workers=lanes, **options)
                short = time.perf_counter() - began
        except UsageError as exc:
            if isinstance(exc, crunch.ConfigError):
                raise  # a bad option is wrong for every mode
            errors.append(exc)
            report.timings.append(
                ModeTiming(mode, lanes, len(items), None, error=str(exc).splitlines()[0])
            )
            continue
        assert batch is not None
        seconds = statistics.median(runs)
        report.timings.append(
            ModeTiming(
                mode,
                lanes,
                len(items),
                seconds,
                tuple(runs),
                ok=len(batch.succeeded),
                failed=len(batch.failed),
                startup=_startup(seconds, len(items), short, len(few)),
            )
        )
    if errors and len(errors) == len(report.timings):
        raise errors[0]
    return report


def _startup(seconds: float, items: int, short: float | None, few: int) -> float | None:
    """The fixed part of a run's time, from a full run and a short one of ``few`` items.

    With ``t = startup + n * per_item`` for both runs: ``per_item`` is the slope between them
    and ``startup`` what is left of the short run. None when the runs cannot tell (noise).
    """
    if short is None or items <= few:
        return None
    per_item = (seconds - short) / (items - few)
    if per_item <= 0:
        return None
    return max(0.0, short - few * per_item)


def plot(report: BenchReport, path: str | Path) -> Path:
    """Draw items/s per mode as a bar chart PNG at ``path`` (the fastest in a darker colour).

    Needs matplotlib, the optional extra ``crunch[plot]``; without it raises
    ``MissingExtraError`` saying how to install it. Returns the path written.
    """
    from crunch._plotting import figure_module

    figure = figure_module()
    path = Path(path)
    timed = [t for t in report.timings if t.seconds is not None]
    fastest = report.fastest
    fig = figure.Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    names = [t.mode for t in timed]
    rates = [t.items_per_second or 0.0 for t in timed]
    colours = ["#1f5f99" if t.mode == fastest else "#8fb3d9" for t in timed]
    bars = ax.bar(names, rates, color=colours)
    labels = []
    for t in timed:
        speedup = report.speedup(t.mode)
        labels.append(f"{speedup:.2f}x" if speedup is not None else "")
    ax.bar_label(bars, labels=labels, padding=2)
    ax.set_ylabel("items/s")
    ax.set_title(f"crunch bench: {report.items} items, {report.workers} workers")
    ax.margins(y=0.15)
    fig.savefig(path, format="png")
    return path
