"""The library's face: ``run``, ``imap`` and ``amap`` over the one scheduler.

The scheduler is asyncio code; it runs on a private event loop in a background thread (the
*engine thread*), so the same engine serves plain code, notebooks that already run a loop, and
async code. Result batches cross to the caller through a queue bounded by credits: when the
caller stops reading, the engine stops dispatching (bounded memory), and when the caller goes
away (``break``, an exception, Ctrl-C) the engine is cancelled and every worker is killed.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import pickle
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crunch._feed import KeyFn
from crunch.exceptions import DuplicateKeyError, SourceError
from crunch.results import BatchResult, ItemResult

if TYPE_CHECKING:
    from crunch.scheduler import Batch

CREDITS = 8  # result batches that may wait for the caller before the engine pauses
# The longest the calling thread blocks at once while it waits for the engine. A signal meant
# for the program can be delivered to any of its threads; Python runs the handler in the main
# thread only, and only once that thread is out of a blocking wait. So the waits are short,
# and a Ctrl-C or SIGTERM is acted on within this much, whatever the engine is doing.
WAKE_EVERY = 0.1


def run(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    key: KeyFn | None = None,
    init: Callable[[], Any] | None = None,
    **options: Any,
) -> BatchResult:
    """Run ``fn`` over ``items`` and collect every result into a ``BatchResult``.

    ``options`` are the fields of ``crunch.RunConfig`` (``workers``, ``mode``, ``chunk_size``,
    ``timeout``, ``retries``, ``retry_on``, ``max_failures``, ``ordered``, ``progress``...).
    Failures never raise; call ``raise_for_failures()`` on the result for that.

    The result maps each key to one item, so keys must be unique: the first key met again
    stops the run and raises ``DuplicateKeyError`` (``imap`` yields every result instead).
    When ``items`` itself raises, ``SourceError`` is raised once every item it produced has
    its result, with those results as ``exc.partial``.
    """
    stream = _Stream(fn, items, key=key, init=init, options=options)
    batch = BatchResult()
    try:
        _collect(stream, batch)
    except (SourceError, DuplicateKeyError) as exc:
        exc.partial = _totals(batch, stream)
        raise
    finally:
        stream.close()
    return _totals(batch, stream)


def _collect(stream: _Stream, batch: BatchResult) -> None:
    succeeded, failed = batch.succeeded, batch.failed
    for results in stream.batches():
        keys = results.keys
        if keys:
            if not succeeded.keys().isdisjoint(keys) or (
                failed and not failed.keys().isdisjoint(keys)
            ):
                _add_one_by_one(batch, results.ok_pairs())
            before = len(succeeded)
            succeeded.update(results.ok_pairs())
            if len(succeeded) - before != len(keys):  # a key twice in this batch
                for k in keys:
                    succeeded.pop(k, None)
                _add_one_by_one(batch, results.ok_pairs())
        for result in results.others:
            if result.key in succeeded or result.key in failed:
                raise _duplicate(result.key)
            if result.error is None:
                succeeded[result.key] = result.value
            else:
                failed[result.key] = result.error


def _add_one_by_one(batch: BatchResult, pairs: Iterable[tuple[Any, Any]]) -> None:
    """Add ok results until the repeated key, then raise (the slow path, taken once)."""
    for k, value in pairs:
        if k in batch.succeeded or k in batch.failed:
            raise _duplicate(k)
        batch.succeeded[k] = value


def _duplicate(key: Any) -> DuplicateKeyError:
    return DuplicateKeyError(
        f"two items have the key {key!r}: crunch.run maps each key to one result, so keys "
        "must be unique (give key= a function that returns one key per item, or use "
        "crunch.imap, which yields every result)",
        key=key,
    )


def _totals(batch: BatchResult, stream: _Stream) -> BatchResult:
    batch.not_run = stream.stats.not_run
    batch.seconds = max(0.0, (stream.stats.ended or stream.stats.started) - stream.stats.started)
    return batch


def imap(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    key: KeyFn | None = None,
    init: Callable[[], Any] | None = None,
    **options: Any,
) -> Iterator[ItemResult]:
    """Stream one ``ItemResult`` per item as they finish (``ordered=True``: in input order).

    Memory stays bounded however many items there are: input is read only as fast as results
    are consumed. Options are validated, and ``fn`` checked, before this returns.
    """
    return _iterate(_Stream(fn, items, key=key, init=init, options=options))


def _iterate(stream: _Stream) -> Iterator[ItemResult]:
    # A generator over C-level chaining: the per-item cost of iterating stays in nanoseconds.
    try:
        yield from itertools.chain.from_iterable(stream.batches())
    finally:
        stream.close()


def amap(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    key: KeyFn | None = None,
    init: Callable[[], Any] | None = None,
    **options: Any,
) -> AsyncIterator[ItemResult]:
    """``imap`` for async code: ``async for result in crunch.amap(fn, items): ...``.

    Leaving the loop early stops the run when the stream is dropped; ``async with
    crunch.amap(...) as results:`` (or ``contextlib.aclosing``) stops it when the block ends,
    its workers gone.

    ``async def`` tasks (mode ``async``) run on crunch's own event loop in a background thread,
    not on the caller's loop: they must not use objects bound to the caller's loop.
    """
    return _AsyncStream(fn, items, key=key, init=init, options=options)


# ---------------------------------------------------------------------------- validation
def prepare(fn: Callable[[Any], Any], options: dict[str, Any]) -> Any:
    """Validate options and the task for the mode; raise before any item runs."""
    from crunch.config import RunConfig

    config = RunConfig.build(**options)
    check_task(fn, config.mode)
    return config


def check_task(fn: Callable[[Any], Any], mode: str) -> None:
    """Refuse at once a task the chosen mode cannot run (README, "The library")."""
    from crunch._runner import is_async_task
    from crunch.exceptions import TaskNotImportableError, UsageError

    if not callable(fn):
        raise UsageError(f"the task must be callable, got {type(fn).__name__}")
    if is_async_task(fn) and mode != "async":
        raise UsageError(f"{_name(fn)} is an async def function: run it with mode='async'")
    if mode not in ("process", "dask"):
        return
    name = _name(fn)
    why = None
    if "<lambda>" in name:
        why = "it is a lambda"
    elif "<locals>" in name:
        why = "it is defined inside another function"
    else:
        try:
            pickle.dumps(fn, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any reason pickling fails is the reason
            why = f"it cannot be pickled ({exc})"
    module = getattr(fn, "__module__", None)
    if (
        why is None
        and module == "__main__"
        and not getattr(sys.modules["__main__"], "__file__", None)
    ):
        why = "it is defined in an interactive session (__main__ has no file to import)"
    if why is not None:
        raise TaskNotImportableError(
            f"{name} cannot run in {mode} mode: {why}. Workers are separate processes that "
            "import the task by its module and name, so define it with `def` at the top "
            "level of a module (or use mode='thread' for a function that cannot be imported)."
        )


def _name(fn: Callable[..., Any]) -> str:
    inner = getattr(fn, "func", fn)
    return getattr(inner, "__qualname__", None) or repr(inner)


# ---------------------------------------------------------------------------- engine thread
_END: Any = object()


class _Engine:
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


class _Stream(Iterator[ItemResult]):
    """The iterator ``imap`` returns; ``run`` drains it."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        key: KeyFn | None,
        init: Callable[[], Any] | None,
        options: dict[str, Any] | None = None,
        config: Any = None,
        keyed: bool = False,
        progress: Any = None,
        records: bool = False,
    ) -> None:
        from crunch.scheduler import Scheduler

        if config is None:
            config = prepare(fn, options or {})
        self.scheduler = Scheduler(
            fn,
            items,
            config,
            keyed=keyed,
            key=key,
            init=init,
            records=records,
        )
        self.stats = self.scheduler.stats
        self.progress = progress if progress is not None else _progress(config, items, self.stats)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.engine: _Engine | None = None
        self.batch: Iterator[ItemResult] = iter(())
        self.finished = False

    def __iter__(self) -> _Stream:
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
            self.engine = _Engine(self.scheduler, self.queue.put)
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
        if hasattr(self, "finished"):  # __init__ may have refused the run
            self.close()


class _AsyncStream(AsyncIterator[ItemResult]):
    """The async iterator ``amap`` returns."""

    def __init__(self, fn: Any, items: Any, *, key: Any, init: Any, options: Any) -> None:
        from crunch.scheduler import Scheduler

        config = prepare(fn, options)
        self.scheduler = Scheduler(fn, items, config, key=key, init=init)
        self.stats = self.scheduler.stats
        self.engine: _Engine | None = None
        self.queue: asyncio.Queue[Any] | None = None
        self.batch: Iterator[ItemResult] = iter(())
        self.finished = False

    def __aiter__(self) -> _AsyncStream:
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
                self.engine = await asyncio.to_thread(_Engine, self.scheduler, deliver)
            assert self.queue is not None
            try:
                got = await self.queue.get()
            except BaseException:
                await self.aclose()
                raise
            if got is _END or isinstance(got, _Failed):
                self.finished = True
                await asyncio.to_thread(self.engine.thread.join)
                if isinstance(got, _Failed):
                    raise got.exc
                raise StopAsyncIteration
            self.engine.credit()
            self.batch = iter(got)
            for result in self.batch:
                return result

    async def aclose(self) -> None:
        """Stop early: cancel the engine, kill its workers, and wait until they are gone."""
        if not self.finished:
            self.finished = True
            if self.engine is not None:
                await asyncio.to_thread(self.engine.cancel)

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # `break` out of `async for` does not close an async iterator. When the stream is
        # dropped (at once, in CPython) the run stops all the same; this cannot wait in the
        # caller's event loop, so the workers go a moment later, in the engine's thread.
        engine = getattr(self, "engine", None)  # __init__ may have refused the run
        if engine is not None and not self.finished:
            self.finished = True
            engine.cancel(wait=False)


def _progress(config: Any, items: Iterable[Any], stats: Any) -> Any:
    if not config.progress:
        return None
    from crunch.sinks import Progress

    total = len(items) if isinstance(items, (list, tuple, range)) else None
    return Progress(stats, total=total)
