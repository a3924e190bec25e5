"""Tasks: what a run does to one item, and (optionally) how partial results combine.

A task is registered in the ``crunch.tasks`` entry-point group as a ``Task`` object; crunch's
built-ins (the private modules of this package) are registered as a plugin registers one::

    [project.entry-points."crunch.tasks"]
    mytask = "mypackage.tasks:TASK"

``Task.fn(item, **options)`` is the plain function run per item (a ``pathlib.Path`` for path
inputs, the decoded JSON value for ``--jsonl``). It must live at module level so worker processes
can import it.

A task that splits large files or reduces (``--reduce``) also has a ``Combiner``, three parts in
the manner of a monoid:

- ``unit(path, start, end, **options) -> state``: the state of the lines of ``path`` that *start*
  at a byte offset in ``[start, end)`` (``end=None``: to the end of the file). A unit reads its own
  range, so no file content crosses the process boundary.
- ``merge(a, b) -> state``: combine two states; associative, with ``a``'s lines before ``b``'s
  (so line numbers can be shifted by ``a``'s line count).
- ``finish(state, **options) -> value``: the record's value; ``fn(path, **options)`` equals
  ``finish(unit(path, 0, None, **options), **options)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Combiner", "Task"]


@dataclass(frozen=True, slots=True)
class Combiner:
    """Run / merge / finish over partial states (see the module docstring)."""

    unit: Callable[..., Any]
    merge: Callable[[Any, Any], Any]
    finish: Callable[..., Any]
    splits: bool = True  # False: can reduce across files but never cuts one file into ranges


@dataclass(frozen=True, slots=True)
class Task:
    """A named task: its per-item function, a one-line summary, and an optional combiner."""

    name: str
    summary: str
    fn: Callable[..., Any]
    combiner: Combiner | None = None

    @property
    def splits(self) -> bool:
        return self.combiner is not None and self.combiner.splits

    @property
    def reduces(self) -> bool:
        return self.combiner is not None
