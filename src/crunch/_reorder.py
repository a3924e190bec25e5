"""Ordered output (``ordered=True``, ``--ordered``): results held until all earlier ones are out.

Every piece of output enters with the input sequence numbers it covers, ``[seq, seq + span)``:
a chunk that finished whole (one batch, as many positions as it ran) or one item digested on
its own (span 1). ``put`` holds it, or, when it is the one at the next sequence number, hands it
back with every piece held right behind it, up to the first gap. So a chunk that arrives whole
and in turn goes straight out as the batch it came in, and everything else waits for what
comes before it: one mechanism for both.

``len()`` counts the positions held, which the scheduler's window bounds. At the end of a run
``drain`` hands back what is still held, in order, past the gaps (items that never ran: the
run was halted or stopped).
"""

from __future__ import annotations

from typing import Generic, TypeVar

Piece = TypeVar("Piece")


class Reorder(Generic[Piece]):
    """Pieces of output by sequence number; out once all earlier ones are (module docstring)."""

    __slots__ = ("held", "next_seq", "positions")

    def __init__(self) -> None:
        self.held: dict[int, tuple[int, Piece]] = {}  # first seq -> (span, piece)
        self.next_seq = 0  # the first position not out yet
        self.positions = 0  # positions held: the sum of the spans

    def __len__(self) -> int:
        return self.positions

    def put(self, seq: int, piece: Piece, span: int = 1) -> list[Piece]:
        """Take ``piece``, which covers positions ``[seq, seq + span)`` (``span`` >= 1), and
        return the pieces now in turn, in order: none while an earlier position is missing;
        else this one, and those held right behind it."""
        if seq != self.next_seq:
            self.held[seq] = (span, piece)
            self.positions += span
            return []
        held = self.held
        seq += span
        pieces = [piece]
        while seq in held:
            span, piece = held.pop(seq)
            pieces.append(piece)
            self.positions -= span
            seq += span
        self.next_seq = seq
        return pieces

    def drain(self) -> list[Piece]:
        """Everything still held, in order, past the gaps; the buffer is left empty."""
        held = self.held
        pieces = [held[seq][1] for seq in sorted(held)]
        held.clear()
        self.positions = 0
        return pieces
