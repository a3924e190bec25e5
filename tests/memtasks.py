"""Tasks that use memory, for the --max-memory tests (importable by worker processes)."""

from __future__ import annotations

import os
import time

MIB = 1 << 20
_KEPT: list[bytes] = []


def grow(x: int) -> int:
    """Good items: ``x * x``. Item -1 takes 50 MiB at a time, up to 1 GiB; item -2 asks for
    2 GiB at once."""
    if x >= 0:
        return x * x
    if x == -2:
        return len(b"x" * (2048 * MIB))
    held = []
    for _ in range(20):
        held.append(b"x" * (50 * MIB))
        time.sleep(0.02)
    return len(held)


def leak(x: int) -> int:
    """Keeps 20 MiB per item for the life of its worker; returns the worker's pid. Notes the
    item in $CRUNCH_TEST_CALLS."""
    _KEPT.append(b"x" * (20 * MIB))
    with open(os.environ["CRUNCH_TEST_CALLS"], "a") as calls:
        calls.write(f"{x}\n")
    return os.getpid()


def small_leak(x: int) -> int:
    """Keeps 1 MiB per item; returns the worker's pid."""
    _KEPT.append(b"x" * MIB)
    time.sleep(0.005)
    return os.getpid()


def leave_with(x: int) -> tuple[int, int]:
    """Leaves the pool (crunch._pool_reach.leave_pool) with ``(x, pid)`` as its result."""
    from crunch._pool_reach import leave_pool

    result = (x, os.getpid())
    leave_pool(result)
    raise AssertionError("leave_pool returned")
