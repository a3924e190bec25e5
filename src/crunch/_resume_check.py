"""``--resume`` refuses a results file that another task wrote (README, "The command").

Records do not say which task made them, and crunch writes nothing else (no header line, no
file beside FILE), so the check is made by comparing: before anything is skipped or
rewritten, the first input (in input order, among the first ``PROBE_WINDOW``) that FILE
records as ok is run once more, alone, with this run's task, options and ``--init``. Its new
value must have the shape of the recorded one: the same JSON type and, for an object, the same
field names. When it has not (``stats`` records resumed with ``--task checksum``), or when the
task now fails on an item FILE records as ok, ``UsageError`` says so and names the item, and
FILE is left untouched. The new value itself is not written anywhere.

What this cannot tell: a change of options that keeps the shape (``-O algorithm=md5`` after
``sha256``), or a task whose value has one shape for every task it could be confused with. The
one item runs twice, which matters for a task with side effects.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

from crunch._exceptions import UsageError
from crunch._jsonline import dumps, loads
from crunch._resume import ResumePlan
from crunch._tally import shown_key

__all__ = ["PROBE_WINDOW", "check_same_task", "shape_of"]

PROBE_WINDOW = 10_000
"""How many inputs are looked at (and held) to find one that the file records as done."""

Entries = Iterator[tuple[Any, Any]]


def check_same_task(
    plan: ResumePlan,
    source: Entries,
    *,
    task: Any,
    options: dict[str, Any],
    config: Any,
    init: Any,
    split_size: int,
) -> Entries:
    """Run the probe (see the module docstring); return the source, whole, to run from.

    Raises ``UsageError`` when FILE was not written by this task.
    """
    done = plan.lines
    if not done:
        return source
    held: list[tuple[Any, Any]] = []
    probe = None
    for entry in itertools.islice(source, PROBE_WINDOW):
        held.append(entry)
        if entry[0] in done:
            probe = entry
            break
    entries = itertools.chain(held, source)
    if probe is None:
        return entries
    key, item = probe
    result = _run_one(key, item, task, options, config, init, split_size)
    problem = _mismatch(plan, key, result)
    if problem is not None:
        raise UsageError(problem)
    return entries


def _run_one(
    key: Any, item: Any, task: Any, options: dict[str, Any], config: Any, init: Any, size: int
) -> Any:
    """The record ``key`` gets from this run's task, as a run of one item would write it."""
    from crunch._combine import Regroup, TaskCall, expand
    from crunch._sources import with_paths
    from crunch._stream import open_stream

    entries = expand(with_paths([(key, item)]), task, split_size=size, reduce=False)
    regroup = Regroup(task, options, reduce=False) if task.combiner else None
    alone = dataclasses.replace(config, workers=1, progress=False, max_failures=None)
    stream = open_stream(TaskCall(task, options), entries, alone, init=init, keyed=True)
    try:
        for batch in stream.batches():
            for result in batch:
                whole = regroup.feed(result) if regroup is not None else result
                if whole is not None:
                    return whole
    finally:
        stream.close()
    return None


def _mismatch(plan: ResumePlan, key: Any, result: Any) -> str | None:
    shown = shown_key(key)
    where = f"cannot resume from {plan.shown}"
    advice = (
        "Write to a new file (or run without --resume to start it again). "
        "The file was left unchanged."
    )
    if result is None:
        return None  # not run (a signal): nothing to compare
    if not result.ok:
        error = result.error
        return (
            f"{where}: it records {shown} as ok, but the task now fails on it ({error.type}: "
            f"{error.message.splitlines()[0] if error.message else ''}); it looks written by "
            f"another task, or the input changed. {advice}"
        )
    recorded = plan.recorded_value(key)
    try:
        fresh = loads(dumps(result.value))  # the value as a record would carry it
    except (TypeError, ValueError):
        return None  # the run itself will record why it cannot be written
    if shape_of(fresh) == shape_of(recorded):
        return None
    return (
        f"{where}: it was written by another task, or with other options: its record of "
        f"{shown} holds {describe(shape_of(recorded))}, but the task now gives "
        f"{describe(shape_of(fresh))}. {advice}"
    )


def shape_of(value: Any) -> tuple[str, frozenset[str]]:
    """A JSON value's type and, for an object, its field names."""
    if isinstance(value, dict):
        return "object", frozenset(value)
    if isinstance(value, list):
        return "array", frozenset()
    if isinstance(value, bool):
        return "boolean", frozenset()
    if isinstance(value, (int, float)):
        return "number", frozenset()
    if isinstance(value, str):
        return "string", frozenset()
    return "null", frozenset()


def describe(shape: tuple[str, frozenset[str]]) -> str:
    kind, fields = shape
    if kind == "object":
        names = ", ".join(sorted(fields)) if fields else "none"
        return f"an object with the fields {names}"
    return {"array": "an array", "null": "null"}.get(kind, f"a {kind}")
