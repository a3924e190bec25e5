"""Task functions for the dask tests.

The test cluster's workers do not have ``tests/`` on their import path: crunch's dask backend
finds this module missing there and uploads it, so every test on that cluster also proves the
upload of a task module that only the client has.
"""

from __future__ import annotations

import os
import time

_STATE: dict[str, int] = {}


def square(x: int) -> int:
    return x * x


def square_or_fail(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"bad item {x}")
    return x * x


def slow_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


def slow_square_or_fail(x: int) -> int:
    time.sleep(0.05)
    return square_or_fail(x)


def exit_on_negative(x: int) -> int:
    """``os._exit(3)`` for a negative item: it kills whichever worker runs it."""
    if x < 0:
        os._exit(3)
    time.sleep(0.01)
    return x * x


def hang_on_negative(x: int) -> int:
    """Sleeps far past any test's timeout for a negative item."""
    if x < 0:
        time.sleep(30)
    return x * x


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def remember_pid() -> None:
    """An ``init``: records the pid of the worker process it ran in."""
    _STATE["init_pid"] = os.getpid()
    _STATE["init_calls"] = _STATE.get("init_calls", 0) + 1


def init_state(x: int) -> tuple[int, int]:
    """``(init calls in this process, this pid == the pid init saw)``; init must have run."""
    return _STATE["init_calls"], int(_STATE["init_pid"] == os.getpid())


def broken_init() -> None:
    raise RuntimeError("the model file is missing")


def exiting_init() -> None:
    """An ``init`` that ends its worker process."""
    os._exit(4)
