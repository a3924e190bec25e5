"""The benchmark suite still runs: every case once, tiny sizes, in a subprocess (< 60 s).

The suite lives in benchmarks/, outside the default test run; this smoke run keeps it from
rotting. It measures nothing: timings at these sizes mean nothing, only that every engine and
workload still works. joblib and mpire cases skip when the bench group is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_benchmark_suite_smoke_run_passes() -> None:
    """`pytest benchmarks --smoke` exits 0 with every case passed or skipped, none failed."""
    env = dict(os.environ, CRUNCH_BENCH_SMOKE="1")
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--smoke", "-q", "-x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
