"""What the scheduler yields: the results of finished chunks, a batch at a time.

A chunk whose items were all ok at the first try goes out as one batch just as its worker
sent it, with nothing done per item in the parent: ``RecordBatch`` (the command: the records,
encoded by the worker, as one ``bytes``) or ``Batch`` (the library: keys, values and seconds
as three parallel sequences). Everything else is digested item by item into ``Digested``
entries (failures, retries, crashes, the salvage of a lost chunk), which ``in_batches``
gathers into batches again.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any, NamedTuple

from crunch._results import ItemResult

# tuple.__new__ bound to ItemResult: builds a result in C, without NamedTuple._make's Python frame.
_make_result = functools.partial(tuple.__new__, ItemResult)


class Batch:
    """The results of one finished chunk, made as the caller iterates over them.

    Items that all succeeded at the first try travel as three parallel sequences; each
    ``ItemResult`` is built only when iterated, and so lives briefly: a million results made
    at once would each be promoted by the cyclic garbage collector, and each full collection
    would scan them all again. The rest (failures, retried items, ordered output) are ready
    ``ItemResult`` objects in ``others``.
    """

    __slots__ = ("keys", "others", "seconds", "values")

    def __init__(
        self,
        keys: Sequence[Any] = (),
        values: Sequence[Any] = (),
        seconds: Sequence[float] = (),
        others: Sequence[ItemResult] = (),
    ) -> None:
        self.keys = keys
        self.values = values
        self.seconds = seconds
        self.others = others

    def __len__(self) -> int:
        return len(self.values) + len(self.others)

    def __iter__(self) -> Iterator[ItemResult]:
        ok = zip(
            self.keys,
            repeat(True),
            self.values,
            repeat(None),
            self.seconds,
            repeat(1),
            strict=False,
        )
        return itertools.chain(map(_make_result, ok), self.others)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.others if not r.ok)

    def ok_pairs(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) of the items that succeeded at the first try, without ItemResults."""
        return zip(self.keys, self.values, strict=True)


class RecordBatch:
    """The JSON Lines records of finished items, encoded by the workers, as one ``bytes``.

    ``ok`` counts the ok records in ``blob`` (``retried`` of them took more than one attempt);
    ``failures`` are the failed items' results (their records are in ``blob`` too), for the
    summary, the logs and the progress bar.
    """

    __slots__ = ("blob", "failures", "ok", "retried")

    def __init__(
        self, blob: bytes, ok: int, failures: Sequence[ItemResult] = (), retried: int = 0
    ) -> None:
        self.blob = blob
        self.ok = ok
        self.failures = failures
        self.retried = retried

    def __len__(self) -> int:
        return self.ok + len(self.failures)

    @property
    def failed(self) -> int:
        return len(self.failures)


class Digested(NamedTuple):
    """One item's output, digested on its own.

    ``seq`` is its place in the input; ``line`` its JSON Lines record (records mode);
    ``result`` its result (values mode; in records mode only for an item that failed or took
    more than one attempt, for the counts). Neither: a position with nothing to emit (a blank
    line, an item already done).
    """

    seq: int
    line: bytes | None
    result: ItemResult | None


# A piece of output: one item digested on its own, or the whole batch of a chunk.
Piece = Digested | Batch | RecordBatch


def in_batches(pieces: Iterable[Piece], records: bool) -> list[Batch | RecordBatch]:
    """Output in order as batches: each run of ``Digested`` entries gathered into one batch
    (none when they hold nothing to emit), whole batches as they are."""
    out: list[Batch | RecordBatch] = []
    entries: list[Digested] = []
    for piece in pieces:
        if isinstance(piece, Digested):
            entries.append(piece)
            continue
        if entries:
            _gather(entries, records, out)
            entries = []
        out.append(piece)
    if entries:
        _gather(entries, records, out)
    return out


def _gather(entries: list[Digested], records: bool, out: list[Batch | RecordBatch]) -> None:
    lines: list[bytes] = []
    results: list[ItemResult] = []
    failures: list[ItemResult] = []
    ok = retried = 0
    for _seq, line, result in entries:
        if line is not None:
            lines.append(line)
            if result is None:
                ok += 1
            elif result.ok:  # took more than one attempt
                ok += 1
                retried += 1
            else:
                failures.append(result)
        elif result is not None:
            results.append(result)
    if not lines and not results:
        return
    if records:
        out.append(RecordBatch(b"".join(lines), ok, failures, retried))
    else:
        out.append(Batch(others=results))
