"""The ``burn`` task: pure-Python CPU work of about ``-O ms=N`` milliseconds (default 10).

For benchmarks. The work is a fixed number of iterations of an integer loop that holds the GIL,
sized once per process from a short calibration that measures this thread's CPU time (so
other busy processes do not skew it). Every call of the same ``ms`` then does the same work, so
running items on more workers than cores takes longer, as real CPU work does, rather than
finishing early on a wall clock. The value, ``{"ms": ms}``, does not depend on timing. The item
may be a path or any JSON value; it is not read.
"""

from __future__ import annotations

import time
from typing import Any

from crunch.tasks import Task

_CALIBRATION_SECONDS = 0.01
_BATCH = 2_000
_rate: float | None = None  # loop iterations per CPU second, measured on first use


def _spin(iterations: int) -> int:
    x = 1
    for _ in range(iterations):
        x = (x * 1_103_515_245 + 12_345) & 0x7FFFFFFF
    return x


def _iterations_per_second() -> float:
    global _rate
    if _rate is None:
        done = 0
        began = time.thread_time()
        while (elapsed := time.thread_time() - began) < _CALIBRATION_SECONDS:
            _spin(_BATCH)
            done += _BATCH
        _rate = done / elapsed
    return _rate


def check_ms(ms: object) -> float:
    """``ms`` as a float, or ``ValueError`` when it is not a non-negative number."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not ms >= 0:
        raise ValueError(f"ms must be a non-negative number of milliseconds, got {ms!r}")
    if ms == float("inf"):
        raise ValueError("ms must be finite")
    return float(ms)


def burn(item: Any = None, *, ms: float = 10) -> dict[str, Any]:
    """Spend about ``ms`` milliseconds of CPU in pure Python; return ``{"ms": ms}``."""
    seconds = check_ms(ms) / 1000
    if seconds:
        _spin(round(seconds * _iterations_per_second()))
    return {"ms": ms}


TASK = Task(
    name="burn",
    summary="synthetic pure-Python CPU work of -O ms=N milliseconds (default 10), for benchmarks",
    fn=burn,
)
