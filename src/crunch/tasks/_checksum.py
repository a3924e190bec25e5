"""The ``checksum`` task: the digest of a file with any hash algorithm ``hashlib`` offers.

``-O algorithm=NAME`` picks the algorithm (default ``sha256``); the name is matched without
regard to case and reported in lower case. The valid names are those of
``hashlib.algorithms_available`` that this Python can actually construct (OpenSSL may list a
legacy name such as ``md4`` that it then refuses); an unknown name raises ``ValueError`` listing
them. The extendable-output ``shake_128`` and ``shake_256`` give a digest of twice their security
strength, as SHA-3 does: 32 bytes (64 hex digits) for ``shake_128`` and 64 bytes for
``shake_256``; ``-O length=N`` (bytes) asks for another length, for these two only.

The value is ``{"algorithm": NAME, "digest": HEX}``. The file is streamed. No combiner: a
digest cannot be computed from pieces.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, Protocol, cast

from crunch.tasks import Task

SHAKE_LENGTHS = {"shake_128": 32, "shake_256": 64}
"""Default digest length in bytes of the extendable-output algorithms."""


class _Extendable(Protocol):
    """A hash of extendable output (``shake_*``), whose hex digest takes a length."""

    def hexdigest(self, length: int, /) -> str: ...


@functools.cache
def valid_algorithms() -> tuple[str, ...]:
    """The algorithm names ``checksum`` accepts, sorted."""
    names = set()
    for name in hashlib.algorithms_available:
        try:
            hashlib.new(name)
        except ValueError:  # listed but not usable (e.g. a legacy OpenSSL digest)
            continue
        names.add(name.lower())
    return tuple(sorted(names))


def _resolve(algorithm: object) -> str:
    """The canonical name of ``algorithm``, or ``ValueError`` listing the valid names."""
    name = algorithm.lower() if isinstance(algorithm, str) else None
    if name not in valid_algorithms():
        raise ValueError(
            f"unknown hash algorithm {algorithm!r}; valid names: {', '.join(valid_algorithms())}"
        )
    return name


def checksum(
    item: Path | str, *, algorithm: str = "sha256", length: int | None = None
) -> dict[str, Any]:
    """Return ``{"algorithm", "digest"}``: the hex digest of the file ``item``'s bytes."""
    name = _resolve(algorithm)
    if name in SHAKE_LENGTHS:
        if length is None:
            length = SHAKE_LENGTHS[name]
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise ValueError(f"length must be a positive number of bytes, got {length!r}")
    elif length is not None:
        raise ValueError(
            f"length applies only to {' and '.join(SHAKE_LENGTHS)}, not to {name} "
            "(its digest has a fixed length)"
        )
    with open(item, "rb") as f:
        digest = hashlib.file_digest(f, name)
    if length is None:
        hexdigest = digest.hexdigest()
    else:
        hexdigest = cast("_Extendable", digest).hexdigest(length)
    return {"algorithm": name, "digest": hexdigest}


TASK = Task(
    name="checksum",
    summary="digest of each file with any hashlib algorithm (-O algorithm=NAME, default sha256)",
    fn=checksum,
)
