"""The process-mode worker: the state of one worker process and the function the pool runs.

This module knows nothing of pools or schedulers. ``init_process_worker`` (the pool's
initializer) claims a row of the shared slot table, loads the run's ``Job`` and runs the
user's ``--init``; ``process_chunk`` opens one pickled unit, runs it with ``run_unit``
(``crunch._runner``) through a lane that writes the position in hand into the slot table, and
returns the outcome pickled.
"""

from __future__ import annotations

import gc
import pickle
import signal
import time
from collections.abc import Callable
from typing import Any

from crunch._failures import ItemFailure, startup_error_text
from crunch._runner import ItemTimeout, run_unit
from crunch._transit import encode_outcome, load_items

# --------------------------------------------------------------------------- process workers
# The state of one worker process, set once by ``init_process_worker``.

_SLOTS: Any = None  # the shared slot table (see backends/process.py)
_SLOT: int = -1  # this worker's slot index in it
_JOB: Any = None
_INIT_ERROR: str | None = None
_SOFT_TIMEOUT: float | None = None

# Layout of the shared slot table: a flat array of doubles.
HALT = 0  # table[0] != 0: stop starting new items
SLOT_BASE = 1
SLOT_WIDTH = 4  # pid, chunk id (-1 idle), item index, start time (time.monotonic)
INITIALIZING = -2  # chunk id while the worker runs the user's initializer
LOADING = -1  # item index while the chunk's items are being unpickled
SENDING = -2  # item index while the chunk's outcome is being pickled


def slot_offset(slot: int) -> int:
    return SLOT_BASE + slot * SLOT_WIDTH


class _ProcessLane:
    """Writes the current position into this worker's slot, where the parent watches it.

    ``view`` (a memoryview of the table) with ``halt_index`` and ``position_index`` lets the
    runner's lean loop do the per-item write itself, without a call; ``begin`` is the same
    for the careful loop, which also records the start time (for timeouts) and arms the
    soft timer.
    """

    __slots__ = ("arm", "base", "halt_index", "position_index", "table", "view")

    def __init__(self, table: Any, slot: int, chunk_id: int, timeout: float | None) -> None:
        self.table = table
        self.base = slot_offset(slot)
        self.arm = timeout
        self.view = memoryview(table).cast("B").cast("d")
        self.halt_index = HALT
        self.position_index = self.base + 2
        table[self.base + 1] = chunk_id

    def begin(self, index: int, start: float) -> bool:
        view = self.view
        if view[HALT]:
            return False
        view[self.base + 3] = start
        view[self.base + 2] = index
        if self.arm is not None:
            global _ARMED
            _ARMED = True
            signal.setitimer(signal.ITIMER_REAL, self.arm)
        return True

    def end(self) -> None:
        if self.arm is not None:
            global _ARMED
            _ARMED = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.table[self.base + 2] = SENDING


_ARMED = False  # between a chunk's first begin() and its end(): the soft timer is for an item
_REARM = 0.001  # seconds


def _on_alarm(signum: int, frame: Any) -> None:
    # The timer can fire while crunch's own loop runs rather than the task (building a record,
    # starting the next item): never raise into crunch's code. Just after a task returned, the
    # next begin() (or end()) resets the timer anyway; just before a task starts (a worker
    # descheduled between arming the timer and calling the task, on a busy machine), the
    # item's time is up already: fire again a moment later, inside the task. After end() the
    # alarm is stale and ignored.
    if frame is not None and frame.f_globals.get("__name__") in _OWN_MODULES:
        if _ARMED:
            signal.setitimer(signal.ITIMER_REAL, _REARM)
        return
    raise ItemTimeout


_OWN_MODULES = frozenset({__name__, "crunch._runner", "crunch._units", "crunch.sources"})


def init_process_worker(
    table: Any,
    counter: Any,
    job_bytes: bytes,
    init: Callable[[], Any] | None,
    soft_timeout: float | None,
    environ: dict[str, str],
    parent: int,
) -> None:
    """``ProcessPoolExecutor`` initializer: claim a slot, load the task, run the user's init."""
    global _SLOTS, _SLOT, _JOB, _INIT_ERROR, _SOFT_TIMEOUT
    import os

    # Forkserver workers inherit the environment the server started with, possibly long ago;
    # give them the parent's environment as it is now, as a spawned process would have.
    os.environ.clear()
    os.environ.update(environ)

    from crunch.backends._groups import own_group

    # Ctrl-C reaches the whole foreground process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    own_group()  # what the task starts dies with this worker (see backends/_groups.py)
    _die_with_parent(parent)
    with counter.get_lock():
        _SLOT = int(counter.value)
        counter.value += 1
    _SLOTS = table
    base = slot_offset(_SLOT)
    table[base + 1] = -1
    table[base] = os.getpid()
    _SOFT_TIMEOUT = soft_timeout
    if soft_timeout is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
    try:
        _JOB = pickle.loads(job_bytes)
        if init is not None:
            table[base + 1] = INITIALIZING  # a death now is the initializer's doing
            init()
        gc.freeze()  # what is loaded now lives as long as the worker: never scan it again
    except BaseException as exc:  # noqa: BLE001 - reported to the parent with the first chunk
        _INIT_ERROR = startup_error_text(exc)
    finally:
        table[base + 1] = -1


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the crunch process ``parent`` is gone, even if it was SIGKILLed.

    Workers are children of the forkserver, not of crunch, and they hold the pipes that would
    tell the forkserver (and an idle worker) that crunch died: without this watch, a killed
    run would leave its workers behind forever. A pidfd (Linux) wakes us exactly when the
    parent exits; elsewhere we poll.
    """
    import os
    import threading

    from crunch.backends._groups import end_own_group

    def watch() -> None:
        try:
            fd = os.pidfd_open(parent)
        except ProcessLookupError:
            end_own_group()
        except (AttributeError, OSError):  # pragma: no cover - no pidfd: poll instead
            while True:
                time.sleep(1.0)
                try:
                    os.kill(parent, 0)
                except ProcessLookupError:
                    end_own_group()
        import select

        select.select([fd], [], [])
        end_own_group()  # with whatever the task left running

    threading.Thread(target=watch, name="crunch-parent-watch", daemon=True).start()


def process_chunk(chunk_id: int, blob: bytes, split: bool = False) -> bytes | str | ItemFailure:
    """The function the pool runs: one pickled ``(unit, attempts)`` in, its outcome out.

    The unit arrives pickled so that this worker's slot can say "loading chunk N" while it is
    unpickled (an item whose unpickling kills the worker is then known), and the outcome
    leaves pickled with the slot saying "sending" (a value whose pickling kills it is known
    too); see crunch._transit for how one misbehaving item or value is kept to itself
    (``split``: the values pickled one by one).
    Returns ``str`` (the error text) instead when the worker could not load the task or its
    initializer failed: the parent then stops the run with that message; and the
    ``ItemFailure`` of unpickling the items when they could not be: the parent then finds the
    item at fault by running them one by one. Never raises.
    """
    if _INIT_ERROR is not None:
        return _INIT_ERROR
    assert _JOB is not None
    table, base = _SLOTS, slot_offset(_SLOT)
    table[base + 2] = LOADING
    table[base + 1] = chunk_id
    try:
        chunk = load_items(blob)
        if isinstance(chunk, ItemFailure):
            return chunk
        unit, attempts = chunk
        # A chunk makes many objects that live until it is encoded: the cyclic collector
        # would scan them again and again (a quarter of the time of a cheap item). Cycles a
        # task makes are collected when the chunk is over.
        gc.disable()
        try:
            outcome = run_unit(
                _JOB,
                unit,
                _ProcessLane(table, _SLOT, chunk_id, _SOFT_TIMEOUT),
                attempts=attempts,
                timeout=_SOFT_TIMEOUT,
            )
        finally:
            gc.enable()
        return encode_outcome(outcome, split=split)
    finally:
        table[base + 1] = -1
