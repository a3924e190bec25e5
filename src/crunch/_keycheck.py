"""One key, one item: finding ``--key`` values that name more than one line, in bounded memory.

A million keys in a Python ``set`` would cost the parent some 60 MB, so it never holds them.
Each worker reduces the keys of its chunk to 64-bit fingerprints (``fingerprints``), sorts them
and cuts them into ``BUCKETS`` ranges of the fingerprint space, each packed as bytes; the
parent only keeps those bytes (8 per item). At the end ``KeyCheck.suspects`` looks at one
bucket at a time (a set of about 1/16 of the keys), and gives the fingerprints seen more than
once. Two different keys can share a fingerprint: the caller confirms each suspect against the
keys themselves (a slow pass over the input, taken only when there is a suspect).

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
from collections.abc import Iterable, Sequence
from typing import Any

BUCKETS = 16
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

    def add_keys(self, keys: Sequence[Any]) -> None:
        """Keys the parent holds itself (input read line by line)."""
        self.add(fingerprints(keys))

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


def duplicates(entries: Iterable[tuple[int, Any]], suspects: set[int]) -> dict[Any, list[int]]:
    """Of ``(line, key)`` pairs, the keys whose fingerprint is a suspect and that more than one
    line really has, with those lines."""
    lines: dict[Any, list[int]] = {}
    for line, key in entries:
        if fingerprint(key) in suspects:
            lines.setdefault((type(key), key), []).append(line)
    return {key: found for (_kind, key), found in lines.items() if len(found) > 1}
