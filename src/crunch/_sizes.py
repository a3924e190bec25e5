"""Sizes as people write them: ``parse_size("4MiB")``, for ``--split-size``,
``--max-memory`` and ``RunConfig(max_memory=...)``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 10**3,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 10**6,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 10**9,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 10**12,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
_EXAMPLES = "e.g. 1000, 64MB, 4MiB, 1.5GiB"


def parse_size(text: str | int) -> int:
    """Return the number of bytes that ``text`` names, such as ``"4MiB"``, ``"64MB"``, ``"1000"``.

    Units, case-insensitive: ``B``; ``KB``, ``MB``, ``GB``, ``TB`` (powers of 1000); ``KiB``,
    ``MiB``, ``GiB``, ``TiB`` and the one-letter ``K``, ``M``, ``G``, ``T`` (powers of 1024, as in
    GNU coreutils). A fraction is allowed (``1.5GiB``); a fractional byte count is rounded down.
    An ``int`` is returned as it is. Raises ``ValueError`` naming the text it could not read
    (``TypeError`` for what is neither a string nor an ``int``).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"invalid size {text!r}: a size cannot be negative")
        return text
    if not isinstance(text, str):
        raise TypeError(f"invalid size {text!r}: expected a string such as {_EXAMPLES}")
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: expected a number of bytes with an optional unit ({_EXAMPLES})"
        )
    number, unit = match.groups()
    multiplier = _UNITS.get(unit.lower())
    if multiplier is None:
        raise ValueError(
            f"invalid size {text!r}: unknown unit {unit!r} "
            "(use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, or K, M, G, T)"
        )
    if number.isdigit() and len(number) <= 15:  # whole, and within Decimal's 28 digits
        return int(number) * multiplier
    from decimal import Decimal, InvalidOperation  # only for a fraction, such as 1.5GiB

    try:
        value = Decimal(number) * multiplier
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal numbers
        raise ValueError(f"invalid size {text!r}: expected a number ({_EXAMPLES})") from None
    return int(value)
