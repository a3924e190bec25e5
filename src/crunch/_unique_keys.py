"""A key must name one item: the check ``crunch process --jsonl FILE --key FIELD`` makes.

README, "Inputs": two lines with the same ``--key`` value, or a line whose value equals the
line number that keys a malformed line, would give two records with one key, and ``--resume``
could then keep only one of them. So the first key met again is refused: ``unique_keys``
raises ``DuplicateKeyError`` naming the key and both line numbers. Raised by the source, it
stops the run from starting new items; the items in flight finish and are written, the rest
are counted as not run, and the command exits 2 with that message.

This is the one place the rule lives; its cases are the table ``DUPLICATE_KEYS`` in
``tests/hostile.py``, which any other way of reading the input must keep passing. Memory: one
entry per item read (its key and line number), and only with ``--key``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from crunch._exceptions import DuplicateKeyError
from crunch._jsonline import dumps
from crunch._results import InvalidItem

__all__ = ["unique_keys"]


def unique_keys(entries: Iterable[tuple[int, Any, Any]], field: str) -> Iterator[tuple[Any, Any]]:
    """``(key, item)`` for each ``(line number, key, item)``; raise at the first repeated key."""
    lines: dict[Any, int] = {}  # key -> its line; negative: the line is keyed by its number
    for lineno, key, item in entries:
        mark = -lineno if isinstance(item, InvalidItem) else lineno
        first = lines.setdefault(key, mark)
        if first != mark:
            raise DuplicateKeyError(_message(key, first, mark, field), key=key)
        yield key, item


def _message(key: Any, first: int, second: int, field: str) -> str:
    def line(mark: int) -> str:
        if mark > 0:
            return f"line {mark}"
        return f"line {-mark} (a line that is not a valid item is keyed by its number)"

    return (
        f"--key {field}: the key {dumps(key).decode()} names two items, {line(first)} and "
        f"{line(second)}; a key must name one item. Nothing was read after line {abs(second)}: "
        "make the keys unique (or leave out --key to key items by line number) and run again"
    )
