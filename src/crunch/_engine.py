"""The engine: a streaming scheduler that turns every input item into exactly one result.

    Feed --take(n)--> Chunk --submit--> Backend (sync | thread | async | process | dask)
    (lazy input)        ^                   |
                        | reruns, retries   | UnitOutcome | Lost   (per chunk)
                        |                   v
                    RedoQueue <------- Scheduler._absorb
                    (_redo)                 |  whole chunk: one batch, nothing per item
                                            |  else item by item: Digested entries
                                            v
                                    Reorder (_reorder; ordered only)
                                            |
                                            v
                 result batches (Batch | RecordBatch, _batches) --> the caller (records, values)

The parent handles chunks, not items. A feed (``crunch._feed``) cuts the input into *units*
(``crunch._units``): a list of items, a list of file keys, or a line-aligned byte range of a
JSON Lines file that the worker reads itself. Workers open the unit, run the task on each item
and, for the command, encode the records; a chunk that went well comes back as one ``bytes``
(``RecordBatch``) or three lists (``Batch``) and nothing happens per item here. Only failures,
retries and crashes are handled item by item (by *position* in the unit), as ``Digested``
entries gathered into batches again (``crunch._batches``).

One asyncio loop drives it (``Scheduler.results`` is an async generator of result batches).
This module owns the window, dispatch, absorbing outcomes, and stop and kill; the pieces:

- *window* (here): at most ``lanes * window_per_lane`` chunks are in flight, so memory is
  bounded whatever the input size; each chunk's size comes from the measured item cost
  (``crunch._sizing``).
- *absorb* (here): a chunk comes back whole (``UnitOutcome``) or not (``Lost``, see backends).
  Blamed positions become ``crash``, ``memory`` or ``timeout`` records. Every item leaves
  exactly once: as a record, or counted in ``not_run`` when the run is halted
  (``max_failures``) or stopped (a signal) before it started.
- *run again* (``crunch._redo``, ``RedoQueue``): lost positions are re-run (as a subset of
  their unit), suspects of an unexplained worker death alone until one is found to be the
  culprit; failures whose type is in ``retry_on`` go back in after an exponential backoff with
  jitter, until ``retries`` runs out.
- *order* (``crunch._reorder``, ``Reorder``): ``ordered`` holds output by input sequence
  until all earlier output is out, a whole chunk as the one batch it came in, an item digested
  on its own as one entry; a chunk that arrives in turn goes straight out. The window then
  also counts held positions, so one slow item cannot make the buffer grow without bound.
- *watchdog* (here): with a ``timeout`` or ``max_memory``, a periodic tick lets the backend
  abandon or kill items that hang or take their worker past its memory cap.
- *stop and kill* (here): a halt stops dispatch and tells the backend to start nothing more;
  a stop signal halts, then kills the workers after ``grace`` (at once on a second signal).

Nothing here writes output or knows about the command line; ``request_stop`` is the one way in
from another thread (signal handlers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crunch._backends import Backend, Lost, make_backend
from crunch._batches import Batch, Digested, Piece, RecordBatch, in_batches
from crunch._exceptions import CrunchError, RunInterrupted, SourceError, UsageError
from crunch._failures import ItemFailure
from crunch._feed import Feed, JsonlFeed, KeyFn, make_feed
from crunch._redo import Chunk, RedoQueue
from crunch._reorder import Reorder
from crunch._results import ItemResult
from crunch._runner import UnitOutcome, item_positions
from crunch._settings import Settings
from crunch._sizing import ChunkSizer
from crunch._units import Job


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


class Scheduler:
    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        config: Settings,
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
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        # Made as the run starts: the input is read from then on; the backend knows its lanes.
        self.feed: Feed | None = None
        self.sizer: ChunkSizer | None = None
        self.window = 0  # chunks in flight at most
        self.completed: collections.deque[tuple[Chunk, asyncio.Future[Any]]] = collections.deque()
        self.inflight: dict[int, Chunk] = {}
        self.early_done: dict[int, Chunk] = {}  # finished, freed from the window, not absorbed
        self.redo = RedoQueue(config.retries, config.retry_on, config.backoff)
        # Ordered mode: output waiting for earlier output.
        self.reorder: Reorder[Piece] | None = Reorder() if config.ordered else None
        self.chunk_ids = 0
        self.stopping = False  # no new dispatch: halted or stopped
        self.killed = False
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
            for batch in self._finish_order():
                yield batch
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
        assert self.feed is not None
        return self.feed.exhausted and not self.redo

    def _count_unstarted(self) -> None:
        """Items found but never started (halt or stop) are counted, never silently lost."""
        feed = self.feed
        assert feed is not None
        self.stats.not_run += self.redo.drop() + feed.buffered()
        self.stats.found = feed.taken + feed.buffered()
        feed.drop_buffered()

    def _fill(self) -> None:
        """Submit chunks while the window has room and there is work."""
        assert self.feed is not None
        if isinstance(self.feed.error, UsageError) and not self.stopping:
            self._halt()  # the source refused its input (a repeated key): start nothing more
        if self.stopping:
            return
        due = self.redo.release(time.monotonic())
        if due is not None:
            assert self.loop is not None
            self.loop.call_at(due, self.wake.set)
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

    def _on_done(self, chunk: Chunk, future: asyncio.Future[Any]) -> None:
        self.completed.append((chunk, future))
        self.wake.set()

    def _holding_too_much(self) -> bool:
        """Ordered mode: the window also counts held output (one slow item cannot make the
        reorder buffer grow without bound)."""
        if self.reorder is None:
            return False
        assert self.sizer is not None
        return len(self.reorder) > max(4096, 8 * self.window * self.sizer.size(0.0, None))

    def _next_chunk(self) -> Chunk | None:
        self.chunk_ids += 1
        sizer = self.sizer
        assert sizer is not None
        elapsed = time.monotonic() - self.stats.started
        if self.redo.ready:
            return self.redo.take(self.chunk_ids, sizer.size(elapsed, None))
        feed = self.feed
        assert feed is not None
        taken = feed.take(sizer.size(elapsed, feed.remaining()))
        if taken is None:
            self.stats.source_exhausted = feed.exhausted
            return None
        seq0, unit, keys = taken
        self.stats.found = feed.taken + feed.buffered()
        return Chunk(self.chunk_ids, unit, range(seq0, seq0 + len(unit)), keys)

    # ------------------------------------------------------------------ results
    def _absorb(self, chunk: Chunk, outcome: UnitOutcome | Lost) -> list[Batch | RecordBatch]:
        if self.inflight.pop(chunk.id, None) is None:
            del self.early_done[chunk.id]
        if isinstance(outcome, Lost):
            return self._absorb_lost(chunk, outcome)
        not_started = len(chunk.unit) - outcome.done
        if not_started:
            self.stats.not_run += not_started
        items = outcome.items
        if items:
            assert self.sizer is not None
            self.sizer.observe(items, outcome.total)
        if outcome.failures is None and chunk.attempts is None:
            # The common case: every item ok at the first try. The chunk goes out as it came
            # (ordered: once all earlier output is out), and nothing per item happens here.
            self.stats.ok += items
            if self.reorder is not None:
                return self._whole_in_order(chunk, outcome, items, self.reorder)
            self.stats.done += items
            return [self._whole(chunk, outcome)] if items else []
        digested: list[Digested] = []
        self._digest(chunk, outcome, digested)
        return self._emit(digested)

    def _whole_in_order(
        self, chunk: Chunk, outcome: UnitOutcome, items: int, reorder: Reorder[Piece]
    ) -> list[Batch | RecordBatch]:
        """Ordered: a whole chunk goes out, as it came, once all earlier output is out."""
        if not outcome.done:
            return []
        # Positions [0, done) of a chunk fresh from the input: from seqs[0] on, in a row.
        seq = chunk.seqs[0]
        if not items:  # nothing to emit (blank lines), but those positions are done
            return self._out(reorder.put(seq, Digested(seq, None, None), outcome.done))
        whole = self._whole(chunk, outcome)
        out = reorder.put(seq, whole, outcome.done)
        if len(out) == 1:  # it was in turn, and nothing waited behind it
            self.stats.done += items
            return [whole]
        return self._out(out)

    def _whole(self, chunk: Chunk, outcome: UnitOutcome) -> Batch | RecordBatch:
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

    def _digest(self, chunk: Chunk, outcome: UnitOutcome, digested: list[Digested]) -> None:
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
                    digested.append(Digested(seqs[position], lines[index] + b"\n", again))
                else:
                    assert outcome.values is not None
                    assert outcome.seconds is not None
                    result = ItemResult(
                        key, True, outcome.values[index], None, outcome.seconds[index], tries
                    )
                    digested.append(Digested(seqs[position], None, result))
            elif self._should_retry(failure.failure, tries):
                self._retry(chunk, position, tries)
            else:
                result = self._failed(key, failure.failure, failure.seconds, tries)
                line = None if lines is None else lines[index] + b"\n"
                digested.append(Digested(seqs[position], line, result))
        digested.extend(Digested(seqs[position], None, None) for position in outcome.skipped or ())

    def _key(
        self, chunk: Chunk, outcome: UnitOutcome, index: int, position: int, failure: Any
    ) -> Any:
        if chunk.keys is not None:
            return chunk.keys[position]
        if outcome.keys is not None:
            return outcome.keys[index]
        if failure is not None and failure.key is not None:
            return failure.key
        return chunk.unit.key_at(position, self.job)

    def _absorb_lost(self, chunk: Chunk, lost: Lost) -> list[Batch | RecordBatch]:
        digested: list[Digested] = []
        if lost.partial is not None:
            if lost.partial.items:
                assert self.sizer is not None
                self.sizer.observe(lost.partial.items, lost.partial.total)
            self._digest(chunk, lost.partial, digested)
        deaths = [f for f, _ in lost.blamed.values() if f.kind in ("crash", "memory")]
        self.stats.worker_deaths += len(deaths) or lost.suspect
        for position, (failure, seconds) in lost.blamed.items():
            digested.append(self._blame(chunk, position, failure, seconds))
        for position in lost.rerun:
            if self.stopping:
                self.stats.not_run += 1
                continue
            culprit = self.redo.rerun(chunk, position, suspect=lost.suspect, alone=lost.isolate)
            if culprit:  # alone in that many unexplained deaths: it is to blame
                failure = ItemFailure.repeated_crash(culprit, lost.reason)
                digested.append(self._blame(chunk, position, failure, 0.0))
        return self._emit(digested)

    def _blame(self, chunk: Chunk, position: int, failure: ItemFailure, seconds: float) -> Digested:
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
        return Digested(chunk.seqs[position], line, result)

    def _failed(self, key: Any, failure: ItemFailure, seconds: float, tries: int) -> ItemResult:
        self.stats.failed += 1
        max_failures = self.config.max_failures
        if max_failures is not None and self.stats.failed >= max_failures and not self.stopping:
            self.stats.halted = True
            self._halt()
        return ItemResult(key, False, None, failure.public(tries), seconds, tries)

    def _should_retry(self, failure: ItemFailure, tries: int) -> bool:
        return not self.stopping and self.redo.wants_retry(failure, tries)

    def _retry(self, chunk: Chunk, position: int, tries: int) -> None:
        """Back off before the next try of this item (``crunch._redo.backoff_delay``)."""
        due = self.redo.retry(chunk, position, tries, time.monotonic())
        self.stats.retried += 1
        assert self.loop is not None
        self.loop.call_at(due, self.wake.set)

    # ------------------------------------------------------------------ output
    def _emit(self, digested: list[Digested]) -> list[Batch | RecordBatch]:
        """Items digested one by one: out now, or (ordered) once all earlier output is."""
        reorder = self.reorder
        if reorder is None:
            return self._out(digested)
        pieces: list[Piece] = []
        for entry in digested:
            pieces += reorder.put(entry.seq, entry)
        return self._out(pieces)

    def _out(self, pieces: Iterable[Piece]) -> list[Batch | RecordBatch]:
        """Pieces of output, in order, as the batches that go out now (and counted done)."""
        batches = in_batches(pieces, self.records)
        for batch in batches:
            self.stats.done += len(batch)
        return batches

    def _finish_order(self) -> list[Batch | RecordBatch]:
        """At the end, output held behind items that never ran goes out in input order."""
        return [] if self.reorder is None else self._out(self.reorder.drain())

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


def _outcome_of(chunk: Chunk, future: asyncio.Future[Any]) -> UnitOutcome | Lost:
    """A chunk future's outcome; a backend that failed it outright loses the chunk instead."""
    try:
        return future.result()
    except UsageError:
        raise  # the workers cannot run the task at all: the run stops with that message
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - any other loss is a rerun
        return Lost(rerun=range(len(chunk.unit)), suspect=True)
