"""Every use crunch makes of ``concurrent.futures`` and ``multiprocessing`` beyond their
documented API, one named function each.

Process mode runs on the stock ``ProcessPoolExecutor`` (crunch._backends.process). Its
guarantees (a dead worker costs one item, a worker near its memory cap is replaced without
running anything again, a group signal reaches crunch alone, a run's workers start fast) need a
few things the pool and multiprocessing do not offer publicly. Each is here, says why it is
needed and what breaks without it, and is checked by tests/test_pool_reach.py on every Python
crunch supports (3.11 to 3.13), so a release that changes one fails the suite rather than a
run.

``worker_processes``
    The pool's worker processes by pid (``ProcessPoolExecutor._processes``). A forkserver
    worker is not crunch's child: only its ``multiprocessing.Process`` handle knows how it
    ended. Without it, a crash could not be blamed on its item with its exit code or signal,
    and no item would be known to have killed its worker.
``unstick_result_pipe``
    Writes filler bytes into the pool's result pipe (``_result_queue._writer``) until the pool
    says it is broken (``_broken``), when a worker was killed while writing its result: the
    pool's manager thread would otherwise wait in ``recv()`` for the rest of that message
    forever, never report the death, and the run would hang.
``can_leave``, ``leave_pool``, ``replace_leavers``
    One worker leaves the pool between two chunks the way ``max_tasks_per_child`` makes
    workers leave, and a successor starts (``--max-memory``; crunch._memory). Without them a
    worker could only die, which breaks the pool and runs every chunk in flight again; crunch
    then keeps its two other memory defences and never recycles a worker.
``without_main``
    Workers skip re-importing the caller's ``__main__`` when nothing they unpickle needs it
    (patches ``multiprocessing.spawn.get_preparation_data``, for crunch's own thread only).
    Without it every worker of every run imports the caller's script again: seconds a run for
    a script that imports pandas or pytest at the top.
``start_forkserver``
    Starts multiprocessing's resource tracker and forkserver (``resource_tracker`` and
    ``forkserver.ensure_running``) with the stop signals blocked. Without it a group signal
    (Ctrl-C, ``timeout``) in the forkserver's first moments would kill the server, and with it
    every worker, instead of reaching crunch alone (crunch._backends._groups).

Two more live where they must act before anything else is imported, in ``crunch._entry``: its
first signal handlers are installed through the C module ``_signal`` (``signal`` itself costs
milliseconds to import; it falls back to ``signal`` where that module is missing), and a
signal is known to have arrived inside an import by the import system's frames, CPython's
frozen ``importlib`` (there crunch exits at once: an exception raised into a compiled module's
initialisation can crash the interpreter). tests/test_pool_reach.py checks both.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Collection, Generator, Mapping
from typing import Any

# ---------------------------------------------------------------------- the pool's workers


def worker_processes(pool: Any) -> Mapping[int, Any]:
    """The ``multiprocessing.Process`` of each worker of ``pool``, by pid (read only).

    The pool keeps them in a private dict; crunch copies the handles as workers start, to read
    their exit codes after a break (there is no public way to learn how a worker died).
    Empty on a Python without that dict: crunch then blames no crash on an item.
    """
    return getattr(pool, "_processes", None) or {}


def unstick_result_pipe(pool: Any, seconds: float = 30.0) -> None:
    """Free ``pool``'s manager thread stuck reading half a result from a killed worker.

    A worker SIGKILLed while writing its result leaves a truncated message in the result pipe,
    and ``ProcessPoolExecutor``'s manager thread then waits in ``recv()`` for the rest forever
    (Python 3.11 to 3.13): the pool never reports the death, its futures never finish, and
    shutdown never ends. Feeding the pipe bytes completes the message; it fails to unpickle,
    and the pool breaks the ordinary way (every pending future gets ``BrokenProcessPool``).
    Call it only once a worker is known dead: the pool is broken anyway. Returns at once when
    the pool is broken already.
    """
    queue = getattr(pool, "_result_queue", None)
    writer = getattr(queue, "_writer", None)
    if writer is None:  # pragma: no cover - a future Python without these internals
        return
    try:
        fd = writer.fileno()
        os.set_blocking(fd, False)  # never block here, whatever the reader does
    except (OSError, ValueError):
        return
    filler = b"\0" * 65536
    deadline = time.monotonic() + seconds
    while not getattr(pool, "_broken", True) and time.monotonic() < deadline:
        try:
            os.write(fd, filler)
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return


# ---------------------------------------------------------------- one worker leaves the pool
#
# The pool has exactly one way for a worker to leave on purpose, the one ``max_tasks_per_child``
# uses (Python 3.11 to 3.13): the worker loop ``_process_worker`` sends its last result as a
# ``_ResultItem`` whose ``exit_pid`` is its pid, then returns; the pool's manager thread then
# joins it instead of declaring the pool broken. There is no public way to ask for that for one
# worker at a chosen moment.

WORKER_LOOP = "_process_worker"
WORKER_LOCALS = ("result_queue", "call_item")


def can_leave() -> bool:
    """Whether this Python's pool has the names ``leave_pool`` and ``replace_leavers`` use;
    asked by a worker at start-up."""
    import inspect
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
    code = loop.__code__
    return set(WORKER_LOCALS) <= set(code.co_varnames) | set(code.co_cellvars) and hasattr(
        process.ProcessPoolExecutor, "_spawn_process"
    )


def leave_pool(result: Any) -> bool:
    """Send ``result`` as this worker's last and leave the pool; False if that cannot be done.

    Called from inside the function the pool runs (``process_chunk``), in a worker: finds the
    frame of ``_process_worker`` running the current chunk, takes its ``result_queue`` and
    ``call_item`` locals, and sends the chunk's result with ``_sendback_result(...,
    exit_pid=pid)`` exactly as that loop does at its task limit, then exits. When it works it
    does not return.
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

    The pool's manager thread may skip starting the successor itself (CPython gh-115634, 3.11
    to 3.13: a stale idle-worker token makes it believe a worker is idle), and with no worker
    left the queued chunks would wait forever; so crunch starts it, with the pool's own
    ``_spawn_process`` under its ``_shutdown_lock``. False while the pool still lists
    ``leaver`` (its manager thread has not joined it yet): call again a moment later.
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


# ---------------------------------------------------------------- starting workers

# The keys of multiprocessing's preparation data that make a new process import ``__main__``.
MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_skip_main = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


def mentions_main(pickled: bytes) -> bool:
    """Whether unpickling ``pickled`` may need the ``__main__`` module."""
    return b"__main__" in pickled


@contextlib.contextmanager
def without_main(skip: bool) -> Generator[None]:
    """Workers started by this thread inside the block skip ``__main__`` when ``skip``.

    A forkserver (or spawn) process imports the parent's main script before it does anything,
    so that functions defined there can be unpickled; multiprocessing offers no switch for it.
    While *this thread* starts workers inside the block, the two keys of the preparation data
    that ask for it are dropped; every other use of multiprocessing in the process goes
    through unchanged.
    """
    if not skip:
        yield
        return
    if not _filter_installed:
        _install_main_filter()
    _skip_main.on = True
    try:
        yield
    finally:
        _skip_main.on = False


def _install_main_filter() -> None:
    global _filter_installed
    from multiprocessing import spawn

    with _filter_lock:
        if _filter_installed:
            return
        original = spawn.get_preparation_data

        def preparation_data(name: str) -> dict[str, Any]:
            data = original(name)
            if getattr(_skip_main, "on", False):
                for key in MAIN_KEYS:
                    data.pop(key, None)
            return data

        spawn.get_preparation_data = preparation_data  # ty: ignore[invalid-assignment]
        _filter_installed = True


def start_forkserver(blocked: Collection[int]) -> None:
    """Start the resource tracker and the forkserver, unless they run, with ``blocked`` held.

    Both inherit this thread's signal mask as they start, because ``ensure_running`` starts
    them from the calling thread. The forkserver is in crunch's process group until its
    preload moves it out: a group signal meanwhile stays pending, and the preload drops it
    (``leave_crunch_group`` in crunch._backends._groups). The resource tracker ignores SIGINT
    and SIGTERM itself and keeps SIGHUP blocked (it ends when its pipe closes, not by a
    signal); starting it unblocks SIGINT and SIGTERM in this thread, so they are blocked
    again before the forkserver starts. The mask is restored after. Call it before the pool's
    semaphores would start the tracker.
    """
    import signal
    from multiprocessing import forkserver, resource_tracker

    before = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
