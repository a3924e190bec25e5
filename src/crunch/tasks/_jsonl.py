"""The ``jsonl`` task: records, invalid lines and field types of a JSON Lines file.

The value is ``{"records", "invalid", "invalid_count", "keys"}``:

- ``records``: the lines that are valid JSON (any JSON value, not only objects);
- ``invalid``: the 1-based line numbers, in the whole file, of the first 10 lines that are not
  valid JSON (UTF-8 included), and ``invalid_count`` all of them. A UTF-8 byte order mark at the
  very start of the file is skipped, as ``crunch process --jsonl`` skips it (anywhere else it
  makes its line invalid);
- ``keys``: for the top-level fields of the records that are objects, ``{field: {type: count}}``
  with the JSON type of each value, one of ``null``, ``bool``, ``int``, ``float``, ``str``,
  ``list``, ``dict``; fields and types are listed in name order.

A blank line (nothing but spaces, tabs and ``\\r``) is neither a record nor invalid, but it is
still a line: line numbers are those of the file. Lines are parsed with ``orjson``, which reads an
integer beyond 64 bits as a float, so such a value counts as ``float``.

Combiner: a state holds a unit's line count, so ``merge`` shifts the second state's invalid line
numbers by the first's lines, and a split file gives the same value as an unsplit one. ``merge``
never changes its arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import orjson

from crunch.tasks import Combiner, Task
from crunch.tasks._ranges import iter_unit_lines

MAX_INVALID = 10
"""How many invalid line numbers a value lists (``invalid_count`` counts them all)."""

_TYPE_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "list",
    dict: "dict",
}
_BLANK = b" \t\r\n"
_UTF8_BOM = b"\xef\xbb\xbf"


class State(NamedTuple):
    """The partial result of some consecutive lines of a file."""

    lines: int  # lines seen, blank and invalid ones included (to shift later line numbers)
    records: int
    invalid: list[int]  # the first MAX_INVALID invalid line numbers, 1-based within the state
    invalid_count: int
    keys: dict[str, dict[str, int]]


def unit(path: Path | str, start: int = 0, end: int | None = None) -> State:
    """The state of the lines of ``path`` that start in ``[start, end)``."""
    lines = records = invalid_count = 0
    invalid: list[int] = []
    keys: dict[str, dict[str, int]] = {}
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for lines, raw in enumerate(iter_unit_lines(path, start, end), start=1):
        line = raw[len(_UTF8_BOM) :] if lines == 1 and start == 0 and raw[:3] == _UTF8_BOM else raw
        if not line.strip(_BLANK):
            continue
        try:
            value = loads(line)
        except decode_error:
            invalid_count += 1
            if len(invalid) < MAX_INVALID:
                invalid.append(lines)
            continue
        records += 1
        if type(value) is dict:
            for field, field_value in value.items():
                types = keys.get(field)
                if types is None:
                    types = keys[field] = {}
                name = _TYPE_NAMES[type(field_value)]
                types[name] = types.get(name, 0) + 1
    return State(lines, records, invalid, invalid_count, keys)


def merge(a: State, b: State) -> State:
    """Combine ``a`` and the state of the lines right after it, ``b``."""
    invalid = a.invalid + [a.lines + n for n in b.invalid[: MAX_INVALID - len(a.invalid)]]
    keys = {field: dict(types) for field, types in a.keys.items()}
    for field, types in b.keys.items():
        merged = keys.setdefault(field, {})
        for name, count in types.items():
            merged[name] = merged.get(name, 0) + count
    return State(
        a.lines + b.lines,
        a.records + b.records,
        invalid,
        a.invalid_count + b.invalid_count,
        keys,
    )


def finish(state: State) -> dict[str, Any]:
    """The record's value for a state (see the module docstring)."""
    return {
        "records": state.records,
        "invalid": list(state.invalid),
        "invalid_count": state.invalid_count,
        "keys": {
            field: {name: state.keys[field][name] for name in sorted(state.keys[field])}
            for field in sorted(state.keys)
        },
    }


def jsonl(item: Path | str) -> dict[str, Any]:
    """Return ``{"records", "invalid", "invalid_count", "keys"}`` for the JSON Lines file."""
    return finish(unit(item))


TASK = Task(
    name="jsonl",
    summary="records, invalid line numbers and field types of a JSON Lines file",
    fn=jsonl,
    combiner=Combiner(unit=unit, merge=merge, finish=finish, splits=True),
)
