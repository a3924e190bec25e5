"""What runs inside a worker: one chunk of items, turned into per-item outcomes.

This module knows nothing of pools, schedulers or output. Every backend calls ``run_chunk``
(or ``arun_chunk`` for ``async def`` tasks) with a *lane*, the small object through which the
worker reports which item it is on and learns that it should stop starting new items:

    lane.begin(i, t) -> bool about to run item i, at time.monotonic() t; False: halt requested
    lane.end()               the chunk is finished (or halted)

An ``Outcome`` (crunch._transit) is ``(values, seconds, failures)`` covering items
``[0, len(values))``; ``failures`` maps an index to its ``ItemFailure`` (crunch._failures), built
here, in the worker, from strings only, so nothing the task raised has to pickle.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from crunch._failures import ItemFailure, startup_error_text
from crunch._transit import Outcome, encode_outcome, load_items
from crunch.results import InvalidItem


class Lane(Protocol):
    def begin(self, index: int, start: float) -> bool: ...
    def end(self) -> None: ...


class ItemTimeout(BaseException):
    """Raised inside a task by the soft per-item timer (process mode); never escapes the worker.

    A ``BaseException`` so that a task's ``except Exception`` cannot swallow it.
    """


def run_chunk(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    lane: Lane,
    out: Outcome | None = None,
) -> Outcome:
    """Run ``fn`` on each item in order. ``out`` lets a thread lane share its progress live."""
    values, seconds, failures = out if out is not None else ([], [], None)
    # With ``out`` (a thread lane) ``failures`` is a dict the parent can already see.
    # One clock reading per item: it ends one item and starts the next (the loop's own cost,
    # a few hundred ns, is counted in the item's seconds). monotonic: the clock the parent
    # compares slot start times with.
    clock = time.monotonic
    begin = lane.begin
    append_value, append_second = values.append, seconds.append
    start = clock()
    try:
        for index, item in enumerate(items):
            if not begin(index, start):
                break
            if type(item) is InvalidItem:
                value, failure = None, ItemFailure.invalid(item)
            else:
                try:
                    value = fn(item)
                except ItemTimeout:
                    value, failure = None, ItemFailure.timeout(_SOFT_TIMEOUT or 0.0)
                except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                    value, failure = None, ItemFailure.from_exception(exc)
                else:
                    now = clock()
                    append_value(value)
                    append_second(now - start)
                    start = now
                    continue
            if failures is None:
                failures = {}
            failures[index] = failure
            now = clock()
            append_value(value)
            append_second(now - start)
            start = now
    finally:
        lane.end()
    return Outcome(values, seconds, failures)


async def arun_chunk(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    lane: Lane,
    timeout: float | None,
) -> Outcome:
    """The ``async def`` twin of ``run_chunk``: each item awaited, cancelled at ``timeout``."""
    import asyncio

    values: list[Any] = []
    seconds: list[float] = []
    failures: dict[int, ItemFailure] | None = None
    perf = time.monotonic
    try:
        for index, item in enumerate(items):
            start = perf()
            if not lane.begin(index, start):
                break
            failure = None
            value = None
            try:
                if type(item) is InvalidItem:
                    failure = ItemFailure.invalid(item)
                else:
                    value, raised = await asyncio.wait_for(_captured(fn(item)), timeout)
                    if raised is not None:
                        failure = ItemFailure.from_exception(raised)
            except TimeoutError:
                failure = ItemFailure.timeout(timeout or 0.0)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001
                failure = ItemFailure.from_exception(exc)
            values.append(value)
            seconds.append(perf() - start)
            if failure is not None:
                failures = failures or {}
                failures[index] = failure
    finally:
        lane.end()
    return Outcome(values, seconds, failures)


async def _captured(awaitable: Any) -> tuple[Any, BaseException | None]:
    """``(value, None)``, or ``(None, exc)`` for what the task raised, ``SystemExit`` and
    ``KeyboardInterrupt`` included: asyncio re-raises those two out of the event loop when
    they escape a task (``wait_for`` runs the item as one on Python 3.11), which would end the
    run. They come from the task, not the user: the loop runs on the engine's own thread,
    where no signal is delivered. A cancellation (the timeout) goes through."""
    import asyncio

    try:
        return await awaitable, None
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - recorded as the item's failure
        return None, exc


def is_async_task(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` gives a coroutine: an ``async def`` function, also behind
    ``functools.partial`` or a wrapper that names it as ``__wrapped__`` (as ``functools.wraps``
    does, and the command's own wrappers), or an object whose ``__call__`` is ``async def``."""
    inner: Any = fn
    for _ in range(100):  # a wrapper that wraps itself must not loop forever
        if isinstance(inner, functools.partial):
            inner = inner.func
        elif getattr(inner, "__wrapped__", None) is not None:
            inner = inner.__wrapped__
        else:
            break
    if inspect.iscoroutinefunction(inner):
        return True
    if inspect.isroutine(inner) or isinstance(inner, type):
        return False
    return inspect.iscoroutinefunction(getattr(type(inner), "__call__", None))  # noqa: B004


# --------------------------------------------------------------------------- process workers
# The state of one worker process, set once by ``init_process_worker``.

_SLOTS: Any = None  # the shared slot table (see backends/process.py)
_SLOT: int = -1  # this worker's slot index in it
_FN: Callable[[Any], Any] | None = None
_INIT_ERROR: str | None = None
_SOFT_TIMEOUT: float | None = None
_MAX_MEMORY: int | None = None  # the memory cap, in bytes (see crunch._memory)
_METER: Any = None  # this worker's RSS meter, with a cap
_CAN_LEAVE = False  # whether this worker can leave its pool cleanly (crunch._pool_reach)

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
    """Writes the current item into this worker's slot, where the parent watches it."""

    __slots__ = ("arm", "base", "table")

    def __init__(self, table: Any, slot: int, chunk_id: int, timeout: float | None) -> None:
        self.table = table
        self.base = slot_offset(slot)
        self.arm = timeout
        table[self.base + 1] = chunk_id

    def begin(self, index: int, start: float) -> bool:
        table = self.table
        if table[HALT]:
            return False
        table[self.base + 3] = start
        table[self.base + 2] = index
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
    # The timer can fire while crunch's own loop runs rather than the task: never raise into
    # crunch's code. Just after a task returned, the next begin() (or end()) resets the timer
    # anyway; just before a task starts (a worker descheduled between arming the timer and
    # calling the task, on a busy machine), the item's time is up already: fire again a moment
    # later, inside the task. After end() the alarm is stale and ignored.
    if frame is not None and frame.f_code in _OWN_CODE:
        if _ARMED:
            signal.setitimer(signal.ITIMER_REAL, _REARM)
        return
    raise ItemTimeout


class _CappedLane(_ProcessLane):
    """A lane that also watches this worker's memory between items (crunch._memory): once it
    holds ``RECYCLE_AT`` of the cap it starts no more items (``recycle``), and the worker is
    replaced before it could fail an item for memory that earlier items left behind."""

    __slots__ = ("due", "recycle", "recycle_at", "watch_from")

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


_OWN_CODE = frozenset(
    {
        run_chunk.__code__,
        _ProcessLane.begin.__code__,
        _ProcessLane.end.__code__,
        _CappedLane.begin.__code__,
    }
)


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
    global _SLOTS, _SLOT, _FN, _INIT_ERROR, _SOFT_TIMEOUT
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
    # ``rows`` holds the table's row count; its lock guards claiming the first free row (a
    # worker that left the pool freed its own for its replacement).
    with rows.get_lock():
        free = [slot for slot in range(int(rows.value)) if not table[slot_offset(slot)]]
        _SLOT = free[0] if free else -1
        if free:
            table[slot_offset(_SLOT) + 1] = -1
            table[slot_offset(_SLOT)] = os.getpid()
    _SLOTS = table
    if _SLOT < 0:  # pragma: no cover - the parent never starts more workers than rows
        _INIT_ERROR = "no free row in the slot table for a new worker"
        return
    base = slot_offset(_SLOT)
    _SOFT_TIMEOUT = soft_timeout
    if soft_timeout is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
    try:
        _FN = pickle.loads(fn_bytes)
        if init is not None:
            table[base + 1] = INITIALIZING  # a death now is the initializer's doing
            init()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent with the first chunk
        _INIT_ERROR = startup_error_text(exc)
    finally:
        table[base + 1] = -1
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
    _CAN_LEAVE = can_leave()
    return None


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
    assert _FN is not None
    table, base = _SLOTS, slot_offset(_SLOT)
    table[base + 2] = LOADING
    table[base + 1] = chunk_id
    try:
        items = load_items(blob)
        if isinstance(items, ItemFailure):
            return items
        cap = _MAX_MEMORY
        if cap is None:
            outcome = run_chunk(_FN, items, _ProcessLane(table, _SLOT, chunk_id, _SOFT_TIMEOUT))
            return encode_outcome(outcome, split=split)
        lane = _CappedLane(table, _SLOT, chunk_id, _SOFT_TIMEOUT, cap)
        outcome = run_chunk(_FN, items, lane)
        return _capped_reply(outcome, lane, cap, split)
    finally:
        table[base + 1] = -1


def _capped_reply(outcome: Outcome, lane: _CappedLane, cap: int, split: bool) -> Any:
    """The reply of a worker with a memory cap: a ``MemoryError`` (the backstop refused an
    allocation) is the item's ``memory`` failure, and a worker that hit one, or nears the
    cap, leaves the pool with this reply (see crunch._pool_reach)."""
    from crunch._memory import fail_refused

    refused = fail_refused(outcome, cap)
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
    _SLOTS[row + 1] = -1
    _SLOTS[row] = 0
    leave_pool(Recycled(pid, data, left=True))
    _SLOTS[row] = pid
    _CAN_LEAVE = False
    return Recycled(pid, data, left=False)
