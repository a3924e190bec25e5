"""Parent memory: does the parent's peak RSS grow with the number of items?

    uv run --group bench python benchmarks/memory.py [--sizes 100000,1000000] [--workers 2]

Each measurement runs in a FRESH subprocess (``memory.py --child ENGINE N``) that streams N
cheap items (``workloads.spin`` at about 10 us) from a generator through one engine on W workers,
consumes and discards every result, then reports its own peak RSS,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the parent only, never its workers. The input is a
generator (``itertools.repeat``), so the input itself costs nothing and any growth is the engine
holding items or results. Engines:

- ``baseline``: imports crunch and runs nothing (the interpreter and imports alone)
- ``crunch``: ``crunch.imap(fn, items, mode="process")``
- ``Pool``: ``multiprocessing.Pool.imap_unordered`` with ``chunksize = ceil(N / (4 * W))``
- ``joblib``: ``Parallel(return_as="generator_unordered", batch_size="auto")`` (loky)
- ``mpire``: ``WorkerPool.imap_unordered`` (``iterable_len=N`` given, so it can chunk)
- ``PPE``: ``ProcessPoolExecutor.map`` with ``chunksize = ceil(N / (4 * W))`` (chunksize=1, its
  default, needs minutes and hundreds of MB for 1 M items; tuned is its best case)

Targets for crunch: RSS at the largest size within 25 % of RSS at the smallest, and under 45 MB.
Writes benchmarks/results/memory.json and memory.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchutil
import workloads

GRAIN = 10e-6
ENGINES = ("baseline", "crunch", "Pool", "joblib", "mpire", "PPE")
TARGET_GROWTH = 1.25
TARGET_MB = 45.0


# ----------------------------------------------------------------------------- child side
def child_crunch(items: Iterator[int], n: int, workers: int) -> int:
    import crunch

    return workloads.consume(crunch.imap(workloads.spin, items, mode="process", workers=workers))


def child_pool(items: Iterator[int], n: int, workers: int) -> int:
    import multiprocessing

    with multiprocessing.Pool(workers) as pool:
        chunksize = math.ceil(n / (4 * workers))
        return workloads.consume(pool.imap_unordered(workloads.spin, items, chunksize=chunksize))


def child_joblib(items: Iterator[int], n: int, workers: int) -> int:
    from benchutil import joblib_parallel
    from joblib import delayed

    parallel = joblib_parallel(workers)
    return workloads.consume(parallel(delayed(workloads.spin)(x) for x in items))


def child_mpire(items: Iterator[int], n: int, workers: int) -> int:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=workers) as pool:
        return workloads.consume(pool.imap_unordered(workloads.spin, items, iterable_len=n))


def child_ppe(items: Iterator[int], n: int, workers: int) -> int:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        chunksize = math.ceil(n / (4 * workers))
        return workloads.consume(pool.map(workloads.spin, items, chunksize=chunksize))


def child_baseline(items: Iterator[int], n: int, workers: int) -> int:
    import crunch  # noqa: F401 - the import is what is measured

    return n


CHILDREN: dict[str, Callable[[Iterator[int], int, int], int]] = {
    "baseline": child_baseline,
    "crunch": child_crunch,
    "Pool": child_pool,
    "joblib": child_joblib,
    "mpire": child_mpire,
    "PPE": child_ppe,
}


def run_child(engine: str, n: int, workers: int, iterations: int) -> None:
    items = itertools.repeat(iterations, n)
    began = time.perf_counter()
    count = CHILDREN[engine](items, n, workers)
    seconds = time.perf_counter() - began
    if count != n:
        raise RuntimeError(f"{engine}: {count} results for {n} items")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"engine": engine, "items": n, "maxrss_kb": peak_kb, "seconds": seconds}))


# ----------------------------------------------------------------------------- parent side
def measure(engine: str, n: int, workers: int, iterations: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        str(n),
        "--workers",
        str(workers),
        "--iterations",
        str(iterations),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} N={n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--out", default="memory.json", help="file name under benchmarks/results")
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child[0], int(args.child[1]), args.workers, args.iterations)
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    engines = [e for e in args.engines.split(",") if e]
    workers = args.workers
    benchutil.warn_if_busy(workers)
    info = benchutil.machine()
    rate = workloads.calibrate()
    iterations = workloads.iterations_for(GRAIN, rate)
    rows: list[dict[str, Any]] = []
    for engine in engines:
        for n in sizes:
            result = measure(engine, n, workers, iterations)
            result["rss_mb"] = result["maxrss_kb"] / 1024
            result["items_per_second"] = n / result["seconds"] if engine != "baseline" else None
            rows.append(result)
            print(f"{engine} N={n:,}: {result['rss_mb']:.1f} MB", file=sys.stderr)
    checks = check_targets(rows, sizes)
    table = render(rows, sizes, checks, info, workers)
    print(table)
    data = {
        "benchmark": "memory",
        "machine": info,
        "load_after": benchutil.load(),
        "workers": workers,
        "grain_seconds": GRAIN,
        "iterations": iterations,
        "sizes": sizes,
        "rows": rows,
        "checks": checks,
    }
    path = benchutil.save_json(args.out, data)
    benchutil.save_text(Path(args.out).with_suffix(".md").name, table)
    print(f"\nsaved {path}", file=sys.stderr)
    return 0


def by_engine(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        table.setdefault(row["engine"], {})[row["items"]] = row
    return table


def check_targets(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    crunch = by_engine(rows).get("crunch")
    if not crunch or len(sizes) < 2:
        return []
    small, large = crunch[min(sizes)]["rss_mb"], crunch[max(sizes)]["rss_mb"]
    return [
        {
            "target": f"RSS at {max(sizes):,} within {TARGET_GROWTH - 1:.0%} of RSS at "
            f"{min(sizes):,}",
            "value": large / small,
            "met": large / small <= TARGET_GROWTH,
        },
        {
            "target": f"RSS at {max(sizes):,} under {TARGET_MB:.0f} MB",
            "value": large,
            "met": large < TARGET_MB,
        },
    ]


def render(
    rows: list[dict[str, Any]],
    sizes: list[int],
    checks: list[dict[str, Any]],
    info: dict[str, Any],
    workers: int,
) -> str:
    header = ["engine"]
    for n in sizes:
        header += [f"RSS MB @ {n:,}", f"items/s @ {n:,}"]
    header.append(f"RSS {max(sizes):,} / {min(sizes):,}")
    body = []
    for engine, per_size in by_engine(rows).items():
        line: list[Any] = [engine]
        for n in sizes:
            row = per_size.get(n)
            rate = row["items_per_second"] if row else None
            line += [
                f"{row['rss_mb']:.1f}" if row else "-",
                f"{rate:,.0f}" if rate else "-",
            ]
        lo, hi = per_size.get(min(sizes)), per_size.get(max(sizes))
        line.append(f"{hi['rss_mb'] / lo['rss_mb']:.2f}" if lo and hi else "-")
        body.append(line)
    check_rows = [[c["target"], f"{c['value']:.3g}", "yes" if c["met"] else "NO"] for c in checks]
    return "\n".join(
        [
            f"## Memory benchmark: parent peak RSS, {workers} workers, ~10 us items",
            "",
            f"Machine: {benchutil.machine_line(info)}. Each cell is one fresh subprocess;",
            "RSS is ru_maxrss of the parent process only (not its workers).",
            "",
            benchutil.markdown_table(header, body),
            "",
            "### Targets for crunch",
            "",
            benchutil.markdown_table(["target", "value", "met"], check_rows),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
