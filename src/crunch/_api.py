"""The library's face: ``run``, ``imap`` and ``amap`` over the one scheduler.

Each validates its options and the task (``prepare``: before any item runs, and before the call
returns), then reads a stream of results from the engine thread (``crunch._stream``, which the
command reads too): ``run`` collects them into a ``BatchResult``, ``imap`` yields them,
``amap`` yields them to async code.
"""

from __future__ import annotations

import itertools
import pickle
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crunch._exceptions import DuplicateKeyError, SourceError
from crunch._feed import KeyFn
from crunch._results import BatchResult, ItemResult

if TYPE_CHECKING:
    from crunch._settings import Settings
    from crunch._stream import Stream


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
    stream = _open(fn, items, key, init, options)
    batch = BatchResult()
    try:
        _collect(stream, batch)
    except (SourceError, DuplicateKeyError) as exc:
        exc.partial = _totals(batch, stream)
        raise
    finally:
        stream.close()
    return _totals(batch, stream)


def _collect(stream: Stream, batch: BatchResult) -> None:
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


def _totals(batch: BatchResult, stream: Stream) -> BatchResult:
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
    return _iterate(_open(fn, items, key, init, options))


def _open(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    key: KeyFn | None,
    init: Callable[[], Any] | None,
    options: dict[str, Any],
) -> Stream:
    """The stream of a library run (``progress=`` says whether it shows a bar)."""
    from crunch._stream import open_stream

    config = prepare(fn, options)
    return open_stream(fn, items, config, key=key, init=init, progress=config.progress)


def _iterate(stream: Stream) -> Iterator[ItemResult]:
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
    from crunch._stream import open_async_stream

    config = prepare(fn, options)
    return open_async_stream(fn, items, config, key=key, init=init, progress=config.progress)


# ---------------------------------------------------------------------------- validation
def prepare(fn: Callable[[Any], Any], options: dict[str, Any]) -> Settings:
    """Validate options and the task for the mode; raise before any item runs."""
    from crunch._config import RunConfig
    from crunch._settings import Settings

    config = Settings.of(RunConfig.build(**options))
    check_task(fn, config.mode)
    return config


def check_task(fn: Callable[[Any], Any], mode: str) -> None:
    """Refuse at once a task the chosen mode cannot run (README, "The library")."""
    from crunch._exceptions import TaskNotImportableError, UsageError
    from crunch._runner import is_async_task

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
