"""The engine thread, and the streams of results over it: the one way a run is driven, by the
library (``crunch.run``, ``imap``, ``amap``, see ``crunch._api``) and by the command alike.

The scheduler is asyncio code; it runs on a private event loop in a background thread (the
*engine thread*), so the same engine serves plain code, notebooks that already run a loop, and
async code. Result batches cross to the caller through a queue bounded by credits: when the
caller stops reading, the engine stops dispatching (bounded memory), and when the caller goes
away (``break``, an exception, Ctrl-C) the engine is cancelled and every worker is killed.

    open_stream(fn, items, settings, ...) -> Stream         iterate results, or .batches()
    open_async_stream(fn, items, settings, ...) -> AsyncStream

``settings`` are validated already (``crunch._api.prepare``, or the command's checks). A
``Stream`` owns the run's progress bar: whether there is one is decided once, when it opens
(``crunch._progress.open_progress``), and the stream updates and closes it.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crunch._feed import KeyFn
from crunch._results import ItemResult

if TYPE_CHECKING:
    from crunch._batches import Batch

CREDITS = 8  # result batches that may wait for the caller before the engine pauses
# The longest the calling thread blocks at once while it waits for the engine. A signal meant
# for the program can be delivered to any of its threads; Python runs the handler in the main
# thread only, and only once that thread is out of a blocking wait. So the waits are short,
# and a Ctrl-C or SIGTERM is acted on within this much, whatever the engine is doing.
WAKE_EVERY = 0.1


def open_stream(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    settings: Any,
    *,
    key: KeyFn | None = None,
    init: Callable[[], Any] | None = None,
    keyed: bool = False,
    records: bool = False,
    progress: bool | None = False,
) -> Stream:
    """A run of ``fn`` over ``items``, not started yet (the first read starts it).

    ``keyed``: the items come as ``(key, item)`` pairs (the command's sources). ``records``:
    the workers encode each chunk's record lines (``RecordBatch``, for the command's writer).
    ``progress``: show a progress bar (True), none (False), or one when standard error is a
    terminal (None, the command's default); see ``crunch._progress.open_progress``.
    """
    from crunch._engine import Scheduler
    from crunch._progress import open_progress

    scheduler = Scheduler(fn, items, settings, keyed=keyed, key=key, init=init, records=records)
    return Stream(scheduler, open_progress(scheduler.stats, show=progress, items=items))


def open_async_stream(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    settings: Any,
    *,
    key: KeyFn | None = None,
    init: Callable[[], Any] | None = None,
    progress: bool | None = False,
) -> AsyncStream:
    """``open_stream`` for async code (``crunch.amap``), with the same progress bar."""
    from crunch._engine import Scheduler
    from crunch._progress import open_progress

    scheduler = Scheduler(fn, items, settings, key=key, init=init)
    return AsyncStream(scheduler, open_progress(scheduler.stats, show=progress, items=items))


_END: Any = object()


class Engine:
    """Runs a scheduler on a private loop in a daemon thread; delivers batches via callback."""

    def __init__(self, scheduler: Any, deliver: Callable[[Any], object]) -> None:
        self.scheduler = scheduler
        self.deliver = deliver
        self.loop = asyncio.new_event_loop()
        self.credits: asyncio.Semaphore | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._main, name="crunch-engine", daemon=True)
        self.thread.start()
        while not self.started.wait(WAKE_EVERY):
            pass

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            self.credits = asyncio.Semaphore(CREDITS)
            self.task = loop.create_task(self._pump())
            self.started.set()
            loop.run_until_complete(self.task)
        except BaseException:  # noqa: BLE001 - the pump delivered the error already
            pass
        finally:
            self.started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                # Not asyncio.run(): it would wait for the default executor, where an
                # abandoned (hung) thread of async mode may never return.
                loop.close()

    async def _pump(self) -> None:
        assert self.credits is not None
        try:
            async for batch in self.scheduler.results():
                await self.credits.acquire()
                self.deliver(batch)
        except BaseException as exc:
            self.deliver(_Failed(exc))
            raise
        self.deliver(_END)

    def credit(self) -> None:
        if self.credits is not None:
            with _suppress_closed():
                self.loop.call_soon_threadsafe(self.credits.release)

    def cancel(self, *, wait: bool = True) -> None:
        """The caller went away: stop now, kill the workers, wait for the engine to finish."""
        if self.task is not None:
            with _suppress_closed():
                self.loop.call_soon_threadsafe(self.task.cancel)
        if wait:
            join(self.thread, 30)


def _get(results: queue.SimpleQueue[Any]) -> Any:
    while True:
        try:
            return results.get(timeout=WAKE_EVERY)
        except queue.Empty:
            continue


def join(thread: threading.Thread, timeout: float | None = None) -> None:
    """``thread.join(timeout)``, in short waits (see ``WAKE_EVERY``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
        thread.join(WAKE_EVERY)


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _suppress_closed:  # noqa: N801 - used as a tiny context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], RuntimeError)  # the loop already closed: nothing to do


class Stream(Iterator[ItemResult]):
    """The results of a run, one at a time (``crunch.imap``) or a batch at a time
    (``batches()``: ``crunch.run`` and the command); ``close()`` stops the run early."""

    def __init__(self, scheduler: Any, progress: Any = None) -> None:
        self.scheduler = scheduler
        self.stats = scheduler.stats
        self.progress = progress  # the bar, or None; this stream updates and closes it
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.engine: Engine | None = None
        self.batch: Iterator[ItemResult] = iter(())
        self.finished = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> ItemResult:
        for result in self.batch:
            return result
        while True:
            self.batch = iter(self.next_batch())
            for result in self.batch:
                return result

    def batches(self) -> Iterator[Batch]:
        """The results as the engine delivers them, a batch at a time (the CLI's pace)."""
        while True:
            try:
                yield self.next_batch()
            except StopIteration:
                return

    def next_batch(self) -> Batch:
        if self.finished:
            raise StopIteration
        if self.engine is None:
            self.engine = Engine(self.scheduler, self.queue.put)
        try:
            got = _get(self.queue)
        except BaseException:
            self.close()
            raise
        if got is _END or isinstance(got, _Failed):
            self._end()
            if isinstance(got, _Failed):
                raise got.exc
            raise StopIteration
        self.engine.credit()
        if self.progress is not None:
            self.progress.update(len(got), got.failed)
        return got

    def _end(self) -> None:
        self.finished = True
        if self.engine is not None:
            join(self.engine.thread)
        if self.progress is not None:
            self.progress.close()

    def close(self) -> None:
        """Stop early: cancel the engine and kill its workers."""
        if not self.finished:
            self.finished = True
            if self.engine is not None:
                self.engine.cancel()
            if self.progress is not None:
                self.progress.close()

    def __del__(self) -> None:
        if hasattr(self, "finished"):  # __init__ may not have finished
            self.close()


class AsyncStream(AsyncIterator[ItemResult]):
    """The async iterator ``amap`` returns."""

    def __init__(self, scheduler: Any, progress: Any = None) -> None:
        self.scheduler = scheduler
        self.stats = self.scheduler.stats
        self.progress = progress  # the bar, or None; this stream updates and closes it
        self.engine: Engine | None = None
        self.queue: asyncio.Queue[Any] | None = None
        self.batch: Iterator[ItemResult] = iter(())
        self.finished = False

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ItemResult:
        for result in self.batch:
            return result
        while True:
            if self.finished:
                raise StopAsyncIteration
            if self.engine is None:
                loop = asyncio.get_running_loop()
                self.queue = asyncio.Queue()
                deliver = functools.partial(loop.call_soon_threadsafe, self.queue.put_nowait)
                self.engine = await asyncio.to_thread(Engine, self.scheduler, deliver)
            assert self.queue is not None
            try:
                got = await self.queue.get()
            except BaseException:
                await self.aclose()
                raise
            if got is _END or isinstance(got, _Failed):
                self.finished = True
                await asyncio.to_thread(self.engine.thread.join)
                self._close_progress()
                if isinstance(got, _Failed):
                    raise got.exc
                raise StopAsyncIteration
            self.engine.credit()
            if self.progress is not None:
                self.progress.update(len(got), got.failed)
            self.batch = iter(got)
            for result in self.batch:
                return result

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    async def aclose(self) -> None:
        """Stop early: cancel the engine, kill its workers, and wait until they are gone."""
        if not self.finished:
            self.finished = True
            if self.engine is not None:
                await asyncio.to_thread(self.engine.cancel)
        self._close_progress()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # `break` out of `async for` does not close an async iterator. When the stream is
        # dropped (at once, in CPython) the run stops all the same; this cannot wait in the
        # caller's event loop, so the workers go a moment later, in the engine's thread.
        engine = getattr(self, "engine", None)  # __init__ may not have finished
        if engine is not None and not self.finished:
            self.finished = True
            engine.cancel(wait=False)
