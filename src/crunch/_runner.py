"""What runs a unit, in any worker: open it, run the task on each item, report per position.

Every backend calls ``run_unit`` (``arun_unit`` for ``async def`` tasks) with a *lane*, the
small object through which the worker says which position it is on and learns that it should
stop starting new items:

    lane.begin(position, t) -> bool   about to run it, at time.monotonic() t; False: halt
    lane.end()                        the unit is finished (or halted)

The outcome (``UnitOutcome``) covers the positions ``[0, done)``. With ``job.records`` the
items' JSON Lines records are encoded here, in the worker, as one ``bytes`` (``blob``), and
only what the parent needs for its counters comes with them: the failures, by position, with
their keys. Otherwise the values come back as a list (the library builds its results from
them). Failures are made of strings only (type name, message, traceback text), so nothing the
task raised has to pickle.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from crunch._failures import ItemFailure
from crunch._results import InvalidItem
from crunch._units import SKIP, Job, KeysUnit


class FailedItem(NamedTuple):
    """One failed position: its key (when the worker knows it), why, and how long it ran."""

    key: Any
    failure: ItemFailure
    seconds: float


class UnitOutcome(NamedTuple):
    """What a worker reports for positions ``[0, done)`` of a unit.

    ``skipped`` lists the positions that had nothing to run (no record, no value); every other
    position is an *item*, and the per-item sequences (``keys``, ``values``, ``seconds``, the
    records in ``blob``) hold one entry per item, in position order. ``keys`` is None when the
    parent already has them. ``failures`` maps a position to its failure; in values mode its
    value is None, in records mode its failure record is in ``blob`` already.
    """

    done: int
    total: float  # seconds of all items together (the chunk sizer's measure)
    failures: dict[int, FailedItem] | None
    skipped: list[int] | None
    keys: list[Any] | None
    values: list[Any] | None
    seconds: list[float] | None
    blob: bytes | None
    # A ``KeysUnit``'s answer: the fingerprints of the keys of its items (nothing ran).
    prints: tuple[bytes, ...] | None = None

    @property
    def items(self) -> int:
        return self.done - (len(self.skipped) if self.skipped else 0)


class Lane(Protocol):
    def begin(self, index: int, start: float) -> bool: ...
    def end(self) -> None: ...


class ItemTimeout(BaseException):
    """Raised inside a task by the soft per-item timer (process mode); never escapes the worker.

    A ``BaseException`` so that a task's ``except Exception`` cannot swallow it.
    """


def is_async_task(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` gives a coroutine: an ``async def`` function, also behind
    ``functools.partial`` or a wrapper that names it as ``__wrapped__`` (as ``functools.wraps``
    does, and the command's own wrappers), or an object whose ``__call__`` is ``async def``."""
    import inspect  # the parent's question: workers never ask it, nor import inspect

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


class Progress:
    """A unit's results so far. A thread lane's is read live when its item is abandoned."""

    __slots__ = (
        "failures",
        "keys",
        "keys_known",
        "records",
        "seconds",
        "skipped",
        "values",
    )

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.values: list[Any] = []  # values mode: the values; records mode: record dicts
        self.seconds: list[float] = []
        self.failures: dict[int, FailedItem] | None = None
        self.skipped: list[int] | None = None
        self.records = False  # set by run_unit from the job
        self.keys_known = True  # the parent has the keys: none travel back

    def start(self, job: Job, unit: Any) -> None:
        self.records = job.records
        self.keys_known = not job.records and not isinstance(unit, _UNITS_WITH_OWN_KEYS)

    def outcome(self, done: int) -> UnitOutcome:
        """The outcome of positions ``[0, done)`` (all of them, or a salvaged prefix)."""
        skipped = self.skipped
        if skipped is not None:
            skipped = [p for p in skipped if p < done]
        items = done - (len(skipped) if skipped else 0)
        failures = self.failures
        if failures is not None:
            failures = {p: f for p, f in failures.items() if p < done} or None
        if self.records:
            records = self.values[:items]
            blob, failures = encode_records(records, failures, skipped)
            total = sum(r["seconds"] for r in records)
            return UnitOutcome(done, total, failures, skipped or None, None, None, None, blob)
        seconds = self.seconds[:items]
        return UnitOutcome(
            done,
            sum(seconds),
            failures,
            skipped or None,
            None if self.keys_known else self.keys[:items],
            self.values[:items],
            seconds,
            None,
        )


def run_unit(
    job: Job,
    unit: Any,
    lane: Lane,
    *,
    attempts: list[int] | None = None,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> UnitOutcome:
    """Run ``job.fn`` on each item of ``unit`` in order; ``attempts`` numbers retried positions.

    Two loops: a lean one for the common case (clean items, first attempts, no timer, a lane
    that exposes its slot as a ``view``), and a careful one for everything else. They record
    the same things; the lean one only leaves out the checks that cannot apply.
    """
    if type(unit) is KeysUnit:
        return _fingerprinted(job, unit)
    acc = progress if progress is not None else Progress()
    acc.start(job, unit)
    keys, items, clean = unit.open(job)
    # A lane that must see every item (one that watches memory) has no ``view`` to lend.
    view = getattr(lane, "view", None) if getattr(lane, "lean", False) else None
    if clean and attempts is None and timeout is None and view is not None:
        done = _run_lean(job.fn, keys, items, lane, view, acc)
    else:
        done = _run_careful(job.fn, keys, items, lane, acc, attempts, timeout)
    return acc.outcome(done)


def _fingerprinted(job: Job, unit: KeysUnit) -> UnitOutcome:
    """A ``KeysUnit``: no item runs; its keys are fingerprinted, its blank lines skipped."""
    blank, prints = unit.fingerprints(job)
    return UnitOutcome(len(unit), 0.0, None, blank or None, None, None, None, None, prints)


def _run_lean(
    fn: Callable[[Any], Any],
    keys: Any,
    items: Any,
    lane: Any,
    view: Any,
    acc: Progress,
) -> int:
    """The hot loop: per item, one store into the slot table, the call, one clock reading."""
    halt, at = lane.halt_index, lane.position_index
    clock = time.monotonic
    add = acc.values.append
    add_key, add_second = acc.keys.append, acc.seconds.append
    records = acc.records
    done = 0
    start = clock()
    try:
        for position, key, item in zip(itertools.count(), keys, items):
            if view[halt]:
                break
            view[at] = position
            try:
                value = fn(item)
            except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                now = clock()
                _record_failure(acc, position, key, ItemFailure.from_exception(exc), now - start, 1)
                start = now
                done = position + 1
                continue
            now = clock()
            if records:
                add(
                    {
                        "item": key,
                        "ok": True,
                        "value": value,
                        "seconds": int((now - start) * 1e6 + 0.5) / 1e6,
                        "attempts": 1,
                    }
                )
            else:
                add_key(key)
                add(value)
                add_second(now - start)
            start = now
            done = position + 1
    finally:
        lane.end()
    return done


def _run_careful(
    fn: Callable[[Any], Any],
    keys: Any,
    items: Any,
    lane: Lane,
    acc: Progress,
    attempts: list[int] | None,
    timeout: float | None,
) -> int:
    clock = time.monotonic
    begin = lane.begin
    done = 0
    start = clock()
    try:
        for position, key, item in zip(itertools.count(), keys, items):
            if item is SKIP:
                if acc.skipped is None:
                    acc.skipped = []
                acc.skipped.append(position)
                done = position + 1
                continue
            if not begin(position, start):
                break
            failure = None
            value = None
            if type(item) is InvalidItem:
                failure = ItemFailure.invalid(item)
            else:
                try:
                    value = fn(item)
                except ItemTimeout:
                    failure = ItemFailure.timeout(timeout or 0.0)
                except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too
                    failure = ItemFailure.from_exception(exc)
            now = clock()
            took = now - start
            start = now
            tries = 1 if attempts is None else attempts[position]
            _record(acc, position, key, value, failure, took, tries)
            done = position + 1
    finally:
        lane.end()
    return done


refine: Callable[[ItemFailure], ItemFailure] | None = None
"""Set by a worker whose failures need another word (a memory cap: MemoryError is ``memory``)."""


def _record(
    acc: Progress,
    position: int,
    key: Any,
    value: Any,
    failure: ItemFailure | None,
    took: float,
    tries: int,
) -> None:
    """One item's result into ``acc`` (the careful and async loops; the lean one inlines it)."""
    if failure is not None:
        _record_failure(acc, position, key, failure, took, tries)
    elif acc.records:
        acc.values.append(
            {
                "item": key,
                "ok": True,
                "value": value,
                "seconds": int(took * 1e6 + 0.5) / 1e6,
                "attempts": tries,
            }
        )
    else:
        acc.keys.append(key)
        acc.values.append(value)
        acc.seconds.append(took)


def _record_failure(
    acc: Progress, position: int, key: Any, failure: ItemFailure, took: float, tries: int
) -> None:
    if refine is not None:
        failure = refine(failure)
    if acc.records:
        acc.values.append(_failure_record(key, failure, took, tries))
    else:
        acc.keys.append(key)
        acc.values.append(None)
        acc.seconds.append(took)
    if acc.failures is None:
        acc.failures = {}
    acc.failures[position] = FailedItem(key, failure, took)


async def arun_unit(
    job: Job, unit: Any, lane: Lane, *, attempts: list[int] | None, timeout: float | None
) -> UnitOutcome:
    """The ``async def`` twin of ``run_unit``: each item awaited, cancelled at ``timeout``."""
    import asyncio

    if type(unit) is KeysUnit:
        return _fingerprinted(job, unit)
    acc = Progress()
    acc.start(job, unit)
    fn = job.fn
    clock = time.monotonic
    done = 0
    keys, items, _clean = unit.open(job)
    try:
        for position, key, item in zip(itertools.count(), keys, items):
            start = clock()
            if item is SKIP:
                acc.skipped = [*(acc.skipped or ()), position]
                done = position + 1
                continue
            if not lane.begin(position, start):
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
            took = clock() - start
            tries = 1 if attempts is None else attempts[position]
            _record(acc, position, key, value, failure, took, tries)
            done = position + 1
    finally:
        lane.end()
    return acc.outcome(done)


def _failure_record(key: Any, failure: ItemFailure, seconds: float, tries: int) -> dict[str, Any]:
    return {
        "item": key,
        "ok": False,
        "error": {
            "kind": failure.kind,
            "type": failure.type,
            "message": failure.message,
            "traceback": failure.traceback,
        },
        "seconds": int(seconds * 1e6 + 0.5) / 1e6,
        "attempts": tries,
    }


def _units_with_own_keys() -> tuple[type, ...]:
    from crunch._units import JsonlUnit, PathsUnit

    return (JsonlUnit, PathsUnit)


_UNITS_WITH_OWN_KEYS = _units_with_own_keys()


# --------------------------------------------------------------------------- records
_BOUNDARY = b'},{"item":'
_NEWLINE_BOUNDARY = b'}\n{"item":'


def encode_records(
    records: list[dict[str, Any]],
    failures: dict[int, FailedItem] | None,
    skipped: list[int] | None,
) -> tuple[bytes, dict[int, FailedItem] | None]:
    """The JSON Lines of ``records`` as one ``bytes``, and the failures with encoding ones added.

    The common case is one ``orjson.dumps`` of the whole list: every record starts with
    ``{"item":`` and a JSON string can never hold ``},{"item":`` unescaped (its quote would be
    ``\\"``), so the boundaries between records are exactly those bytes. A record that does
    not encode (a value JSON cannot hold, a string that is not valid Unicode) or may hold a
    NaN or an infinity (which orjson writes as ``null``) sends the whole chunk down the
    careful path, record by record; a ``null`` that is only a ``None`` does not.
    """
    if not records:
        return b"", failures
    import orjson

    from crunch._jsonline import OPTIONS

    try:
        blob = orjson.dumps(records, option=OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        blob = None
    if blob is not None and (b"null" not in blob or not _any_non_finite(records)):
        return blob[1:-1].replace(_BOUNDARY, _NEWLINE_BOUNDARY) + b"\n", failures
    from crunch._output import encode_record

    lines = []
    positions = _item_positions(len(records), skipped)
    for index, record in enumerate(records):
        line, problem = encode_record(record)
        if problem is not None:
            if failures is None:
                failures = {}
            position = positions[index]
            failures[position] = FailedItem(record["item"], problem, record["seconds"])
        lines.append(line)
    return b"".join(lines), failures


def _any_non_finite(records: list[dict[str, Any]]) -> bool:
    """Whether a value may hold a NaN or an infinity (which orjson writes as ``null``): a
    ``null`` in a chunk's records is most often a ``None``, which needs no careful path."""
    return not all(_finite(r["value"]) for r in records if r["ok"])


_PLAIN = frozenset({int, str, bool, type(None)})


def _finite(value: Any) -> bool:
    """No NaN or infinity in ``value``; False also when unsure (a type of its own, numpy)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is float:
        return value - value == 0.0  # NaN and the infinities give NaN
    if kind is dict:
        return all(map(_finite, value.values()))
    if kind is list or kind is tuple:
        return all(map(_finite, value))
    return False


def _item_positions(items: int, skipped: list[int] | None) -> list[int]:
    """The position of each item, given the positions that were skipped."""
    if not skipped:
        return list(range(items))
    gone = set(skipped)
    out: list[int] = []
    position = 0
    while len(out) < items:
        if position not in gone:
            out.append(position)
        position += 1
    return out


def item_positions(outcome: UnitOutcome) -> list[int]:
    """The position of each item in ``outcome`` (the parent's view of the per-item lists)."""
    return _item_positions(outcome.items, outcome.skipped)
