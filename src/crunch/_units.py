"""What a chunk of work is: a *unit* the parent cuts cheaply and a worker opens itself.

The parent never touches the items of a source it can hand to workers whole; it cuts the
source into units and counts positions, and the worker reads, decodes, keys and runs:

    ItemsUnit   a list of Python items (any iterable the library is given); the parent
                keeps their keys unless the worker must write records (then they travel)
    PathsUnit   a list of keys of files (``data/sub/a.txt``): the worker makes each ``Path``
    JsonlUnit   a line-aligned byte range of a JSON Lines file and the number of its first
                line: the worker reads the range, decodes each line, finds its key
    KeysUnit    a JsonlUnit whose keys only are wanted: the worker gives their fingerprints
                (``--key``: a key must name one item, checked before anything runs)

A unit has ``len(unit)`` *positions*, one per item or per line (a blank line, or an item that
``--resume`` says is done, is a position that yields ``SKIP``: no record). Everything the
engine says about an item (the slot table's "running position 7", a failure, a rerun) is a
position; ``subset(positions)`` makes the unit of just those positions (reruns, retries,
suspects run alone), keeping their original positions for ordering.

``Job`` is what every worker of a run needs besides its units: the task, whether to write
records or return values, the ``--key`` field and the keys ``--resume`` skips. It travels once
per worker, never per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crunch._results import InvalidItem

SKIP: Any = type("Skip", (), {"__repr__": lambda self: "SKIP"})()
"""The item of a position that has nothing to run (a blank line, an item already done)."""

Opened = tuple[Sequence[Any], Sequence[Any], bool]
"""What ``unit.open(job)`` gives a worker: a key and an item per position, and whether the
items are *clean* (no ``SKIP``, no ``InvalidItem``), which lets the runner skip those checks."""

_KEY_TYPES = frozenset({str, int})


class Job:
    """What a worker needs to run any unit of one run (sent to each worker once)."""

    __slots__ = ("fn", "key_field", "records", "skip")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        records: bool = False,
        key_field: str | None = None,
        skip: frozenset[Any] | None = None,
    ) -> None:
        self.fn = fn
        self.records = records  # encode JSON Lines records in the worker (the command)
        self.key_field = key_field
        self.skip = skip or None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.fn, self.records, self.key_field, self.skip)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.fn, self.records, self.key_field, self.skip = state


class ItemsUnit:
    """Python items; ``keys`` travel only when the worker writes records."""

    __slots__ = ("items", "keys")

    def __init__(self, items: list[Any], keys: Sequence[Any] | None = None) -> None:
        self.items = items
        self.keys = keys

    def __len__(self) -> int:
        return len(self.items)

    def open(self, job: Job) -> Opened:
        keys = self.keys if self.keys is not None else [None] * len(self.items)
        items = self.items
        return keys, items, InvalidItem not in set(map(type, items))

    def subset(self, positions: Sequence[int]) -> ItemsUnit:
        items = self.items
        keys = self.keys
        return ItemsUnit(
            [items[p] for p in positions], None if keys is None else [keys[p] for p in positions]
        )

    def key_at(self, position: int, job: Job) -> Any:
        return None if self.keys is None else self.keys[position]


class PathsUnit:
    """Files by key (``str``), or ``(key, InvalidItem)`` for an entry the walk could not read."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def open(self, job: Job) -> Opened:
        entries = self.keys
        skip = job.skip
        if skip is None and set(map(type, entries)) == {str}:
            return entries, list(map(Path, entries)), True
        keys: list[Any] = []
        items: list[Any] = []
        for entry in entries:
            if type(entry) is str:
                keys.append(entry)
                items.append(SKIP if skip is not None and entry in skip else Path(entry))
            else:
                keys.append(entry[0])
                items.append(entry[1])
        return keys, items, False

    def subset(self, positions: Sequence[int]) -> PathsUnit:
        keys = self.keys
        return PathsUnit([keys[p] for p in positions])

    def key_at(self, position: int, job: Job) -> Any:
        entry = self.keys[position]
        return entry if type(entry) is str else entry[0]


class JsonlUnit:
    """The lines of ``path`` in ``[start, end)``; the first is line ``first_line`` (1-based).

    ``lines`` is how many lines the range holds (a last line without a newline included);
    ``select``, when set, keeps only those line offsets (a subset). ``data`` holds the bytes
    themselves when the source cannot be reopened by a worker (standard input, a pipe).
    """

    __slots__ = ("data", "end", "first_line", "lines", "path", "select", "start")

    def __init__(
        self,
        path: str | None,
        start: int,
        end: int,
        first_line: int,
        lines: int,
        select: tuple[int, ...] | None = None,
        data: bytes | None = None,
    ) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.first_line = first_line
        self.lines = lines
        self.select = select
        self.data = data

    def __len__(self) -> int:
        return self.lines if self.select is None else len(self.select)

    def _lines(self) -> list[bytes]:
        data = self.data
        if data is None:
            assert self.path is not None
            with open(self.path, "rb") as f:
                f.seek(self.start)
                data = f.read(self.end - self.start)
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # the range ends with a newline
        # A file changed under the run gives fewer lines than were counted: the missing ones
        # read as blank, never as another line's data.
        lines.extend(b"" for _ in range(self.lines - len(lines)))
        return lines

    def open(self, job: Job) -> Opened:
        """Decode the lines: in bulk (C speed) when they all are well-formed, else line by line."""
        import orjson

        from crunch._sources import _UTF8_BOM, jsonl_entry

        lines = self._lines()
        if self.select is not None:
            offsets: Sequence[int] = self.select
            lines = [lines[o] for o in offsets]
        else:
            offsets = range(self.lines)
        if self.first_line == 1 and offsets and offsets[0] == 0:
            lines[0] = lines[0].removeprefix(_UTF8_BOM)
        key_field = job.key_field
        skip = job.skip
        if skip is None:
            try:
                values = list(map(orjson.loads, lines))
                first = self.first_line
                if key_field is None:
                    if self.select is None:
                        return range(first, first + self.lines), values, True
                    return [first + o for o in offsets], values, True
                # Only an object has fields: a list or a string raises TypeError here.
                keys = [v[key_field] for v in values]
                if set(map(type, keys)) <= _KEY_TYPES:
                    return keys, values, True
            except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
                pass  # a blank or broken line somewhere: the careful way below
        keys = []
        items = []
        first = self.first_line
        for offset, line in zip(offsets, lines, strict=True):
            entry = jsonl_entry(first + offset, line, key_field)
            if entry is None or (skip is not None and entry[0] in skip):
                keys.append(None)
                items.append(SKIP)
            else:
                keys.append(entry[0])
                items.append(entry[1])
        return keys, items, False

    def subset(self, positions: Sequence[int]) -> JsonlUnit:
        offsets = range(self.lines) if self.select is None else self.select
        select = tuple(offsets[p] for p in positions)
        return JsonlUnit(
            self.path, self.start, self.end, self.first_line, self.lines, select, self.data
        )

    def key_at(self, position: int, job: Job) -> Any:
        """The key of one position, read in the parent (a rare path: its worker died)."""
        from crunch._sources import jsonl_entry

        offset = position if self.select is None else self.select[position]
        try:
            line = self._lines()[offset]
        except OSError:
            line = b""
        entry = jsonl_entry(self.first_line + offset, line, job.key_field)
        return self.first_line + offset if entry is None else entry[0]


class KeysUnit:
    """The ``--key`` values of a ``JsonlUnit``'s lines, as fingerprints (``crunch._keycheck``).

    Nothing runs: ``crunch._runner.run_unit`` answers it with the fingerprints alone.
    """

    __slots__ = ("unit",)

    def __init__(self, unit: JsonlUnit) -> None:
        self.unit = unit

    def __len__(self) -> int:
        return len(self.unit)

    def fingerprints(self, job: Job) -> tuple[list[int], tuple[bytes, ...]]:
        """The positions that hold no item (blank lines), and the fingerprints of the keys of
        the others."""
        from crunch._keycheck import fingerprints

        keys, items, clean = self.unit.open(job)
        blank = [] if clean else [p for p, item in enumerate(items) if item is SKIP]
        if blank:
            keys = [key for key, item in zip(keys, items, strict=True) if item is not SKIP]
        return blank, fingerprints(keys)


def is_regular_file(path: str) -> bool:
    try:
        import stat

        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
