"""The ``sleep`` task: waits ``-O ms=N`` milliseconds (default 10) without using the CPU.

For benchmarks of I/O-bound work: ``time.sleep`` releases the GIL, as waiting on a disk or a
network does. The value is ``{"ms": ms}``. The item may be a path or any JSON value; it is not
read.
"""

from __future__ import annotations

import time
from typing import Any

from crunch.tasks import Task
from crunch.tasks._burn import check_ms


def sleep(item: Any = None, *, ms: float = 10) -> dict[str, Any]:
    """Sleep ``ms`` milliseconds; return ``{"ms": ms}``."""
    time.sleep(check_ms(ms) / 1000)
    return {"ms": ms}


TASK = Task(
    name="sleep",
    summary="synthetic I/O wait: sleeps -O ms=N milliseconds (default 10), for benchmarks",
    fn=sleep,
)
