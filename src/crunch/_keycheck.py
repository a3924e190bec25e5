"""One key, one item: ``--key`` values that name more than one line, found before a run starts.

README, "Inputs": a key must name one item, or a run would write two records with one key and
``--resume`` could keep only one of them. Over a JSON Lines file the workers read themselves,
the check comes first (``refuse_repeated_keys``): the workers read the file's line ranges and
reduce their keys to 64-bit fingerprints (``fingerprints``), sorted and cut into ``BUCKETS``
ranges of the fingerprint space, each packed as bytes; the parent keeps only those bytes (8 per
item, where a million keys in a Python ``set`` would cost it some 60 MB). ``KeyCheck.suspects``
then looks at one bucket at a time (a set of about 1/16 of the keys) for fingerprints seen more
than once. Two keys can share a fingerprint, so each suspect is confirmed against the keys
themselves, in a pass over the file here (taken only when there is a suspect). A repeated key
refuses the whole input, every repeated key named at once, before any item has run.

Input the parent reads line by line (standard input, ``--resume``) is checked as it is read,
by ``crunch._unique_keys``; both ways keep the cases of ``DUPLICATE_KEYS`` in
``tests/hostile.py``.

Fingerprints are the same in every process: an int key's is ``hash((key,))`` (Python's tuple
hash of an int does not depend on the interpreter's random seed), a string key's comes from
its UTF-8 bytes (CRC-32 and Adler-32 side by side).
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from crunch._exceptions import DuplicateKeyError
from crunch._results import InvalidItem

BUCKETS = 16
SCAN_LINES = 1 << 15  # lines of a range whose keys one worker fingerprints at a time
_LOW = -(1 << 63)
_STEP = (1 << 64) // BUCKETS
_BOUNDS = [_LOW + _STEP * i for i in range(1, BUCKETS)]

Buckets = tuple[bytes, ...]


def fingerprint(key: Any) -> int:
    """The 64-bit (signed) fingerprint of one key."""
    if type(key) is int:
        return hash((key,))
    data = str(key).encode("utf-8", "surrogatepass")
    value = (zlib.crc32(data) << 32) | zlib.adler32(data)
    return value - (1 << 63)  # into the signed range, as array("q") wants


def fingerprints(keys: Iterable[Any]) -> Buckets:
    """The keys' fingerprints, sorted and cut into ``BUCKETS`` packed ranges."""
    keys = list(keys)
    if set(map(type, keys)) <= {int}:
        prints = sorted(map(hash, zip(keys, strict=True)))  # in C: (k,) hashed
    else:
        prints = sorted(map(fingerprint, keys))
    cuts = [0, *(bisect.bisect_left(prints, b) for b in _BOUNDS), len(prints)]
    return tuple(array("q", prints[a:b]).tobytes() for a, b in itertools.pairwise(cuts))


class KeyCheck:
    """The fingerprints of a run's keys, bucket by bucket, as the workers sent them."""

    def __init__(self) -> None:
        self.buckets: list[list[bytes]] = [[] for _ in range(BUCKETS)]

    def add(self, buckets: Buckets) -> None:
        for mine, theirs in zip(self.buckets, buckets, strict=True):
            if theirs:
                mine.append(theirs)

    def suspects(self) -> set[int]:
        """Fingerprints seen more than once (each to be confirmed against the keys)."""
        found: set[int] = set()
        for blobs in self.buckets:
            prints = array("q")
            for blob in blobs:
                prints.frombytes(blob)
            if len(set(prints)) != len(prints):
                found.update(p for p, n in Counter(prints).items() if n > 1)
        return found


def duplicates(
    entries: Iterable[tuple[int, Any, bool]], suspects: set[int]
) -> list[tuple[Any, list[tuple[int, bool]]]]:
    """Of ``(line, key, keyed by its number)`` entries, the keys whose fingerprint is a suspect
    and that more than one line really has, with those lines, in the order met."""
    lines: dict[tuple[type, Any], list[tuple[int, bool]]] = {}
    for line, key, by_number in entries:
        if fingerprint(key) in suspects:
            lines.setdefault((type(key), key), []).append((line, by_number))
    return [(key, found) for (_kind, key), found in lines.items() if len(found) > 1]


async def refuse_repeated_keys(
    units: Iterable[Any],
    submit: Callable[[Any], Awaitable[Any]],
    window: int,
    *,
    path: str,
    field: str,
    job: Any,
    stopping: Callable[[], bool],
) -> tuple[int, DuplicateKeyError | None]:
    """Before a ``--key`` run over a JSON Lines file starts anything: how many items the file
    holds, and the ``DuplicateKeyError`` naming every key that names more than one of them
    (README, "Inputs"), if any.

    ``units`` are the file's line ranges; ``submit`` sends a ``KeysUnit`` to a worker and gives
    its outcome (or a loss). The workers decode the lines and fingerprint the keys, ``window``
    ranges at a time; a range whose worker was lost is read here instead. Returns early when
    ``stopping()`` turns true (the run then starts nothing).
    """
    import asyncio

    from crunch._units import KeysUnit

    check = KeyCheck()
    items = 0
    pending: set[asyncio.Future[Any]] = set()
    sent: dict[asyncio.Future[Any], Any] = {}
    todo = iter(units)
    while True:
        while len(pending) < window and not stopping():
            unit = next(todo, None)
            if unit is None:
                break
            future = asyncio.ensure_future(submit(KeysUnit(unit)))
            sent[future] = unit
            pending.add(future)
        if not pending or stopping():
            break
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for future in finished:
            unit = sent.pop(future)
            outcome: Any = None
            if not future.cancelled() and future.exception() is None:
                outcome = future.result()
            prints = getattr(outcome, "prints", None)
            if prints is None:  # lost with its worker: read here
                blank, prints = KeysUnit(unit).fingerprints(job)
                items += len(unit) - len(blank)
            else:
                items += outcome.items
            check.add(prints)
    for future in pending:
        future.cancel()
    if stopping():
        return items, None
    suspects = check.suspects()
    if suspects:
        from crunch._sources import jsonl_lines

        entries = (
            (line, key, isinstance(item, InvalidItem))
            for line, key, item in jsonl_lines(path, key_field=field)
        )
        found = duplicates(entries, suspects)
        if found:
            return items, DuplicateKeyError(_message(found, field), key=found[0][0])
    return items, None


_SHOWN = 10  # repeated keys named in the message; the rest are counted


def _message(found: list[tuple[Any, list[tuple[int, bool]]]], field: str) -> str:
    from crunch._jsonline import dumps

    def lines(marks: list[tuple[int, bool]]) -> str:
        said = [
            f"line {line}" + (" (a line that is not a valid item is keyed by its number)" * by)
            for line, by in marks
        ]
        count = "two" if len(said) == 2 else str(len(said))
        return f"names {count} items, " + ", ".join(said[:-1]) + " and " + said[-1]

    told = [f"the key {dumps(key).decode()} {lines(marks)}" for key, marks in found[:_SHOWN]]
    more = len(found) - _SHOWN
    if more > 0:
        told.append(f"and {more} more repeated {'key' if more == 1 else 'keys'}")
    return (
        f"--key {field}: " + "; ".join(told) + ". A key must name one item; nothing was run: "
        "make the keys unique (or leave out --key to key items by line number) and run again"
    )
