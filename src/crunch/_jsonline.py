"""One JSON text in and out: orjson on the normal path, the standard library for what it refuses.

Writing (``dumps``)
    orjson writes UTF-8 and refuses a ``str`` holding a lone surrogate: the form Python gives
    to bytes of a file name that are not valid UTF-8 (``os.fsdecode`` maps byte ``0xff`` to
    ``"\\udcff"``), and that an exception message quoting such a name holds too. Only on that
    failure is the object written again by the ``json`` module, ASCII only, so each lone
    surrogate becomes the escape ``\\udcff`` (with ``allow_nan=False`` and the compact
    separators orjson uses). The line is still valid JSON and ``os.fsencode(json.loads(line)
    ["item"])`` gives the name's bytes back. Objects only orjson knows (numpy arrays,
    dataclasses, datetimes) are converted for that slow path by orjson itself.

Reading (``loads``)
    orjson first; a line it refuses is read by the ``json`` module (from strict UTF-8, with
    ``NaN`` and ``Infinity`` refused as orjson refuses them), so lines written by ``dumps``
    always read back. A line neither reads raises orjson's error.

NaN and infinities (``non_finite``)
    orjson writes a float NaN or infinity as ``null``, silently. ``non_finite(value)`` says
    where a value holds one (``value['scores'][2]``), for the writer to fail that record
    instead. It is only worth calling when the encoded line contains ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import orjson

__all__ = ["dumps", "loads", "non_finite"]

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
"""What records are written with: non-string dict keys and numpy values are accepted."""

_SURROGATES = "surrogates not allowed"  # orjson's message for a lone surrogate in a str


def dumps(obj: Any, option: int = OPTIONS) -> bytes:
    """``obj`` as one compact JSON text, without a newline.

    Raises ``TypeError`` when ``obj`` is not JSON-serialisable and ``ValueError`` when the
    escaped path meets NaN or an infinity (orjson itself writes those as ``null``).
    """
    try:
        return orjson.dumps(obj, option=option)
    except TypeError as exc:
        if _SURROGATES not in str(exc):
            raise
    return _dumps_escaped(obj, option)


def _dumps_escaped(obj: Any, option: int) -> bytes:
    def convert(value: Any) -> Any:
        # Something the json module does not know; orjson does (or raises TypeError).
        return orjson.loads(orjson.dumps(value, option=option))

    text = json.dumps(
        obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=convert
    )
    return text.encode("ascii")


def loads(line: bytes | str) -> Any:
    """The JSON value of one line; raises ``orjson.JSONDecodeError`` when it is not JSON."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        original = exc
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a NaN or Infinity
        raise original from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def non_finite(value: Any, where: str = "value") -> str | None:
    """Where ``value`` holds a float NaN or infinity, as ``"NaN at value['a'][2]"``, or None."""
    found = _find_non_finite(value)
    if found is None:
        return None
    number, path = found
    return f"{number} at {where}{''.join(reversed(path))}"


def _find_non_finite(value: Any) -> tuple[str, list[str]] | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else (_name(value), [])
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif getattr(value, "dtype", None) is not None and getattr(value, "shape", None) is not None:
        return _find_in_array(value)
    else:
        return None
    for key, item in items:
        found = _find_non_finite(item)
        if found is not None:
            found[1].append(f"[{key!r}]")
            return found
    return None


def _find_in_array(array: Any) -> tuple[str, list[str]] | None:
    """A numpy array or scalar (numpy is imported only when the value holds one)."""
    import numpy as np

    if array.dtype.kind != "f":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    if array.ndim == 0:
        return _name(float(array)), []
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return _name(float(array[index])), ["[" + ", ".join(map(str, index)) + "]"]


def _name(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    return "infinity" if number > 0 else "-infinity"
