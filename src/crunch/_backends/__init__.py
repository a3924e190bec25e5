"""Backends: how a chunk of items gets run, in each mode.

A backend knows how to run a chunk and report per-item outcomes, nothing more: the scheduler
above it decides what to run, retries, reorders and counts; no backend writes output.

    submit(chunk_id, unit, attempts) -> asyncio.Future resolving to
        UnitOutcome  (crunch._runner) for positions [0, done) of the unit; a shorter outcome
                     means the rest were never started (halt requested)
        Lost         the chunk did not come back whole (worker died, item abandoned at
                     timeout): what was salvaged, which positions are to blame, which must run
                     again
    A backend runs ``crunch._runner.run_unit(job, unit, lane)`` where its workers are; the
    ``job`` (task, record or value output, --key, --resume's skips) it was made with.
    check_timeouts(now)   watchdog tick: abandon or kill items past the timeout
    halt()                workers stop starting new items (max-failures, signals)
    close(kill=...)       shut down; kill=True: now, leaving no worker running
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crunch._failures import ItemFailure
from crunch._runner import UnitOutcome
from crunch._transit import unsendable_items
from crunch._units import ItemsUnit, Job

if TYPE_CHECKING:  # the forkserver imports this package (see _forkserver_preload): no asyncio
    import asyncio


@dataclass(slots=True)
class Lost:
    """A chunk that did not come back whole.

    ``partial`` covers positions ``[0, partial.done)`` when something was salvaged; ``blamed``
    maps a position to its failure and seconds (the item that crashed its worker or hung);
    ``rerun`` lists the indices to run again, through no fault of their own; ``suspect`` says
    the loss could not be pinned on one item (an unexplained worker death), so the scheduler
    isolates these items and fails one that keeps breaking workers on its own. ``isolate``
    says one of these items is known to be at fault, just not which (it did not unpickle in the
    worker; it took its worker past the memory cap while the chunk was loading or sending): the
    scheduler runs them one by one, so that one fails alone, without counting it against them.
    ``reason`` says what is known of how the worker died, for that item's record.
    """

    rerun: Sequence[int]
    blamed: dict[int, tuple[ItemFailure, float]] = field(default_factory=dict)
    partial: UnitOutcome | None = None
    suspect: bool = False
    isolate: bool = False
    reason: str = ""


def unsendable(unit: Any, exc: BaseException, dumps: Callable[[Any], bytes] | None = None) -> Lost:
    """A chunk that could not be pickled to be sent: the items that do not pickle fail (see
    crunch._transit), the others run again. Only a unit of Python items can hold one; for
    the others, the error is every position's."""
    items = unit.items if isinstance(unit, ItemsUnit) else None
    if items is None:
        failure = ItemFailure.from_exception(exc)
        return Lost(rerun=(), blamed=dict.fromkeys(range(len(unit)), (failure, 0.0)))
    blamed = {i: (f, 0.0) for i, f in unsendable_items(items, exc, dumps).items()}
    return Lost(rerun=[i for i in range(len(items)) if i not in blamed], blamed=blamed)


def one_at_fault(items: list[Any], failure: ItemFailure) -> Lost:
    """A chunk lost through the fault of one of its items, not known which (``failure`` says
    what went wrong: its items did not unpickle in the worker, say): a lone item fails with
    that; several run again one by one (``Lost.isolate``), so the one at fault fails alone."""
    if len(items) == 1:
        return Lost(rerun=(), blamed={0: (failure, 0.0)})
    return Lost(rerun=range(len(items)), isolate=True)


def undecodable(unit: Any, exc: BaseException) -> Lost:
    """A worker's outcome that did not unpickle at all (not one value: the whole of it): a lone
    item fails with that; several run again one by one."""
    return one_at_fault(unit, ItemFailure.unloadable_value(exc))


class Backend:
    """Base of the mode backends; see the module docstring for the protocol."""

    lanes: int = 1
    # How many chunks the scheduler keeps in flight per lane: one running and one queued
    # hides the round trip; more only adds items at risk when a worker dies.
    window_per_lane: int = 2
    # The shortest chunk worth sending, in seconds of work: ~30x what one chunk costs the
    # parent. A thread hand-off is ~0.1 ms; a process round trip 0.5-1 ms of parent CPU.
    min_chunk_seconds: float = 0.025

    async def start(self) -> None:
        return None

    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[UnitOutcome | Lost]:
        raise NotImplementedError

    def check_timeouts(self, now: float) -> None:
        return None

    def halt(self) -> None:
        raise NotImplementedError

    async def close(self, *, kill: bool) -> None:
        return None


def make_backend(
    mode: str,
    job: Job,
    *,
    workers: int,
    timeout: float | None,
    init: Callable[[], Any] | None,
    scheduler: str | None = None,
    max_memory: int | None = None,
) -> Backend:
    """The backend for ``mode``; heavy modules are imported only for the mode that needs them."""
    if mode == "process":
        from crunch._backends.process import ProcessBackend

        return ProcessBackend(
            job, workers=workers, timeout=timeout, init=init, max_memory=max_memory
        )
    if mode == "thread":
        from crunch._backends.thread import ThreadBackend

        return ThreadBackend(job, workers=workers, timeout=timeout, init=init)
    if mode == "sync":
        from crunch._backends.thread import ThreadBackend

        # One lane: one item after another. It is a thread (not the event loop itself) so a
        # hung item can be abandoned at --timeout, as in thread mode.
        return ThreadBackend(job, workers=1, timeout=timeout, init=init)
    if mode == "async":
        from crunch._backends.aio import AsyncBackend

        return AsyncBackend(job, workers=workers, timeout=timeout, init=init)
    if mode == "dask":
        from crunch._backends.dask import DaskBackend

        return DaskBackend(
            job,
            workers=workers,
            timeout=timeout,
            init=init,
            address=scheduler,
            max_memory=max_memory,
        )
    raise ValueError(f"unknown mode {mode!r}")
