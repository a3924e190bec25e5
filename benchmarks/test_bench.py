"""The benchmark suite: every workload in every crunch mode and against its peers.

Workloads (functions in workloads.py, so workers can import them):

- ``cpu-10us`` .. ``cpu-10ms``: pure-Python CPU work (``spin``) calibrated to the grain
- ``hash``: ``hashlib.sha256`` over a 1 MiB buffer per item (C code, GIL released)
- ``sleep``: ``time.sleep(5 ms)`` per item (I/O-bound), on 16 workers
- ``mixed``: read a 4 KiB file, then ~200 us of CPU

Engines: a plain loop; crunch in sync, thread, async and process modes; ``ProcessPoolExecutor.map``
with its default chunksize (1) and tuned (``ceil(N / (4 * W))``); ``multiprocessing.Pool
.imap_unordered`` tuned the same way; joblib ``Parallel(batch_size="auto")``; mpire
``WorkerPool.imap_unordered``. Peers are used with their documented settings, never tuned down.
joblib and mpire cases are skipped when those packages are missing (the dev group alone).

N per workload is set so the sync run takes ``--bench-target`` seconds (1 s), except
``ppe-default`` at grains under 100 us, which gets N / 10 items since it cannot keep up (its
items/s stays comparable). Each timed round includes creating the pool; one untimed warm-up per
engine and worker count absorbs once-per-process costs (crunch's forkserver, loky's executor).
Each case records ``extra_info`` (workload, engine, items, workers, grain) that report.py turns
into items/s, speed-up over sync and efficiency.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchutil
import pytest
import workloads
from conftest import Settings

import crunch

pytestmark = pytest.mark.bench

Runner = Callable[[Callable[[Any], Any], list[Any], int], int]

HASH_SIZE = 1 << 20
NAP = 0.005
MIXED_GRAIN = 200e-6
MIXED_FILES = 256


# ----------------------------------------------------------------------------- engines
def run_loop(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    return len([fn(x) for x in items])


def _crunch(mode: str) -> Runner:
    def run(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
        return workloads.consume(crunch.imap(fn, items, mode=mode, workers=workers))

    return run


def run_ppe_default(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        return workloads.consume(pool.map(fn, items))


def tuned_chunksize(n: int, workers: int) -> int:
    return max(1, math.ceil(n / (4 * workers)))


def run_ppe_tuned(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        chunksize = tuned_chunksize(len(items), workers)
        return workloads.consume(pool.map(fn, items, chunksize=chunksize))


def run_pool_tuned(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    with multiprocessing.Pool(workers) as pool:
        chunksize = tuned_chunksize(len(items), workers)
        return workloads.consume(pool.imap_unordered(fn, items, chunksize=chunksize))


def run_joblib(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    from joblib import delayed

    parallel = benchutil.joblib_parallel(workers)
    return workloads.consume(parallel(delayed(fn)(x) for x in items))


def run_mpire(fn: Callable[[Any], Any], items: list[Any], workers: int) -> int:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=workers) as pool:
        return workloads.consume(pool.imap_unordered(fn, items))


ENGINES: dict[str, Runner] = {
    "loop": run_loop,
    "crunch-sync": _crunch("sync"),
    "crunch-thread": _crunch("thread"),
    "crunch-async": _crunch("async"),
    "crunch-process": _crunch("process"),
    "ppe-default": run_ppe_default,
    "ppe-tuned": run_ppe_tuned,
    "pool-tuned": run_pool_tuned,
    "joblib": run_joblib,
    "mpire": run_mpire,
}
SERIAL = ("loop", "crunch-sync")
NEEDS = {"joblib": "joblib", "mpire": "mpire"}


# ----------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # cpu | gil-free | io | mixed
    grain: float  # seconds per item, nominal
    smoke_items: int


WORKLOADS = {
    w.name: w
    for w in (
        Workload("cpu-10us", "cpu", 10e-6, 40),
        Workload("cpu-100us", "cpu", 100e-6, 20),
        Workload("cpu-1ms", "cpu", 1e-3, 8),
        Workload("cpu-10ms", "cpu", 10e-3, 4),
        Workload("hash", "gil-free", 0.0, 4),  # grain measured at start
        Workload("sleep", "io", NAP, 16),
        Workload("mixed", "mixed", MIXED_GRAIN, 16),
    )
}


@dataclass
class Prepared:
    fn: Callable[[Any], Any]
    items: list[Any]
    workers: int
    grain: float


@pytest.fixture(scope="session")
def spin_rate() -> float:
    return workloads.calibrate()


@pytest.fixture(scope="session")
def mixed_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return workloads.make_files(tmp_path_factory.mktemp("mixed"), MIXED_FILES)


@pytest.fixture(scope="session")
def prepared(
    settings: Settings, spin_rate: float, mixed_files: list[str]
) -> Callable[[str, str], Prepared]:
    cache: dict[tuple[str, str], Prepared] = {}

    def count(workload: Workload, grain: float, engine: str) -> int:
        if settings.smoke:
            return workload.smoke_items
        n = max(16, round(settings.target / grain))
        if engine == "ppe-default" and grain < 100e-6:
            n = max(16, n // 10)
        return n

    def prepare(name: str, engine: str) -> Prepared:
        key = (name, engine)
        if key in cache:
            return cache[key]
        workload = WORKLOADS[name]
        workers = 1 if engine in SERIAL else settings.workers
        if workload.kind == "cpu":
            iterations = workloads.iterations_for(workload.grain, spin_rate)
            n = count(workload, workload.grain, engine)
            ready = Prepared(workloads.spin, [iterations] * n, workers, workload.grain)
        elif workload.kind == "gil-free":
            grain = _measure(workloads.digest, HASH_SIZE)
            n = count(workload, grain, engine)
            ready = Prepared(workloads.digest, [HASH_SIZE] * n, workers, grain)
        elif workload.kind == "io":
            workers = 1 if engine in SERIAL else settings.io_workers
            n = count(workload, NAP, engine)
            n = max(workers, n - n % workers)  # whole waves: the ideal is exactly N / W naps
            ready = Prepared(workloads.nap, [NAP] * n, workers, NAP)
        else:
            iterations = workloads.iterations_for(MIXED_GRAIN, spin_rate)
            n = count(workload, MIXED_GRAIN, engine)
            items = [(mixed_files[i % len(mixed_files)], iterations) for i in range(n)]
            grain = _measure(workloads.read_then_spin, items[0])
            if engine == "mpire":  # mpire unpacks a tuple item into arguments: wrap it
                items = [(item,) for item in items]
            ready = Prepared(workloads.read_then_spin, items, workers, grain)
        cache[key] = ready
        return ready

    return prepare


def _measure(fn: Callable[[Any], Any], item: Any) -> float:
    fn(item)
    times = []
    for _ in range(5):
        began = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


_warm: set[tuple[str, int]] = set()


def _warm_up(engine: str, fn: Callable[[Any], Any], items: list[Any], workers: int) -> None:
    """One untimed tiny run per engine and worker count: once-per-process costs only."""
    if (engine, workers) in _warm:
        return
    _warm.add((engine, workers))
    ENGINES[engine](fn, items[: max(2, workers)], workers)


# ----------------------------------------------------------------------------- the cases
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_throughput(
    benchmark: Any,
    settings: Settings,
    prepared: Callable[[str, str], Prepared],
    workload: str,
    engine: str,
) -> None:
    """Every item of the workload comes back once; the time is the engine's, pool start-up in."""
    if engine in NEEDS:
        pytest.importorskip(NEEDS[engine])
    case = prepared(workload, engine)
    run = ENGINES[engine]
    _warm_up(engine, case.fn, case.items, case.workers)
    benchmark.group = workload
    benchmark.extra_info.update(
        {
            "workload": workload,
            "kind": WORKLOADS[workload].kind,
            "engine": engine,
            "items": len(case.items),
            "workers": case.workers,
            "grain_seconds": case.grain,
            "smoke": settings.smoke,
            "load_before": benchutil.load(),
        }
    )
    count = benchmark.pedantic(
        run, args=(case.fn, case.items, case.workers), rounds=settings.rounds, iterations=1
    )
    assert count == len(case.items)


def test_workloads_give_the_same_answer_in_every_mode(
    prepared: Callable[[str, str], Prepared],
) -> None:
    """A sanity check that the benchmark tasks are deterministic across crunch's modes."""
    case = prepared("mixed", "crunch-process")
    items = case.items[:8]
    expected = [case.fn(x) for x in items]
    for mode in ("sync", "thread", "async", "process"):
        batch = crunch.run(case.fn, items, mode=mode, workers=2)
        assert [batch.succeeded[i] for i in range(len(items))] == expected, mode


def test_report_builds_from_this_suites_json(tmp_path: Path) -> None:
    """report.py turns a pytest-benchmark JSON of this suite into Markdown (no charts needed)."""
    import report

    sample = {
        "machine_info": {"cpu": {"count": 2}, "python_version": "3.11"},
        "benchmarks": [
            {
                "group": "cpu-1ms",
                "name": f"test_throughput[cpu-1ms-{engine}]",
                "stats": {"median": seconds, "min": seconds, "max": seconds},
                "extra_info": {
                    "workload": "cpu-1ms",
                    "kind": "cpu",
                    "engine": engine,
                    "items": 100,
                    "workers": workers,
                    "grain_seconds": 1e-3,
                },
            }
            for engine, seconds, workers in (
                ("crunch-sync", 0.1, 1),
                ("crunch-process", 0.055, 2),
                ("pool-tuned", 0.06, 2),
            )
        ],
    }
    rows = report.suite_rows(sample)
    text = report.suite_markdown(rows)
    assert "crunch-process" in text
    assert "1.82x" in text  # 0.1 / 0.055
