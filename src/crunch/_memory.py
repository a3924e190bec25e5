"""The per-worker memory cap (``max_memory``): how memory is measured, and the thresholds.

A worker's memory is its resident set size (RSS), read from ``/proc/PID/statm`` (Linux).
Three lines of defence keep a worker under the cap ``C``, so that the kernel's out-of-memory
killer never has to choose a victim:

- between items, the worker measures itself (every ``CHECK_EVERY`` seconds, or before every
  item once it holds more than ``WATCH_FROM * C``); at ``RECYCLE_AT * C`` it stops taking
  items and is replaced, so a task that leaks a little per item never fails an item for it;
- while an item runs, the parent's watchdog measures every worker every ``POLL`` seconds and
  kills one past ``C``: the item it was running fails with kind ``memory``;
- a hard limit on the worker's data segment (``RLIMIT_DATA``, its private writable memory:
  the heap and anonymous mappings, not mapped files), ``BACKSTOP * C`` above what the worker
  holds when it starts, makes an allocation that would go far past the cap between two
  polls fail at once with ``MemoryError``; that item fails with kind ``memory`` too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

RECYCLE_AT = 0.75  # share of the cap at which a worker is replaced between items
WATCH_FROM = 0.5  # share of the cap from which a worker measures itself before every item
CHECK_EVERY = 0.005  # seconds between a worker's measurements below WATCH_FROM
POLL = 0.05  # seconds between the parent's measurements of its workers
BACKSTOP = 1.5  # the data-segment limit, in caps above the worker's size at start

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def supported() -> bool:
    """Whether this system lets crunch measure a process's memory (Linux's /proc)."""
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/statm")


def rss(pid: int | str = "self") -> int | None:
    """Resident bytes of process ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class SelfMeter:
    """This process's RSS, read through one open file (a worker measures itself often)."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)

    def __call__(self) -> int:
        return int(os.pread(self.fd, 128, 0).split()[1]) * _PAGE


def data_size() -> int | None:
    """This process's data segment (``VmData``), in bytes: what ``RLIMIT_DATA`` limits."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss() -> int | None:
    """The most this process has ever held resident (``VmHWM``), in bytes."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def fail_refused(outcome: Any, cap: int) -> bool:
    """Make each ``MemoryError`` of ``outcome`` (an allocation the backstop refused) its
    item's ``memory`` failure; True if there was one."""
    from crunch._failures import ItemFailure

    failures = outcome.failures or {}
    refused = [index for index, failure in failures.items() if "MemoryError" in failure.names]
    if refused:
        peak = peak_rss() or 0
        for index in refused:
            failures[index] = ItemFailure.memory_refused(peak, cap)
    return bool(refused)


def set_backstop(cap: int) -> None:
    """Limit this process's data segment to ``BACKSTOP * cap`` above its size now."""
    import resource

    now = data_size()
    if now is None:
        return
    limit = now + int(BACKSTOP * cap)
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
