"""The slot table: where each process worker says what it is doing, for the parent to read.

A flat shared array of doubles (``multiprocessing.RawArray("d")``), written by the workers
(``crunch._worker``) and read by the parent (``crunch._backends.process``) without a lock, one
row per worker after one cell for the whole pool:

    table[HALT]                  nonzero: no worker starts another item
    row = slot_offset(slot)      the row of worker ``slot``; its columns:
      row + PID                  the worker's pid (0: the row is free)
      row + CHUNK                the chunk it runs (IDLE between chunks, INITIALIZING)
      row + POSITION             the position it runs in that chunk (LOADING, SENDING)
      row + STARTED              when that position started (time.monotonic)

A worker's death is attributed from its row: the item at POSITION of CHUNK (a crash), the
loading or sending of CHUNK, or the user's initializer.
"""

from __future__ import annotations

HALT = 0
SLOT_BASE = 1  # the first row starts after the HALT cell
SLOT_WIDTH = 4  # the columns of a row:
PID = 0
CHUNK = 1
POSITION = 2
STARTED = 3

IDLE = -1  # CHUNK between chunks
INITIALIZING = -2  # CHUNK while the worker runs the user's initializer
LOADING = -1  # POSITION while the chunk's items are being unpickled
SENDING = -2  # POSITION while the chunk's outcome is being pickled


def slot_offset(slot: int) -> int:
    """Where the row of worker ``slot`` starts."""
    return SLOT_BASE + slot * SLOT_WIDTH


def table_size(rows: int) -> int:
    """The cells of a table for ``rows`` workers."""
    return SLOT_BASE + SLOT_WIDTH * rows
