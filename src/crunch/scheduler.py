"""The engine: a streaming scheduler that turns every input item into exactly one result.

    Feed (lazy input) --take--> chunks --submit--> Backend (sync|thread|async|process|dask)
       ^                          ^                    |
       | bounded read-ahead       | reruns, retries    | Outcome | Lost  (per chunk)
       |                          |                    v
       +------------------- Scheduler._absorb ----> ItemResult batches --> the caller's sinks

One asyncio loop drives it (``Scheduler.results`` is an async generator of result batches):

- *window*: at most ``lanes * window_per_lane`` chunks are in flight, so memory is bounded
  whatever the input size; each chunk's size comes from the measured item cost (_sizing).
- *supervisor*: a chunk comes back whole (``Outcome``) or not (``Lost``, see backends). Lost
  items are re-run, blamed items become ``crash``/``timeout`` records; failures whose type is
  in ``retry_on`` go back in, after an exponential backoff with jitter, until ``retries`` runs
  out. Every item leaves exactly once: as a record, or counted in ``not_run`` when the run is
  halted (``max_failures``) or stopped (a signal) before it started.
- *watchdog*: with a ``timeout`` or ``max_memory``, a periodic tick lets the backend abandon
  or kill items that hang or take their worker past its memory cap.
- *order*: ``ordered`` holds finished results until all earlier ones are out; the window then
  also counts held results, so one slow item cannot make the buffer grow without bound.

Nothing here writes output or knows about the command line; ``request_stop`` is the one way in
from another thread (signal handlers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import heapq
import itertools
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

from crunch._failures import ItemFailure
from crunch._feed import KeyFn, make_feed
from crunch._retry import retryable
from crunch._sizing import ChunkSizer
from crunch._worker import Outcome
from crunch.backends import Backend, Lost, make_backend
from crunch.config import RunConfig
from crunch.exceptions import CrunchError, RunInterrupted, SourceError, UsageError
from crunch.results import ItemResult

# An item that was in flight in this many unexplained worker deaths, alone, is the culprit.
SUSPECT_LIMIT = 3
MAX_BACKOFF = 30.0  # seconds


# tuple.__new__ bound to ItemResult: builds a result in C, without NamedTuple._make's Python frame.
_make_result = functools.partial(tuple.__new__, ItemResult)


class Batch:
    """The results of one finished chunk, made as the caller iterates over them.

    Items that all succeeded at the first try travel as three parallel sequences; each
    ``ItemResult`` is built only when iterated, and so lives briefly: a million results made
    at once would each be promoted by the cyclic garbage collector, and each full collection
    would scan them all again. The rest (failures, retried items, ordered output) are ready
    ``ItemResult`` objects in ``others``.
    """

    __slots__ = ("keys", "others", "seconds", "values")

    def __init__(
        self,
        keys: Sequence[Any] = (),
        values: Sequence[Any] = (),
        seconds: Sequence[float] = (),
        others: Sequence[ItemResult] = (),
    ) -> None:
        self.keys = keys
        self.values = values
        self.seconds = seconds
        self.others = others

    def __len__(self) -> int:
        return len(self.values) + len(self.others)

    def __iter__(self) -> Iterator[ItemResult]:
        ok = zip(
            self.keys,
            repeat(True),
            self.values,
            repeat(None),
            self.seconds,
            repeat(1),
            strict=False,
        )
        return itertools.chain(map(_make_result, ok), self.others)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.others if not r.ok)

    def ok_pairs(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) of the items that succeeded at the first try, without ItemResults."""
        return zip(self.keys, self.values, strict=True)


@dataclass(slots=True)
class RunStats:
    """Live counters, read by progress displays and the summary."""

    found: int = 0
    done: int = 0
    ok: int = 0
    failed: int = 0
    not_run: int = 0
    retried: int = 0
    worker_deaths: int = 0
    source_exhausted: bool = False
    halted: bool = False  # max_failures reached
    stop_signal: int | None = None
    started: float = 0.0
    ended: float = 0.0


class _Chunk:
    __slots__ = ("attempts", "id", "items", "keys", "seqs", "suspicion")

    def __init__(
        self,
        chunk_id: int,
        seqs: Sequence[int],
        keys: Sequence[Any],
        items: list[Any],
        attempts: list[int] | None = None,
        suspicion: list[int] | None = None,
    ) -> None:
        self.id = chunk_id
        self.seqs = seqs
        self.keys = keys
        self.items = items
        self.attempts = attempts
        self.suspicion = suspicion


class _Redo(NamedTuple):
    """One item waiting to run again."""

    seq: int  # its position in the input
    key: Any
    item: Any
    attempts: int  # tries so far
    suspicion: int  # unexplained worker deaths it was in flight for
    alone: bool = False  # runs in a chunk of its own (see Lost.isolate)


class _Retry(NamedTuple):
    """An item backing off before its next try; the heap orders them by ``ready``."""

    ready: float  # time.monotonic() when it may run again
    seq: int  # unique, so entries never compare further
    key: Any
    item: Any
    attempts: int


class Scheduler:
    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        config: RunConfig,
        *,
        keyed: bool = False,
        key: KeyFn | None = None,
        init: Callable[[], Any] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.config = config
        self.fn = fn
        self.items = items
        self.keyed = keyed
        self.key = key
        self.init = init
        self.backend = backend
        self.stats = RunStats()
        self.retry_on = frozenset(config.retry_on)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        self.completed: collections.deque[tuple[_Chunk, asyncio.Future[Outcome | Lost]]] = (
            collections.deque()
        )
        self.inflight: dict[int, _Chunk] = {}
        self.early_done: dict[int, _Chunk] = {}  # finished, freed from the window, not absorbed
        self.redo: collections.deque[_Redo] = collections.deque()
        self.retry_heap: list[_Retry] = []
        self.held: dict[int, ItemResult] = {}  # ordered mode: finished, waiting for earlier
        self.next_seq = 0
        self.chunk_ids = 0
        self.stopping = False  # no new dispatch: halted or stopped
        self.killed = False
        self.retry_timer_at = 0.0
        self.background: set[asyncio.Task[None]] = set()
        self.stop_lock = threading.RLock()  # RLock: a signal handler may interrupt its holder
        self.early_stops: list[tuple[int, bool]] = []  # requested before the loop existed

    # ------------------------------------------------------------------ public face
    def request_stop(self, signum: int, *, immediate: bool = False) -> None:
        """Thread-safe: stop starting items; kill the rest after ``grace`` (or now).

        A request made before the run has started is kept and acted on as it starts; one made
        after the run ended does nothing.
        """
        with self.stop_lock:
            loop = self.loop
            if loop is None:
                self.early_stops.append((signum, immediate))
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(self._stop, signum, immediate)

    async def results(self) -> AsyncIterator[Batch]:
        """Run everything; yield result batches as chunks finish (in input order if asked)."""
        config = self.config
        if self.backend is None:
            self.backend = make_backend(
                config.mode,
                self.fn,
                workers=config.workers,
                timeout=config.timeout,
                init=self.init,
                scheduler=config.scheduler,
                max_memory=config.max_memory,
            )
        backend = self.backend
        with self.stop_lock:
            self.loop = asyncio.get_running_loop()
            early, self.early_stops = self.early_stops, []
        for signum, immediate in early:
            self._stop(signum, immediate)
        fixed = None if config.chunk_size == "auto" else int(config.chunk_size)
        feed = make_feed(self.items, keyed=self.keyed, key=self.key, wake=self._wake_threadsafe)
        self.feed = feed
        if isinstance(self.items, Sized):
            self.stats.found = len(self.items)
        self.stats.started = time.monotonic()
        watched = config.timeout or config.max_memory
        watchdog = self.loop.create_task(self._watchdog()) if watched else None
        clean = False
        try:
            await backend.start()
            # After start: a backend may learn its lanes then (the workers of a dask cluster).
            self.sizer = ChunkSizer(fixed, backend.lanes, backend.min_chunk_seconds)
            self.window = backend.lanes * backend.window_per_lane
            while True:
                self._fill()
                if not self.inflight and self._nothing_left():
                    break
                await self.wake.wait()
                self.wake.clear()
                self._refill_early()
                while self.completed:
                    chunk, future = self.completed.popleft()
                    batch = self._absorb(chunk, _outcome_of(chunk, future))
                    if batch is not None:
                        yield batch
            tail = self._finish_order()
            if tail:
                yield Batch(others=tail)
            clean = True
        finally:
            self.stats.ended = time.monotonic()
            if watchdog is not None:
                watchdog.cancel()
            feed.close()
            await backend.close(kill=not clean or self.killed)
        if feed.error is not None:
            if isinstance(feed.error, CrunchError):  # the source refused its input itself
                raise feed.error
            raise SourceError(f"reading the input failed: {feed.error!r}") from feed.error
        if self.stats.stop_signal is not None:
            raise RunInterrupted(self.stats.stop_signal)

    # ------------------------------------------------------------------ dispatch
    def _wake_threadsafe(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake.set)

    def _nothing_left(self) -> bool:
        if self.stopping:
            self._count_unstarted()
            return True
        return self.feed.exhausted and not self.redo and not self.retry_heap

    def _count_unstarted(self) -> None:
        """Items found but never started (halt or stop) are counted, never silently lost."""
        unstarted = len(self.redo) + len(self.retry_heap) + self.feed.buffered()
        self.redo.clear()
        self.retry_heap.clear()
        self.stats.not_run += unstarted
        self.stats.found = self.feed.taken + self.feed.buffered()
        if self.feed.buffered():
            self.feed.take(self.feed.buffered())

    def _fill(self) -> None:
        """Submit chunks while the window has room and there is work."""
        if isinstance(self.feed.error, UsageError) and not self.stopping:
            self._halt()  # the source refused its input (a repeated key): start nothing more
        if self.stopping:
            return
        self._release_retries()
        while len(self.inflight) < self.window and not self._holding_too_much():
            chunk = self._next_chunk()
            if chunk is None:
                return
            self.inflight[chunk.id] = chunk
            assert self.backend is not None
            future = self.backend.submit(chunk.id, chunk.items)
            future.add_done_callback(lambda f, c=chunk: self._on_done(c, f))

    def _refill_early(self) -> None:
        """Hand workers new chunks *before* digesting finished ones, so they never wait on us.

        A finished chunk whose outcome is whole frees its window slot at once; the rest (lost
        chunks, which may bring items back) are counted in flight until absorbed.
        """
        for chunk, future in self.completed:
            if (
                chunk.id in self.inflight
                and not future.cancelled()
                and future.exception() is None
                and not isinstance(future.result(), Lost)
            ):
                self.early_done[chunk.id] = self.inflight.pop(chunk.id)
        self._fill()

    def _on_done(self, chunk: _Chunk, future: asyncio.Future[Outcome | Lost]) -> None:
        self.completed.append((chunk, future))
        self.wake.set()

    def _holding_too_much(self) -> bool:
        return len(self.held) > max(4096, 8 * self.window * self._size_hint)

    @property
    def _size_hint(self) -> int:
        return self.sizer.size(0.0, None)

    def _next_chunk(self) -> _Chunk | None:
        self.chunk_ids += 1
        if self.redo:
            return self._redo_chunk(self.chunk_ids)
        elapsed = time.monotonic() - self.stats.started
        feed = self.feed
        taken = feed.take(self.sizer.size(elapsed, feed.remaining()))
        if taken is None:
            self.stats.source_exhausted = feed.exhausted
            return None
        seq0, keys, items = taken
        self.stats.found = feed.taken + feed.buffered()
        return _Chunk(self.chunk_ids, range(seq0, seq0 + len(items)), keys, items)

    def _redo_chunk(self, chunk_id: int) -> _Chunk:
        """Items to run again. A suspect goes alone, so the next death names it."""
        first = self.redo.popleft()
        batch = [first]
        if not _goes_alone(first):
            limit = self.sizer.size(time.monotonic() - self.stats.started, None)
            while self.redo and len(batch) < limit and not _goes_alone(self.redo[0]):
                batch.append(self.redo.popleft())
        return _Chunk(
            chunk_id,
            [r.seq for r in batch],
            [r.key for r in batch],
            [r.item for r in batch],
            [r.attempts for r in batch],
            [r.suspicion for r in batch],
        )

    def _release_retries(self) -> None:
        now = time.monotonic()
        heap = self.retry_heap
        while heap and heap[0].ready <= now:
            entry = heapq.heappop(heap)
            self.redo.append(_Redo(entry.seq, entry.key, entry.item, entry.attempts, 0))
        if heap and heap[0].ready != self.retry_timer_at:
            assert self.loop is not None
            self.retry_timer_at = heap[0].ready
            self.loop.call_at(heap[0].ready, self.wake.set)

    # ------------------------------------------------------------------ results
    def _absorb(self, chunk: _Chunk, outcome: Outcome | Lost) -> Batch | None:
        if self.inflight.pop(chunk.id, None) is None:
            del self.early_done[chunk.id]
        if (
            type(outcome) is Outcome
            and not outcome.failures
            and chunk.attempts is None
            and not self.config.ordered
        ):
            # The common case: every item ok at the first try. Results are made lazily as
            # the caller iterates (see Batch), so nothing per item happens here.
            values, seconds, _ = outcome
            done = len(values)
            self.stats.not_run += len(chunk.items) - done
            if not done:
                return None
            self.sizer.observe(done, sum(seconds))
            self.stats.ok += done
            self.stats.done += done
            return Batch(chunk.keys[:done], values, seconds)
        results: list[ItemResult] = []
        if isinstance(outcome, Lost):
            self._absorb_lost(chunk, outcome, results)
        else:
            self._absorb_outcome(chunk, outcome, results)
            not_started = len(chunk.items) - len(outcome.values)
            if not_started:
                self.stats.not_run += not_started
        results = self._emit(results)
        return Batch(others=results) if results else None

    def _absorb_outcome(self, chunk: _Chunk, outcome: Outcome, results: list[ItemResult]) -> None:
        values, seconds, failures = outcome
        done = len(values)
        if done:
            self.sizer.observe(done, sum(seconds))
        if not failures and chunk.attempts is None:
            results.extend(
                map(
                    _make_result,
                    zip(chunk.keys[:done], repeat(True), values, repeat(None), seconds, repeat(1)),
                )
            )
            if self.config.ordered:
                self._mark_seqs(chunk, results, done)
            self.stats.ok += done
            return
        failures = failures or {}
        attempts = chunk.attempts
        for index in range(done):
            tries = attempts[index] if attempts else 1
            failure = failures.get(index)
            if failure is None:
                results.append(
                    ItemResult(chunk.keys[index], True, values[index], None, seconds[index], tries)
                )
                self.stats.ok += 1
            elif self._should_retry(failure, tries):
                self._retry(chunk, index, tries)
                results.append(_RETRYING)
            else:
                results.append(self._failed(chunk, index, failure, seconds[index], tries))
        if self.config.ordered:
            self._mark_seqs(chunk, results, done)
        results[:] = [r for r in results if r is not _RETRYING]

    def _mark_seqs(self, chunk: _Chunk, results: list[ItemResult], done: int) -> None:
        # Pair each new result with its input position for the reorder buffer.
        start = len(results) - done
        for offset in range(done):
            result = results[start + offset]
            if result is not _RETRYING:
                self.held[chunk.seqs[offset]] = result
        del results[start:]

    def _absorb_lost(self, chunk: _Chunk, lost: Lost, results: list[ItemResult]) -> None:
        if lost.partial is not None:
            self._absorb_outcome(chunk, lost.partial, results)
        deaths = [f for f, _ in lost.blamed.values() if f.kind in ("crash", "memory")]
        self.stats.worker_deaths += len(deaths) or lost.suspect
        for index, (failure, seconds) in lost.blamed.items():
            tries = chunk.attempts[index] if chunk.attempts else 1
            result = self._failed(chunk, index, failure, seconds, tries)
            if self.config.ordered:
                self.held[chunk.seqs[index]] = result
            else:
                results.append(result)
        for index in lost.rerun:
            if self.stopping:
                self.stats.not_run += 1
                continue
            tries = chunk.attempts[index] if chunk.attempts else 1
            suspicion = (chunk.suspicion[index] if chunk.suspicion else 0) + lost.suspect
            if lost.suspect and len(chunk.items) == 1 and suspicion >= SUSPECT_LIMIT:
                failure = ItemFailure.repeated_crash(suspicion)
                result = self._failed(chunk, index, failure, 0.0, tries)
                if self.config.ordered:
                    self.held[chunk.seqs[index]] = result
                else:
                    results.append(result)
                continue
            self.redo.append(
                _Redo(
                    chunk.seqs[index],
                    chunk.keys[index],
                    chunk.items[index],
                    tries,
                    suspicion,
                    lost.isolate,
                )
            )

    def _failed(
        self, chunk: _Chunk, index: int, failure: ItemFailure, seconds: float, tries: int
    ) -> ItemResult:
        self.stats.failed += 1
        max_failures = self.config.max_failures
        if max_failures is not None and self.stats.failed >= max_failures and not self.stopping:
            self.stats.halted = True
            self._halt()
        return ItemResult(chunk.keys[index], False, None, failure.public(tries), seconds, tries)

    def _should_retry(self, failure: ItemFailure, tries: int) -> bool:
        return (
            failure.kind == "error"
            and tries <= self.config.retries
            and not self.stopping
            and retryable(failure.names, self.retry_on)
        )

    def _retry(self, chunk: _Chunk, index: int, tries: int) -> None:
        """Back off exponentially, with full jitter, before the next try of this item."""
        delay = min(MAX_BACKOFF, self.config.backoff * 2 ** (tries - 1))
        delay *= random.uniform(0.5, 1.5)
        ready = time.monotonic() + delay
        entry = _Retry(ready, chunk.seqs[index], chunk.keys[index], chunk.items[index], tries + 1)
        heapq.heappush(self.retry_heap, entry)
        self.stats.retried += 1
        assert self.loop is not None
        self.loop.call_at(ready, self.wake.set)

    def _emit(self, results: list[ItemResult]) -> list[ItemResult]:
        if self.config.ordered:
            results = []
            held, seq = self.held, self.next_seq
            while seq in held:
                results.append(held.pop(seq))
                seq += 1
            self.next_seq = seq
        self.stats.done += len(results)
        return results

    def _finish_order(self) -> list[ItemResult]:
        """At the end, results held behind items that never ran go out in input order."""
        if not self.held:
            return []
        results = [self.held[seq] for seq in sorted(self.held)]
        self.held.clear()
        self.stats.done += len(results)
        return results

    # ------------------------------------------------------------------ stopping
    def _halt(self) -> None:
        self.stopping = True
        assert self.backend is not None
        self.backend.halt()

    def _stop(self, signum: int, immediate: bool) -> None:
        first = self.stats.stop_signal is None
        if first:
            self.stats.stop_signal = signum
            self._halt()
        if immediate or not first:
            self._kill()
        else:
            assert self.loop is not None
            self.loop.call_later(self.config.grace, self._kill)
        self.wake.set()

    def _kill(self) -> None:
        if self.killed or self.backend is None:
            return
        self.killed = True
        assert self.loop is not None
        task = self.loop.create_task(self.backend.close(kill=True))
        self.background.add(task)  # keep a reference until it is done
        task.add_done_callback(self.background.discard)

    async def _watchdog(self) -> None:
        """The backend's watch over running items: timeouts, and memory (crunch._memory)."""
        from crunch._memory import POLL

        assert self.backend is not None
        timeout, max_memory = self.config.timeout, self.config.max_memory
        tick = min(0.25, timeout / 4 if timeout else 0.25, POLL if max_memory else 0.25)
        while True:
            await asyncio.sleep(tick)
            self.backend.check_timeouts(time.monotonic())


def _goes_alone(entry: _Redo) -> bool:
    return bool(entry.suspicion or entry.alone)


def _outcome_of(chunk: _Chunk, future: asyncio.Future[Outcome | Lost]) -> Outcome | Lost:
    """A chunk future's outcome; a backend that failed it outright loses the chunk instead."""
    try:
        return future.result()
    except UsageError:
        raise  # the workers cannot run the task at all: the run stops with that message
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - any other loss is a rerun
        return Lost(rerun=range(len(chunk.items)), suspect=True)


_RETRYING: Any = object()  # placeholder for a result that went back for another try
