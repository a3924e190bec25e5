"""The ``wordfreq`` task: word count and the most frequent words of a text file.

Words are the ``\\w+`` runs (Unicode-aware ``re``) of the file decoded as UTF-8, each run then
lowercased with ``str.lower()``; the runs are found in the text as written, before lowercasing.
Decoding is strict: invalid UTF-8 fails with ``UnicodeDecodeError``, whose message gives the byte
offset of the line where it is (the same split or not). The value is
``{"words": TOTAL, "top": [[word, count], ...]}`` with the ``-O top=N`` (default 20) most
frequent words, most frequent first, ties ordered by word; ``top=None`` lists every word.

Combiner: a state is ``(total, Counter)``; ``merge`` adds them, ``finish`` takes the top N, so a
split file or ``--reduce`` over a corpus gives the exact answer. ``merge`` may update one of its
arguments in place and return it (merging a small state into a large one costs only the small
one's size): a caller must not use a state again after merging it.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from pathlib import Path
from typing import Any

from crunch.tasks import Combiner, Task
from crunch.tasks._ranges import iter_unit_blocks

_WORD = re.compile(r"\w+")

State = tuple[int, Counter[str]]


def _check_top(top: object) -> None:
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise ValueError(f"top must be a non-negative integer (or None for all), got {top!r}")


def unit(
    path: Path | str, start: int = 0, end: int | None = None, *, top: int | None = 20
) -> State:
    """The ``(total, Counter)`` of the lines of ``path`` that start in ``[start, end)``."""
    _check_top(top)
    raw: Counter[str] = Counter()
    for offset, block in iter_unit_blocks(path, start, end):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _located(exc, offset, block) from None
        raw.update(_WORD.findall(text))
    counts: Counter[str] = Counter()
    for word, count in raw.items():
        counts[word.lower()] += count
    return sum(raw.values()), counts


def _located(exc: UnicodeDecodeError, offset: int, block: bytes) -> UnicodeDecodeError:
    """The same error, reported on the line it is in, with that line's offset in the file."""
    line_start = block.rfind(b"\n", 0, exc.start) + 1
    line_end = block.find(b"\n", exc.start)
    line = block[line_start : len(block) if line_end < 0 else line_end + 1]
    return UnicodeDecodeError(
        exc.encoding,
        line,
        exc.start - line_start,
        exc.end - line_start,
        f"{exc.reason} (in the line that starts at byte {offset + line_start} of the file)",
    )


def merge(a: State, b: State) -> State:
    """Add two states (may reuse the larger one's Counter; see the module docstring)."""
    (total_a, counts_a), (total_b, counts_b) = a, b
    if len(counts_a) < len(counts_b):
        counts_a, counts_b = counts_b, counts_a
    counts_a.update(counts_b)
    return total_a + total_b, counts_a


def _rank(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def finish(state: State, *, top: int | None = 20) -> dict[str, Any]:
    """``{"words": total, "top": [[word, count], ...]}``: most frequent first, ties by word."""
    _check_top(top)
    total, counts = state
    if top is None:
        ranked = sorted(counts.items(), key=_rank)
    else:
        ranked = heapq.nsmallest(top, counts.items(), key=_rank)
    return {"words": total, "top": [[word, count] for word, count in ranked]}


def wordfreq(item: Path | str, *, top: int | None = 20) -> dict[str, Any]:
    """Return ``{"words", "top"}`` for the text file ``item`` (see the module docstring)."""
    return finish(unit(item, 0, None, top=top), top=top)


TASK = Task(
    name="wordfreq",
    summary="word count and the top N words of UTF-8 text (-O top=N, default 20)",
    fn=wordfreq,
    combiner=Combiner(unit=unit, merge=merge, finish=finish, splits=True),
)
