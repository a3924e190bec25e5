"""The ``stats`` task (the default): bytes, lines, words and SHA-256 of a file.

``lines`` counts ``\\n`` bytes (as ``wc -l``); ``words`` counts runs of bytes separated by ASCII
whitespace (space, ``\\t``, ``\\n``, ``\\r``, ``\\v``, ``\\f``), which is ``len(data.split())`` in
Python; ``sha256`` is the hex digest of the file's bytes. The file is streamed in blocks, so any
size runs in constant memory. No combiner: a SHA-256 cannot be computed from pieces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from crunch.tasks import Task

BLOCK_SIZE = 1 << 20

_WHITESPACE = b" \t\n\r\x0b\x0c"
# Every whitespace byte becomes b" " and every other byte b"x": a word then starts at each
# b" x" (plus one when the block starts with b"x"), counted at C speed with bytes.count.
_WORD_TABLE = bytes(0x20 if i in _WHITESPACE else 0x78 for i in range(256))


def stats(item: Path | str) -> dict[str, Any]:
    """Return ``{"bytes", "lines", "words", "sha256"}`` for the file ``item``."""
    return file_stats(item)


def file_stats(path: Path | str, block_size: int = BLOCK_SIZE) -> dict[str, Any]:
    """:func:`stats`, reading ``block_size`` bytes at a time (the answer does not depend on it)."""
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size!r}")
    size = lines = words = 0
    digest = hashlib.sha256()
    in_word = False  # whether the previous block ended inside a word
    with open(path, "rb") as f:
        while block := f.read(block_size):
            size += len(block)
            lines += block.count(b"\n")
            digest.update(block)
            marks = block.translate(_WORD_TABLE)
            words += marks.count(b" x")
            if marks[0] == 0x78 and not in_word:
                words += 1
            in_word = marks[-1] == 0x78
    return {"bytes": size, "lines": lines, "words": words, "sha256": digest.hexdigest()}


TASK = Task(
    name="stats",
    summary="bytes, lines, words and SHA-256 of each file (like wc plus sha256sum)",
    fn=stats,
)
