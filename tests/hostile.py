"""Hostile inputs, one table per kind, for the parametrised tests in ``test_hostile.py``.

A new case is one line in a table. The tables:

- ``NAMES``: file names (as bytes) that must each get exactly one record, under a key that maps
  back to exactly that file (``os.fsencode(json.loads(line)["item"])``), and that ``--resume``
  matches, whether the file is walked or named on standard input (README, "Output").
- ``VALUES``: what a task may return or raise, and the record each must give (README, "Output":
  a record is valid JSON and never carries a value other than the task's).

This module is also a task module: workers import it for ``hostile:value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Name:
    id: str
    raw: bytes  # the file name's bytes
    on_lines: bool = True  # can travel on line-separated stdin (no "\n", no trailing "\r")


NAMES = [
    Name("plain", b"plain.txt"),
    Name("not-utf8-ff", b"b\xff.txt"),
    Name("not-utf8-latin1", "café".encode("latin-1") + b".txt"),
    Name("utf8-of-a-surrogate", b"\xed\xb3\xbf.txt"),
    Name("literal-backslash-u", b"\\udcff.txt"),  # must not collide with the byte 0xff above
    Name("quote-and-backslash", b'q"uo\\te.txt'),
    Name("newline-inside", b"new\nline.txt", on_lines=False),
    Name("carriage-return-at-end", b"cr.txt\r", on_lines=False),
    Name("spaces-and-tab", b" lead\ttab .txt"),
    Name("leading-dash", b"-o.txt"),
    Name("control-bytes", b"\x01\x1b[31m\x7f.txt"),
    Name("emoji", "\N{GRINNING FACE}.txt".encode()),
    Name("nfc", "\u00e9.txt".encode()),  # the NFC and NFD spellings are two files
    Name("nfd", "e\u0301.txt".encode()),
    Name("looks-like-null", b"null"),
    Name("longest", b"n" * 255),
]


@dataclass(frozen=True)
class Value:
    id: str
    make: Any  # () -> the value the task returns (or raises, for an exception)
    ok: bool
    type: str = ""  # the record's error type when not ok
    message_has: str = ""  # a part of the record's error message when not ok
    needs: str = ""  # a module the case needs (skipped without it)


class _Error(ValueError):
    pass


def _raise(exc: BaseException) -> Any:
    def make() -> Any:
        raise exc

    return make


def _numpy_nan() -> Any:
    import numpy as np

    return {"v": np.array([[1.0, 2.0], [3.0, np.nan]])}


def _numpy_inf_scalar() -> Any:
    import numpy as np

    return [np.float32(np.inf)]


VALUES = [
    Value("nan", lambda: math.nan, False, "ValueError", "NaN at value,"),
    Value("infinity", lambda: math.inf, False, "ValueError", "infinity at value,"),
    Value("minus-infinity", lambda: -math.inf, False, "ValueError", "-infinity at value,"),
    Value("nested-nan", lambda: {"a": [1, (2, math.nan)]}, False, "ValueError", "value['a'][1][1]"),
    Value(
        "surrogate-and-nan", lambda: {"s": "\udcff", "x": math.inf}, False, "ValueError", "['x']"
    ),
    Value("numpy-nan", _numpy_nan, False, "ValueError", "NaN at value['v'][1, 1]", "numpy"),
    Value("numpy-inf", _numpy_inf_scalar, False, "ValueError", "infinity at value[0]", "numpy"),
    Value("none-is-fine", lambda: None, True),
    Value("null-text-is-fine", lambda: {"null": "null", "n": [None]}, True),
    Value("largest-float", lambda: 1.7976931348623157e308, True),
    Value("surrogate-in-value", lambda: ["b\udcff.txt", "\udc80"], True),
    Value(
        "surrogate-in-message",
        _raise(_Error("cannot read b\udcff.txt")),
        False,
        "_Error",
        "cannot read b\udcff.txt",
    ),
    Value("surrogate-in-key-of-value", lambda: {"\udcff": 1}, True),
]

_BY_ID = {case.id: case for case in VALUES}


def value(item: Any) -> Any:
    """The task of the ``VALUES`` cases: the item is a case id (or ``{"id": case id}``)."""
    case_id = item["id"] if isinstance(item, dict) else item
    return _BY_ID[case_id].make()
