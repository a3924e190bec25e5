"""The ordered-output buffer and the batches it feeds (pure Python, no run).

``Reorder`` takes pieces of output by the input positions they cover (a whole chunk's batch,
or one item) and hands them back in input order; ``in_batches`` turns what comes out into the
batches the scheduler yields.
"""

from __future__ import annotations

import itertools
import random

from crunch._batches import Batch, Digested, RecordBatch, in_batches
from crunch._failures import ItemFailure
from crunch._reorder import Reorder
from crunch._results import ItemResult


def _flat(buffer: Reorder[str], arrivals: list[int]) -> list[str]:
    out: list[str] = []
    for seq in arrivals:
        got = buffer.put(seq, f"item {seq}")
        out += got
        assert all(int(piece.split()[1]) < buffer.next_seq for piece in got)
    return out


def test_items_in_any_arrival_order_come_out_in_sequence_order() -> None:
    for arrivals in itertools.permutations(range(5)):
        buffer: Reorder[str] = Reorder()
        assert _flat(buffer, list(arrivals)) == [f"item {i}" for i in range(5)]
        assert len(buffer) == 0
    shuffled = list(range(1000))
    random.Random(14).shuffle(shuffled)
    buffer = Reorder()
    assert _flat(buffer, shuffled) == [f"item {i}" for i in range(1000)]
    assert (len(buffer), buffer.next_seq, buffer.held) == (0, 1000, {})


def test_nothing_comes_out_while_an_earlier_position_is_missing() -> None:
    buffer: Reorder[str] = Reorder()
    assert buffer.put(1, "b") == []
    assert buffer.put(2, "c") == []
    assert len(buffer) == 2
    assert buffer.put(0, "a") == ["a", "b", "c"]
    assert len(buffer) == 0


def test_whole_chunks_in_turn_pass_straight_through() -> None:
    buffer: Reorder[object] = Reorder()
    first, second = object(), object()
    out = buffer.put(0, first, 100)
    assert out == [first]
    assert out[0] is first  # the very batch, not a copy
    assert buffer.put(100, second, 50)[0] is second
    assert (len(buffer), buffer.next_seq) == (0, 150)


def test_a_whole_chunk_out_of_turn_waits_whole_and_counts_its_positions() -> None:
    buffer: Reorder[str] = Reorder()
    assert buffer.put(10, "chunk 10-19", 10) == []
    assert buffer.put(25, "item 25") == []
    assert len(buffer) == 11  # positions held, the window's measure
    assert buffer.put(0, "chunk 0-9", 10) == ["chunk 0-9", "chunk 10-19"]
    assert len(buffer) == 1
    assert buffer.put(20, "chunk 20-24", 5) == ["chunk 20-24", "item 25"]
    assert (len(buffer), buffer.next_seq) == (0, 26)


def test_drain_hands_back_the_rest_in_order_past_skipped_seqs() -> None:
    """Positions that never ran (a halted run) leave gaps: the rest still goes out in order."""
    buffer: Reorder[str] = Reorder()
    assert buffer.put(0, "item 0") == ["item 0"]
    for seq, piece, span in [(9, "item 9", 1), (4, "chunk 4-6", 3), (2, "item 2", 1)]:
        assert buffer.put(seq, piece, span) == []
    assert buffer.drain() == ["item 2", "chunk 4-6", "item 9"]
    assert (len(buffer), buffer.held) == (0, {})
    assert buffer.drain() == []


# ------------------------------------------------------------------ batches from the pieces
def _ok(key: int, tries: int = 1) -> ItemResult:
    return ItemResult(key, True, key * key, None, 0.1, tries)


def _failed(key: int) -> ItemResult:
    failure = ItemFailure("error", "ValueError", "bad", "", ("ValueError",))
    return ItemResult(key, False, None, failure.public(1), 0.1, 1)


def test_in_batches_gathers_runs_of_items_and_keeps_whole_batches_as_they_are() -> None:
    whole = Batch([10, 11], [100, 121], [0.1, 0.1])
    pieces = [
        Digested(8, None, _ok(8)),
        Digested(9, None, None),  # a position with nothing to emit
        whole,
        Digested(12, None, _failed(12)),
    ]
    out = in_batches(pieces, records=False)
    assert len(out) == 3
    assert [r.key for r in out[0]] == [8]
    assert out[1] is whole
    assert [(r.key, r.ok) for r in out[2]] == [(12, False)]


def test_in_batches_records_mode_counts_ok_retried_and_failed() -> None:
    pieces = [
        Digested(0, b'{"k":0}\n', None),  # ok at the first try
        Digested(1, b'{"k":1}\n', _ok(1, tries=2)),  # ok after a retry
        Digested(2, b'{"k":2}\n', _failed(2)),
        Digested(3, None, None),
    ]
    (batch,) = in_batches(pieces, records=True)
    assert isinstance(batch, RecordBatch)
    assert batch.blob == b'{"k":0}\n{"k":1}\n{"k":2}\n'
    assert (batch.ok, batch.retried, batch.failed, len(batch)) == (2, 1, 1, 3)


def test_in_batches_of_nothing_to_emit_is_no_batch() -> None:
    assert in_batches([Digested(0, None, None), Digested(1, None, None)], records=True) == []
    assert in_batches([], records=False) == []
