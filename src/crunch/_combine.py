"""Splitting large files into units and combining partial states (README, "Built-in tasks").

    entries --expand--> (key, Path) | ((key, part, parts), Unit) --engine--> results
            --Regroup--> one record per key (+ the --reduce total)

- ``expand`` cuts a file larger than ``split_size`` into line-aligned byte ranges (``Unit``)
  when the task splits; with ``--reduce`` every file becomes a unit, so its full state (not
  its possibly truncated value) comes back. A unit's engine key is ``(key, part, parts)``.
- ``TaskCall`` is what the workers run: the task's function with the ``-O`` options, or its
  combiner's ``unit`` for a ``Unit`` (workers read their own range: no file content is sent).
- ``Regroup`` (in the parent) collects the parts of a key, merges their states in part order,
  finishes them into the file's one record, and, for ``--reduce``, merges each file's state into
  the running total. It holds only the parts of files still in flight.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crunch._failures import ItemFailure
from crunch._results import ItemResult
from crunch.tasks import Task
from crunch.tasks._ranges import split_ranges


@dataclass(frozen=True, slots=True)
class Unit:
    """The lines of ``path`` that start in ``[start, end)`` (its key says which part it is)."""

    path: Path
    start: int
    end: int | None


class TaskCall:
    """The callable the engine runs: ``task.fn(item, **options)``, or ``unit`` for a Unit."""

    def __init__(self, task: Task, options: dict[str, Any]) -> None:
        self.task = task
        self.options = options

    @property
    def __wrapped__(self) -> Any:
        """The task's function, so that ``is_async_task`` sees an ``async def`` task through."""
        return self.task.fn

    def __call__(self, item: Any) -> Any:
        if type(item) is Unit:
            assert self.task.combiner is not None
            return self.task.combiner.unit(item.path, item.start, item.end, **self.options)
        return self.task.fn(item, **self.options)


def expand(
    entries: Iterable[tuple[Any, Any]], task: Task, *, split_size: int, reduce: bool
) -> Iterator[tuple[Any, Any]]:
    """Entries with big files cut into units (and, for reduce, every file made a unit)."""
    if task.combiner is None:
        yield from entries
        return
    splits = task.splits
    for key, item in entries:
        if not isinstance(item, Path):
            yield key, item
            continue
        try:
            size = os.stat(item).st_size
        except OSError:
            size = 0  # the unit will fail with the real error when it opens the file
        if splits and size > split_size:
            ranges = split_ranges(size, split_size)
            for part, (start, end) in enumerate(ranges):
                yield (key, part, len(ranges)), Unit(item, start, end)
        elif reduce:
            yield (key, 0, 1), Unit(item, 0, None)
        else:
            yield key, item


class Regroup:
    """Turns unit results back into one record per file; keeps the --reduce total."""

    def __init__(self, task: Task, options: dict[str, Any], *, reduce: bool) -> None:
        self.combiner = task.combiner
        self.options = options
        self.reduce = reduce
        self.parts: dict[Any, dict[int, ItemResult]] = {}
        self.total: Any = None
        self.reduced = 0

    def feed(self, result: ItemResult) -> ItemResult | None:
        """The record to emit for ``result``, or None while parts of its file are missing."""
        key = result.key
        if type(key) is not tuple or len(key) != 3:
            return result
        key, part, parts = key
        have = self.parts.setdefault(key, {})
        have[part] = result
        if len(have) < parts:
            return None
        del self.parts[key]
        ordered = [have[i] for i in range(parts)]
        seconds = sum(r.seconds for r in ordered)
        attempts = max(r.attempts for r in ordered)
        failed = next((r for r in ordered if not r.ok), None)
        if failed is not None:
            assert failed.error is not None
            error = failed.error
            if parts > 1:
                where = f"(in part {ordered.index(failed) + 1} of {parts})"
                error = dataclasses.replace(error, message=f"{error.message} {where}")
            return ItemResult(key, False, None, error, seconds, attempts)
        assert self.combiner is not None
        state = functools.reduce(self.combiner.merge, (r.value for r in ordered))
        try:
            value = self.combiner.finish(state, **self.options)
        except Exception as exc:  # noqa: BLE001 - a finish that fails fails this file only
            failure = ItemFailure.from_exception(exc).public(attempts)
            return ItemResult(key, False, None, failure, seconds, attempts)
        if self.reduce:
            self.total = state if self.total is None else self.combiner.merge(self.total, state)
            self.reduced += 1
        return ItemResult(key, True, value, None, seconds, attempts)

    def pending(self) -> int:
        """Files with some parts still missing (at the end: parts that never ran)."""
        return len(self.parts)

    def result(self) -> Any:
        """The --reduce value: every ok file's state merged, finished."""
        assert self.combiner is not None
        if self.total is None:
            return None
        return self.combiner.finish(self.total, **self.options)
