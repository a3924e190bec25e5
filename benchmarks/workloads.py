"""Workloads shared by every benchmark: module-level functions that worker processes import.

Workers of every engine (crunch's forkserver workers, ``ProcessPoolExecutor``, ``Pool``,
joblib's loky, mpire) unpickle a task by module and name, so the tasks live here, at module
level, and each benchmark script puts this directory on ``sys.path`` before importing it
(forkserver and spawn children get the parent's ``sys.path``).

- ``spin(iterations)``: pure-Python CPU work holding the GIL. The item *is* the iteration count,
  calibrated once in the parent (``calibrate``), so workers do no calibration of their own and
  every engine does exactly the same work. The result is deterministic.
- ``digest(size)``: ``hashlib.sha256`` over a shared buffer of ``size`` bytes (GIL released).
- ``nap(seconds)``: ``time.sleep`` (I/O-bound; GIL released).
- ``read_then_spin((path, iterations))``: read a small file, then CPU work (mixed).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

MULTIPLIER = 1_103_515_245
INCREMENT = 12_345
MASK = 0x7FFFFFFF

#: The grain sizes every CPU benchmark uses, in seconds per item.
GRAINS: tuple[float, ...] = (10e-6, 100e-6, 1e-3, 10e-3)


def spin(iterations: int) -> int:
    """Pure-Python CPU work: ``iterations`` steps of an LCG; the last state is the result."""
    x = 1
    for _ in range(iterations):
        x = (x * MULTIPLIER + INCREMENT) & MASK
    return x


def calibrate(target: float = 0.05, rounds: int = 5) -> float:
    """Loop iterations per second of ``spin`` on this machine, as seen by CPU time.

    CPU time of this thread (not wall time) so other busy processes on the machine skew it
    less; the median of a few rounds.
    """
    iterations = 10_000
    while True:  # grow a probe until it runs long enough to time well
        began = time.thread_time()
        spin(iterations)
        if time.thread_time() - began >= target / 4:
            break
        iterations *= 2
    rates = []
    for _ in range(rounds):
        began = time.thread_time()
        spin(iterations)
        rates.append(iterations / max(time.thread_time() - began, 1e-9))
    return statistics.median(rates)


def iterations_for(seconds: float, rate: float) -> int:
    """Iterations of ``spin`` that cost ``seconds`` (the call overhead, ~0.1 us, included)."""
    return max(1, round(seconds * rate))


def grain_label(seconds: float) -> str:
    """``10us``, ``100us``, ``1ms``, ``10ms``."""
    if seconds < 1e-3:
        return f"{round(seconds * 1e6)}us"
    if seconds < 1:
        return f"{round(seconds * 1e3)}ms"
    return f"{seconds:g}s"


_BUFFER: bytes = b""


def _buffer(size: int) -> bytes:
    global _BUFFER
    if len(_BUFFER) != size:
        _BUFFER = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return _BUFFER


def digest(size: int) -> str:
    """SHA-256 of a ``size``-byte buffer (built once per process): C work, GIL released."""
    return hashlib.sha256(_buffer(size)).hexdigest()


def nap(seconds: float) -> float:
    """Sleep ``seconds`` (an I/O wait: the GIL is released); return ``seconds``."""
    time.sleep(seconds)
    return seconds


def read_then_spin(item: tuple[str, int]) -> tuple[int, int]:
    """Mixed work: read the small file ``item[0]``, then ``spin(item[1])``."""
    path, iterations = item
    data = Path(path).read_bytes()
    return len(data), spin(iterations)


def make_files(directory: Path, count: int, size: int = 4096) -> list[str]:
    """``count`` files of ``size`` deterministic bytes under ``directory`` (reused if present)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"f{index:05d}.bin"
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes((index.to_bytes(4, "little") * (size // 4 + 1))[:size])
        paths.append(str(path))
    return paths


def consume(results: Any) -> int:
    """Drain an iterator of results, keeping nothing; return how many there were."""
    count = 0
    for _ in results:
        count += 1
    return count
