"""Settings of the pytest-benchmark suite (test_bench.py): full runs and the CI smoke run.

    uv run --group bench python -m pytest benchmarks --benchmark-enable --benchmark-only \
        --benchmark-json=benchmarks/results/suite.json          # the full suite (~5 min)
    CRUNCH_BENCH_SMOKE=1 uv run python -m pytest benchmarks     # every case once, tiny (CI)

Use ``python -m pytest``, not the ``pytest`` script: forkserver workers (crunch's process mode)
re-import the parent's ``__main__`` when it is a script path (Python 3.11), so under the
``pytest`` script every crunch worker of every run imports pytest again (~0.3 s of CPU each;
16 workers: ~2.5 s per run). ``-m`` makes ``__main__`` a module, which workers skip.

Options (this file is an initial conftest when ``benchmarks`` is on the command line):
``--smoke`` (or ``CRUNCH_BENCH_SMOKE=1``) runs each case with a handful of items, once;
``--bench-rounds N`` timed rounds per case (default 3); ``--bench-target S`` seconds a case
takes in sync mode (default 1.0, which sets N per workload); ``--bench-workers W`` workers for
the CPU and hashing workloads (default 2; the sleep workload uses 16).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # workers import the tasks from workloads.py by name
    sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Settings:
    smoke: bool
    rounds: int
    target: float  # seconds of sync work per case
    workers: int  # for CPU-bound and hashing workloads
    io_workers: int  # for the sleep workload


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crunch-bench", "crunch benchmark suite")
    group.addoption(
        "--smoke",
        action="store_true",
        default=False,
        help="run every benchmark case once with tiny sizes (also: CRUNCH_BENCH_SMOKE=1)",
    )
    group.addoption("--bench-rounds", type=int, default=3, help="timed rounds per case")
    group.addoption(
        "--bench-target", type=float, default=1.0, help="seconds each case takes in sync mode"
    )
    group.addoption("--bench-workers", type=int, default=2, help="workers for CPU workloads")


def _smoke(config: pytest.Config) -> bool:
    return bool(config.getoption("--smoke")) or os.environ.get("CRUNCH_BENCH_SMOKE", "") not in (
        "",
        "0",
    )


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    smoke = _smoke(pytestconfig)
    return Settings(
        smoke=smoke,
        rounds=1 if smoke else max(1, pytestconfig.getoption("--bench-rounds")),
        target=pytestconfig.getoption("--bench-target"),
        workers=pytestconfig.getoption("--bench-workers"),
        io_workers=4 if smoke else 16,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A full case may take a minute on a busy machine; the project's default is 120 s a test.
    if not _smoke(config):
        for item in items:
            item.add_marker(pytest.mark.timeout(900))


def pytest_report_header(config: pytest.Config) -> str:
    mode = "SMOKE (tiny sizes, once each)" if _smoke(config) else "full"
    return f"crunch benchmarks: {mode}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
