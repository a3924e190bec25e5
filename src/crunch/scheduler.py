"""The engine: a streaming scheduler that turns every input item into exactly one result.

    Feed (lazy input) --take--> units --submit--> Backend (sync|thread|async|process|dask)
       ^                          ^                    |
       | cut on demand            | reruns, retries    | UnitOutcome | Lost  (per unit)
       |                          |                    v
       +------------------- Scheduler._absorb ----> result batches --> the caller's sinks

The parent handles chunks, not items. A feed cuts the input into *units* (``crunch._units``):
a list of items, a list of file keys, or a line-aligned byte range of a JSON Lines file that
the worker reads itself. Workers open the unit, run the task on each item and, for the command,
encode the records; a chunk that went well comes back as one ``bytes`` (``RecordBatch``) or
three lists (``Batch``) and nothing happens per item here. Only failures, retries, crashes and
``ordered`` output are handled item by item (by *position* in the unit).

One asyncio loop drives it (``Scheduler.results`` is an async generator of result batches):

- *window*: at most ``lanes * window_per_lane`` chunks are in flight, so memory is bounded
  whatever the input size; each chunk's size comes from the measured item cost (_sizing).
- *supervisor*: a chunk comes back whole (``UnitOutcome``) or not (``Lost``, see backends).
  Lost positions are re-run (as a subset of their unit), blamed ones become ``crash`` or
  ``timeout`` records; failures whose type is in ``retry_on`` go back in, after an exponential
  backoff with jitter, until ``retries`` runs out. Every item leaves exactly once: as a record,
  or counted in ``not_run`` when the run is halted (``max_failures``) or stopped (a signal)
  before it started.
- *watchdog*: with a ``timeout`` or ``max_memory``, a periodic tick lets the backend abandon
  or kill items that hang or take their worker past its memory cap.
- *order*: ``ordered`` holds finished results by input sequence until all earlier ones are
  out; the window then also counts held results, so one slow item cannot make the buffer grow
  without bound. A chunk that arrives in turn goes straight out.

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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from crunch._failures import ItemFailure
from crunch._feed import JsonlFeed, KeyFn, make_feed
from crunch._retry import retryable
from crunch._runner import UnitOutcome, item_positions
from crunch._sizing import ChunkSizer
from crunch._units import Job
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


class RecordBatch:
    """The JSON Lines records of finished items, encoded by the workers, as one ``bytes``.

    ``ok`` counts the ok records in ``blob`` (``retried`` of them took more than one attempt);
    ``failures`` are the failed items' results (their records are in ``blob`` too), for the
    summary, the logs and the progress bar.
    """

    __slots__ = ("blob", "failures", "ok", "retried")

    def __init__(
        self, blob: bytes, ok: int, failures: Sequence[ItemResult] = (), retried: int = 0
    ) -> None:
        self.blob = blob
        self.ok = ok
        self.failures = failures
        self.retried = retried

    def __len__(self) -> int:
        return self.ok + len(self.failures)

    @property
    def failed(self) -> int:
        return len(self.failures)


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
    lanes: int = 0  # the most workers (processes, threads, dask threads) that had work at once
    source_exhausted: bool = False
    halted: bool = False  # max_failures reached
    stop_signal: int | None = None
    started: float = 0.0
    ended: float = 0.0


class _Chunk:
    """A unit in flight, and what the parent knows of its positions.

    ``seqs`` gives each position's place in the input (for ``ordered``); ``keys`` the keys
    the parent holds (None when the unit knows its own); ``attempts`` and ``suspicion`` are set
    for reruns and retries, one entry per position.
    """

    __slots__ = ("attempts", "id", "keys", "seqs", "suspicion", "unit")

    def __init__(
        self,
        chunk_id: int,
        unit: Any,
        seqs: Sequence[int],
        keys: Sequence[Any] | None,
        attempts: list[int] | None = None,
        suspicion: list[int] | None = None,
    ) -> None:
        self.id = chunk_id
        self.unit = unit
        self.seqs = seqs
        self.keys = keys
        self.attempts = attempts
        self.suspicion = suspicion

    def tries(self, position: int) -> int:
        return self.attempts[position] if self.attempts else 1


class _Redo:
    """One position of an earlier chunk waiting to run again."""

    __slots__ = ("alone", "attempts", "chunk", "position", "suspicion")

    def __init__(
        self, chunk: _Chunk, position: int, attempts: int, suspicion: int, alone: bool = False
    ) -> None:
        self.chunk = chunk
        self.position = position
        self.attempts = attempts
        self.suspicion = suspicion  # unexplained worker deaths it was in flight for
        self.alone = alone  # runs in a chunk of its own (see Lost.isolate)


# A held result of ordered mode: (record line or None, result or None); (None, None) is a
# position with nothing to emit (a blank line, an item already done).
_Held = tuple[bytes | None, ItemResult | None]
_NOTHING: _Held = (None, None)


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
        records: bool = False,
    ) -> None:
        self.config = config
        self.fn = fn
        self.items = items
        self.keyed = keyed
        self.key = key
        self.init = init
        self.backend = backend
        # Records are encoded by the workers (the command); else values come back (library).
        self.records = records
        self.job = Job(
            fn,
            records=records,
            key_field=getattr(items, "key_field", None),
            skip=getattr(items, "skip", None),
        )
        self.stats = RunStats()
        self.retry_on = frozenset(config.retry_on)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        self.completed: collections.deque[tuple[_Chunk, asyncio.Future[Any]]] = collections.deque()
        self.inflight: dict[int, _Chunk] = {}
        self.early_done: dict[int, _Chunk] = {}  # finished, freed from the window, not absorbed
        self.redo: collections.deque[_Redo] = collections.deque()
        # (ready at, seq, tie-breaker, the redo entry)
        self.retry_heap: list[tuple[float, int, int, _Redo]] = []
        self.retry_ids = itertools.count()
        self.held: dict[int, _Held] = {}  # ordered mode: finished, waiting for earlier
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

    async def results(self) -> AsyncIterator[Batch | RecordBatch]:
        """Run everything; yield result batches as chunks finish (in input order if asked)."""
        config = self.config
        feed = make_feed(
            self.items,
            keyed=self.keyed,
            key=self.key,
            wake=self._wake_threadsafe,
            records=self.records,
        )
        self.feed = feed
        if self.backend is None:
            self.backend = make_backend(
                config.mode,
                self.job,
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
        sized = feed.remaining()
        if sized is not None:
            self.stats.found = sized
        self.stats.started = time.monotonic()
        watched = config.timeout or config.max_memory
        watchdog = self.loop.create_task(self._watchdog()) if watched else None
        clean = False
        try:
            await backend.start()
            # After start: a backend may learn its lanes then (the workers of a dask cluster).
            self.sizer = ChunkSizer(fixed, backend.lanes, backend.min_chunk_seconds)
            self.window = backend.lanes * backend.window_per_lane
            if self.job.key_field is not None and isinstance(feed, JsonlFeed):
                await self._refuse_repeated_keys(feed.path)
            while True:
                self._fill()
                if not self.inflight and self._nothing_left():
                    break
                await self.wake.wait()
                self.wake.clear()
                self._refill_early()
                while self.completed:
                    chunk, future = self.completed.popleft()
                    for batch in self._absorb(chunk, _outcome_of(chunk, future)):
                        yield batch
            tail = self._finish_order()
            if tail is not None:
                yield tail
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

    async def _refuse_repeated_keys(self, path: str) -> None:
        """``--key`` over a file the workers read: each key names one item, or nothing runs.
        The workers fingerprint the keys of the file's line ranges first (crunch._keycheck)."""
        from crunch._keycheck import SCAN_LINES, refuse_repeated_keys

        assert self.backend is not None
        assert self.job.key_field is not None
        backend = self.backend
        ranges = JsonlFeed(path)  # a reading of its own: the run's feed has not started

        def units() -> Iterator[Any]:
            while (taken := ranges.take(SCAN_LINES)) is not None:
                yield taken[1]

        def submit(unit: Any) -> asyncio.Future[UnitOutcome | Lost]:
            self.chunk_ids += 1
            return backend.submit(self.chunk_ids, unit, None)

        try:
            items, refused = await refuse_repeated_keys(
                units(),
                submit,
                self.window,
                path=path,
                field=self.job.key_field,
                job=self.job,
                stopping=lambda: self.stopping,
            )
        finally:
            ranges.close()
        if refused is not None:
            self.stats.found = self.stats.not_run = items
            raise refused

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
        self.feed.drop_buffered()

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
            if len(self.inflight) > self.stats.lanes < self.backend.lanes:
                self.stats.lanes = min(self.backend.lanes, len(self.inflight))
            future = self.backend.submit(chunk.id, chunk.unit, chunk.attempts)
            future.add_done_callback(functools.partial(self._on_done, chunk))

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

    def _on_done(self, chunk: _Chunk, future: asyncio.Future[Any]) -> None:
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
        seq0, unit, keys = taken
        self.stats.found = feed.taken + feed.buffered()
        return _Chunk(self.chunk_ids, unit, range(seq0, seq0 + len(unit)), keys)

    def _redo_chunk(self, chunk_id: int) -> _Chunk:
        """Positions to run again, of one earlier unit. A suspect goes alone, so the next death
        names it."""
        first = self.redo.popleft()
        batch = [first]
        if not (first.suspicion or first.alone):
            limit = self.sizer.size(time.monotonic() - self.stats.started, None)
            while (
                self.redo
                and len(batch) < limit
                and not self.redo[0].suspicion
                and not self.redo[0].alone
                and self.redo[0].chunk is first.chunk
            ):
                batch.append(self.redo.popleft())
        source = first.chunk
        positions = [r.position for r in batch]
        keys = source.keys
        return _Chunk(
            chunk_id,
            source.unit.subset(positions),
            [source.seqs[p] for p in positions],
            None if keys is None else [keys[p] for p in positions],
            [r.attempts for r in batch],
            [r.suspicion for r in batch],
        )

    def _release_retries(self) -> None:
        now = time.monotonic()
        heap = self.retry_heap
        while heap and heap[0][0] <= now:
            self.redo.append(heapq.heappop(heap)[3])
        if heap and heap[0][0] != self.retry_timer_at:
            assert self.loop is not None
            self.retry_timer_at = heap[0][0]
            self.loop.call_at(heap[0][0], self.wake.set)

    # ------------------------------------------------------------------ results
    def _absorb(self, chunk: _Chunk, outcome: UnitOutcome | Lost) -> list[Any]:
        if self.inflight.pop(chunk.id, None) is None:
            del self.early_done[chunk.id]
        if isinstance(outcome, Lost):
            return self._absorb_lost(chunk, outcome)
        not_started = len(chunk.unit) - outcome.done
        if not_started:
            self.stats.not_run += not_started
        items = outcome.items
        if items:
            self.sizer.observe(items, outcome.total)
        ordered = self.config.ordered
        seqs = chunk.seqs
        if (
            outcome.failures is None
            and chunk.attempts is None
            and (not ordered or (type(seqs) is range and seqs.start == self.next_seq))
        ):
            # The common case: every item ok at the first try (and, ordered, in turn): the
            # chunk goes out as it came, and nothing per item happens here.
            self.stats.ok += items
            self.stats.done += items
            batches = [self._whole(chunk, outcome)] if items else []
            if ordered:
                self.next_seq += outcome.done
                tail = self._emit_held()
                if tail is not None:
                    batches.append(tail)
            return batches
        held: list[tuple[int, _Held]] = []
        self._digest(chunk, outcome, held)
        return self._emit(held)

    def _whole(self, chunk: _Chunk, outcome: UnitOutcome) -> Batch | RecordBatch:
        if outcome.blob is not None:
            return RecordBatch(outcome.blob, outcome.items)
        keys = outcome.keys
        if keys is None:
            assert chunk.keys is not None
            keys = (
                chunk.keys[: outcome.done]
                if outcome.skipped is None
                else [chunk.keys[p] for p in item_positions(outcome)]
            )
        assert outcome.values is not None
        assert outcome.seconds is not None
        return Batch(keys, outcome.values, outcome.seconds)

    def _digest(self, chunk: _Chunk, outcome: UnitOutcome, held: list[tuple[int, _Held]]) -> None:
        """Item by item: ok, failed for good, or back for another try."""
        failures = outcome.failures or {}
        positions = item_positions(outcome)
        seqs = chunk.seqs
        lines = outcome.blob.split(b"\n") if outcome.blob is not None else None
        for index, position in enumerate(positions):
            tries = chunk.tries(position)
            failure = failures.get(position)
            key = self._key(chunk, outcome, index, position, failure)
            if failure is None:
                self.stats.ok += 1
                if lines is not None:
                    again = None if tries == 1 else ItemResult(key, True, None, None, 0.0, tries)
                    held.append((seqs[position], (lines[index] + b"\n", again)))
                else:
                    assert outcome.values is not None
                    assert outcome.seconds is not None
                    result = ItemResult(
                        key, True, outcome.values[index], None, outcome.seconds[index], tries
                    )
                    held.append((seqs[position], (None, result)))
            elif self._should_retry(failure.failure, tries):
                self._retry(chunk, position, tries)
            else:
                result = self._failed(key, failure.failure, failure.seconds, tries)
                line = None if lines is None else lines[index] + b"\n"
                held.append((seqs[position], (line, result)))
        held.extend((seqs[position], _NOTHING) for position in outcome.skipped or ())

    def _key(
        self, chunk: _Chunk, outcome: UnitOutcome, index: int, position: int, failure: Any
    ) -> Any:
        if chunk.keys is not None:
            return chunk.keys[position]
        if outcome.keys is not None:
            return outcome.keys[index]
        if failure is not None and failure.key is not None:
            return failure.key
        return chunk.unit.key_at(position, self.job)

    def _absorb_lost(self, chunk: _Chunk, lost: Lost) -> list[Any]:
        held: list[tuple[int, _Held]] = []
        if lost.partial is not None:
            if lost.partial.items:
                self.sizer.observe(lost.partial.items, lost.partial.total)
            self._digest(chunk, lost.partial, held)
        deaths = [f for f, _ in lost.blamed.values() if f.kind in ("crash", "memory")]
        self.stats.worker_deaths += len(deaths) or lost.suspect
        for position, (failure, seconds) in lost.blamed.items():
            held.append(self._blame(chunk, position, failure, seconds))
        for position in lost.rerun:
            if self.stopping:
                self.stats.not_run += 1
                continue
            tries = chunk.tries(position)
            suspicion = (chunk.suspicion[position] if chunk.suspicion else 0) + lost.suspect
            if lost.suspect and len(chunk.unit) == 1 and suspicion >= SUSPECT_LIMIT:
                failure = ItemFailure.repeated_crash(suspicion, lost.reason)
                held.append(self._blame(chunk, position, failure, 0.0))
                continue
            self.redo.append(_Redo(chunk, position, tries, suspicion, lost.isolate))
        return self._emit(held)

    def _blame(
        self, chunk: _Chunk, position: int, failure: ItemFailure, seconds: float
    ) -> tuple[int, _Held]:
        """The record of a position whose worker could not report it (crash, hard timeout)."""
        tries = chunk.tries(position)
        key = (
            chunk.keys[position]
            if chunk.keys is not None
            else chunk.unit.key_at(position, self.job)
        )
        result = self._failed(key, failure, seconds, tries)
        line = None
        if self.records:
            from crunch._output import encode_result

            line = encode_result(result)
        return chunk.seqs[position], (line, result)

    def _failed(self, key: Any, failure: ItemFailure, seconds: float, tries: int) -> ItemResult:
        self.stats.failed += 1
        max_failures = self.config.max_failures
        if max_failures is not None and self.stats.failed >= max_failures and not self.stopping:
            self.stats.halted = True
            self._halt()
        return ItemResult(key, False, None, failure.public(tries), seconds, tries)

    def _should_retry(self, failure: ItemFailure, tries: int) -> bool:
        return (
            failure.kind == "error"
            and tries <= self.config.retries
            and not self.stopping
            and retryable(failure.names, self.retry_on)
        )

    def _retry(self, chunk: _Chunk, position: int, tries: int) -> None:
        """Back off exponentially, with full jitter, before the next try of this item."""
        delay = min(MAX_BACKOFF, self.config.backoff * 2 ** (tries - 1))
        delay *= random.uniform(0.5, 1.5)
        ready = time.monotonic() + delay
        entry = _Redo(chunk, position, tries + 1, 0)
        heapq.heappush(self.retry_heap, (ready, chunk.seqs[position], next(self.retry_ids), entry))
        self.stats.retried += 1
        assert self.loop is not None
        self.loop.call_at(ready, self.wake.set)

    # ------------------------------------------------------------------ output
    def _emit(self, held: list[tuple[int, _Held]]) -> list[Any]:
        """Results digested item by item: out now, or (ordered) once all earlier ones are."""
        if self.config.ordered:
            self.held.update(held)
            batch = self._emit_held()
            return [] if batch is None else [batch]
        if not held:
            return []
        batch = self._batch(entry for _seq, entry in held)
        return [] if batch is None else [batch]

    def _emit_held(self) -> Batch | RecordBatch | None:
        held, seq = self.held, self.next_seq
        if seq not in held:
            return None
        entries = []
        while seq in held:
            entries.append(held.pop(seq))
            seq += 1
        self.next_seq = seq
        return self._batch(entries)

    def _batch(self, entries: Iterable[_Held]) -> Batch | RecordBatch | None:
        lines: list[bytes] = []
        results: list[ItemResult] = []
        failures: list[ItemResult] = []
        ok = retried = 0
        for line, result in entries:
            if line is not None:
                lines.append(line)
                if result is None:
                    ok += 1
                elif result.ok:  # took more than one attempt
                    ok += 1
                    retried += 1
                else:
                    failures.append(result)
            elif result is not None:
                results.append(result)
        count = len(lines) + len(results)
        self.stats.done += count
        if not count:
            return None
        if self.records:
            return RecordBatch(b"".join(lines), ok, failures, retried)
        return Batch(others=results)

    def _finish_order(self) -> Batch | RecordBatch | None:
        """At the end, results held behind items that never ran go out in input order."""
        if not self.held:
            return None
        entries = [self.held[seq] for seq in sorted(self.held)]
        self.held.clear()
        return self._batch(entries)

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


def _outcome_of(chunk: _Chunk, future: asyncio.Future[Any]) -> UnitOutcome | Lost:
    """A chunk future's outcome; a backend that failed it outright loses the chunk instead."""
    try:
        return future.result()
    except UsageError:
        raise  # the workers cannot run the task at all: the run stops with that message
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - any other loss is a rerun
        return Lost(rerun=range(len(chunk.unit)), suspect=True)
