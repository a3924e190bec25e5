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
from typing import Any, NamedTuple

from crunch import _runner
from crunch._failures import ItemFailure, startup_error_text
from crunch._runner import ItemTimeout, UnitOutcome, run_unit
from crunch._slots import (
    CHUNK,
    HALT,
    IDLE,
    INITIALIZING,
    LOADING,
    PID,
    POSITION,
    SENDING,
    STARTED,
    slot_offset,
)
from crunch._transit import encode_outcome, load_items

# --------------------------------------------------------------------------- process workers
# The state of one worker process, set once by ``init_process_worker``.

_SLOTS: Any = None  # the shared slot table (its layout: crunch._slots)
_SLOT: int = -1  # this worker's slot index in it
_JOB: Any = None  # the run's crunch._units.Job
_INIT_ERROR: str | None = None
_SOFT_TIMEOUT: float | None = None
_MAX_MEMORY: int | None = None  # the memory cap, in bytes (see crunch._memory)
_METER: Any = None  # this worker's RSS meter, with a cap
_CAN_LEAVE = False  # whether this worker can leave its pool cleanly (crunch._pool_reach)


class _ProcessLane:
    """Writes the current position into this worker's slot, where the parent watches it.

    ``view`` (a memoryview of the table) with ``halt_index`` and ``position_index`` lets the
    runner's lean loop do the per-item write itself, without a call; ``begin`` is the same
    for the careful loop, which also records the start time (for timeouts) and arms the
    soft timer.
    """

    __slots__ = ("arm", "base", "halt_index", "position_index", "table", "view")
    lean = True  # the runner's lean loop may write positions through ``view`` itself

    def __init__(self, table: Any, slot: int, chunk_id: int, timeout: float | None) -> None:
        self.table = table
        self.base = slot_offset(slot)
        self.arm = timeout
        self.view = memoryview(table).cast("B").cast("d")
        self.halt_index = HALT
        self.position_index = self.base + POSITION
        table[self.base + CHUNK] = chunk_id

    def begin(self, index: int, start: float) -> bool:
        view = self.view
        if view[HALT]:
            return False
        view[self.base + STARTED] = start
        view[self.base + POSITION] = index
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
        self.table[self.base + POSITION] = SENDING


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


_OWN_MODULES = frozenset({__name__, "crunch._runner", "crunch._units", "crunch._sources"})


class _CappedLane(_ProcessLane):
    """A lane that also watches this worker's memory between items (crunch._memory): once it
    holds ``RECYCLE_AT`` of the cap it starts no more items (``recycle``), and the worker is
    replaced before it could fail an item for memory that earlier items left behind."""

    __slots__ = ("due", "recycle", "recycle_at", "watch_from")
    lean = False  # every item goes through begin(), which watches memory

    def __init__(
        self, table: Any, slot: int, chunk_id: int, timeout: float | None, cap: int
    ) -> None:
        from crunch._memory import RECYCLE_AT, WATCH_FROM

        super().__init__(table, slot, chunk_id, timeout)
        self.recycle_at = RECYCLE_AT * cap
        self.watch_from = WATCH_FROM * cap
        self.due = 0.0
        self.recycle = False

    def begin(self, index: int, start: float) -> bool:
        if start >= self.due:
            used = _METER()
            if used >= self.recycle_at and _CAN_LEAVE:
                self.recycle = True
                return False
            if used < self.watch_from:
                self.due = start + _CHECK_EVERY
        return _ProcessLane.begin(self, index, start)


_CHECK_EVERY = 0.005  # crunch._memory.CHECK_EVERY, here to spare begin() a lookup


def init_process_worker(
    table: Any,
    rows: Any,
    fn_bytes: bytes,
    init: Callable[[], Any] | None,
    soft_timeout: float | None,
    environ: dict[str, str],
    parent: int,
    max_memory: int | None = None,
) -> None:
    """``ProcessPoolExecutor`` initializer: claim a slot, load the task, run the user's init."""
    global _SLOTS, _SLOT, _JOB, _INIT_ERROR, _SOFT_TIMEOUT
    import os

    # Forkserver workers inherit the environment the server started with, possibly long ago;
    # give them the parent's environment as it is now, as a spawned process would have.
    os.environ.clear()
    os.environ.update(environ)

    from crunch._backends._groups import own_group

    # Ctrl-C reaches the whole foreground process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    own_group()  # what the task starts dies with this worker (see _backends/_groups.py)
    _die_with_parent(parent)
    # ``rows`` holds the table's row count; its lock guards claiming the first free row (a
    # worker that left the pool freed its own for its replacement).
    with rows.get_lock():
        free = [slot for slot in range(int(rows.value)) if not table[slot_offset(slot) + PID]]
        _SLOT = free[0] if free else -1
        if free:
            table[slot_offset(_SLOT) + CHUNK] = IDLE
            table[slot_offset(_SLOT) + PID] = os.getpid()
    _SLOTS = table
    if _SLOT < 0:  # pragma: no cover - the parent never starts more workers than rows
        _INIT_ERROR = "no free row in the slot table for a new worker"
        return
    base = slot_offset(_SLOT)
    _SOFT_TIMEOUT = soft_timeout
    if soft_timeout is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
    try:
        _JOB = pickle.loads(fn_bytes)
        if init is not None:
            table[base + CHUNK] = INITIALIZING  # a death now is the initializer's doing
            init()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent with the first chunk
        _INIT_ERROR = startup_error_text(exc)
    finally:
        table[base + CHUNK] = IDLE
    if max_memory is not None and _INIT_ERROR is None:
        _INIT_ERROR = _cap_memory(max_memory)


def _cap_memory(cap: int) -> str | None:
    """Set this worker's memory defences up (crunch._memory); the error text if it is too big
    for ``cap`` already."""
    global _MAX_MEMORY, _METER, _CAN_LEAVE
    from crunch._failures import format_size
    from crunch._memory import RECYCLE_AT, SelfMeter, set_backstop
    from crunch._pool_reach import can_leave

    _METER = SelfMeter()
    used = _METER()
    if used >= RECYCLE_AT * cap:
        return (
            f"a worker holds {format_size(used)} after loading the task (and --init), "
            f"{RECYCLE_AT:.0%} or more of the --max-memory cap of {format_size(cap)}: it could "
            "run no item. Raise the cap."
        )
    set_backstop(cap)
    _MAX_MEMORY = cap
    _runner.refine = _refine
    _CAN_LEAVE = can_leave()
    return None


def _refine(failure: ItemFailure) -> ItemFailure:
    """With a cap: a ``MemoryError`` (an allocation the backstop refused) is a ``memory``
    failure of its item."""
    if "MemoryError" not in failure.names or _MAX_MEMORY is None:
        return failure
    from crunch._memory import peak_rss

    return ItemFailure.memory_refused(peak_rss() or 0, _MAX_MEMORY)


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the crunch process ``parent`` is gone, even if it was SIGKILLed.

    Workers are children of the forkserver, not of crunch, and they hold the pipes that would
    tell the forkserver (and an idle worker) that crunch died: without this watch, a killed
    run would leave its workers behind forever. A pidfd (Linux) wakes us exactly when the
    parent exits; elsewhere we poll.
    """
    import os
    import threading

    from crunch._backends._groups import end_own_group

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


class Recycled(NamedTuple):
    """A chunk's result from a worker that then left the pool, near its memory cap.

    ``data`` is the encoded outcome; it may be short of the chunk: the items it lacks were not
    started and must run elsewhere. ``left``: False when the worker could not leave cleanly
    (see crunch._pool_reach) and goes on.
    """

    pid: int
    data: bytes
    left: bool


def process_chunk(
    chunk_id: int, blob: bytes, split: bool = False
) -> bytes | str | ItemFailure | Recycled:
    """The function the pool runs: one pickled chunk in, its pickled outcome out.

    The items arrive pickled so that this worker's slot can say "loading chunk N" while they
    are unpickled (an item whose unpickling kills the worker is then known), and the outcome
    leaves pickled with the slot saying "sending" (a value whose pickling kills it is known
    too); see crunch._transit for how one misbehaving item or value is kept to itself
    (``split``: the values pickled one by one).
    Returns ``str`` (the error text) instead when the worker could not load the task or its
    initializer failed: the parent then stops the run with that message; and the
    ``ItemFailure`` of unpickling the items when they could not be: the parent then finds the
    item at fault by running them one by one; and, with a memory cap, ``Recycled`` when this
    worker is leaving. Never raises (leaving the pool does not return).
    """
    if _INIT_ERROR is not None:
        return _INIT_ERROR
    assert _JOB is not None
    table, base = _SLOTS, slot_offset(_SLOT)
    table[base + POSITION] = LOADING
    table[base + CHUNK] = chunk_id
    try:
        chunk = load_items(blob)
        if isinstance(chunk, ItemFailure):
            return chunk
        unit, attempts = chunk
        cap = _MAX_MEMORY
        lane = (
            _ProcessLane(table, _SLOT, chunk_id, _SOFT_TIMEOUT)
            if cap is None
            else _CappedLane(table, _SLOT, chunk_id, _SOFT_TIMEOUT, cap)
        )
        # A chunk makes many objects that live until it is encoded: the cyclic collector
        # would scan them again and again (a quarter of the time of a cheap item). Cycles a
        # task makes are collected when the chunk is over.
        gc.disable()
        try:
            outcome = run_unit(_JOB, unit, lane, attempts=attempts, timeout=_SOFT_TIMEOUT)
        finally:
            gc.enable()
        if cap is None:
            return encode_outcome(outcome, split=split)
        assert isinstance(lane, _CappedLane)
        return _capped_reply(outcome, lane, cap, split)
    finally:
        table[base + CHUNK] = IDLE


def _capped_reply(outcome: UnitOutcome, lane: _CappedLane, cap: int, split: bool) -> Any:
    """The reply of a worker with a memory cap: a worker whose item hit the backstop (made its
    ``memory`` failure as it was recorded, see ``_refine``), or that nears the cap, leaves the
    pool with this reply (see crunch._pool_reach)."""
    refused = any(f.failure.kind == "memory" for f in (outcome.failures or {}).values())
    data = encode_outcome(outcome, split=split)
    if not _CAN_LEAVE or not (lane.recycle or refused or _METER() >= lane.recycle_at):
        return data
    return _leave(data)


def _leave(data: bytes) -> Recycled:
    """Leave the pool with this reply (crunch._pool_reach), freeing this worker's row first;
    returns only if leaving failed, and then this worker goes on without recycling."""
    global _CAN_LEAVE
    import os

    from crunch._pool_reach import leave_pool

    row, pid = slot_offset(_SLOT), os.getpid()
    _SLOTS[row + CHUNK] = IDLE
    _SLOTS[row + PID] = 0
    leave_pool(Recycled(pid, data, left=True))
    _SLOTS[row + PID] = pid
    _CAN_LEAVE = False
    return Recycled(pid, data, left=False)
