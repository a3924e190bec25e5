"""Where crunch reaches into ``concurrent.futures.process`` to replace one worker cleanly.

A worker near its memory cap (crunch._memory) must leave the pool between two chunks, and a
new one take its place, without the pool counting it as broken: a worker that simply exits
makes ``ProcessPoolExecutor`` fail every pending future and kill every other worker, and all
the chunks in flight run again. The pool has exactly one way for a worker to leave on purpose,
the one ``max_tasks_per_child`` uses (Python 3.11 to 3.13): the worker loop
``_process_worker`` sends its last result as a ``_ResultItem`` whose ``exit_pid`` is its pid,
then returns; the pool's manager thread then joins it instead of declaring the pool broken.
There is no public way to ask for that for one worker at a chosen moment, so:

- ``leave_pool`` (in the worker) finds the frame of ``_process_worker`` that is running the
  current chunk, takes its ``result_queue`` and ``call_item`` locals, sends the chunk's
  result with ``_sendback_result(..., exit_pid=pid)`` exactly as that loop does at its task
  limit, and exits;
- ``replace_leavers`` (in the parent) starts the replacement itself, with the pool's own
  ``_spawn_process`` under its ``_shutdown_lock``: on Python 3.11 to 3.13 the manager thread
  may skip it (CPython gh-115634: a stale idle-worker token makes it believe a worker is
  idle), and with no worker left the queued chunks would wait forever.

tests/test_memory.py checks every name used here, so a Python release that changes them fails
the suite; ``can_leave`` tells the worker at start-up whether they are there, and without them
crunch keeps the other two memory defences only (a worker is never recycled, see
crunch._memory).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from typing import Any

WORKER_LOOP = "_process_worker"
WORKER_LOCALS = ("result_queue", "call_item")


def can_leave() -> bool:
    """Whether this Python's pool has the names ``leave_pool`` and ``replace_leavers`` use."""
    from concurrent.futures import process

    loop = getattr(process, WORKER_LOOP, None)
    send = getattr(process, "_sendback_result", None)
    if loop is None or send is None:
        return False
    try:
        if "exit_pid" not in inspect.signature(send).parameters:
            return False
    except (TypeError, ValueError):
        return False
    return set(WORKER_LOCALS) <= set(loop.__code__.co_varnames) | set(
        loop.__code__.co_cellvars
    ) and all(
        hasattr(process.ProcessPoolExecutor, name)
        for name in ("_spawn_process", "_adjust_process_count")
    )


def leave_pool(result: Any) -> bool:
    """Send ``result`` as this worker's last and leave the pool; False if that cannot be done.

    Called from inside the function the pool runs (``process_chunk``), in a worker; when it
    works it does not return.
    """
    from concurrent.futures import process

    code = process._process_worker.__code__
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    if frame is None:
        return False
    names = frame.f_locals
    queue, call = names.get("result_queue"), names.get("call_item")
    if queue is None or call is None:
        return False
    process._sendback_result(queue, call.work_id, result=result, exit_pid=os.getpid())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)


def replace_leavers(pool: Any, workers: int, leaver: int) -> bool:
    """Start workers until ``pool`` has ``workers`` again, once the worker ``leaver`` has left.

    False while the pool still lists ``leaver`` (its manager thread has not joined it yet):
    call again a moment later.
    """
    processes = getattr(pool, "_processes", None)
    lock = getattr(pool, "_shutdown_lock", None)
    if processes is None or lock is None:
        return True  # a Python without these: nothing we can do here
    with lock:
        if leaver in processes:
            return False
        if getattr(pool, "_shutdown_thread", False) or getattr(pool, "_broken", False):
            return True  # shutting down, or broken (then it is replaced whole)
        while len(processes) < workers:
            pool._spawn_process()
    return True
