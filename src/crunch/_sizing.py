"""Automatic chunk sizing: chunk size follows the measured cost per item.

Each chunk costs a fixed overhead (a round trip to a worker, pickling, a wake-up of the
scheduler: ~0.1-0.3 ms in process mode), so chunks should be long enough to hide it; but a long
chunk near the end of the input leaves workers idle while one finishes (tail imbalance). The
target duration therefore grows with the run: 2 % of the elapsed time, kept between
``MIN_TARGET`` and ``MAX_TARGET``, so the tail can never cost more than a few percent however long
the run, and 10 us items and 100 ms items both run near the machine's limit without N being
known. Once the input is exhausted, chunks shrink further (guided scheduling): the remaining
items are spread over all lanes.
"""

from __future__ import annotations

import math

MIN_TARGET = 0.025  # seconds; ~30x the parent's cost per chunk in process mode (0.5-1 ms of CPU)
MAX_TARGET = 0.2  # seconds; bounds items at risk in a crash and the tail at the end
TAIL_SHARE = 0.02  # the target as a share of the time elapsed so far
MAX_CHUNK = 100_000  # items; bounds the memory of one chunk whatever the cost


class ChunkSizer:
    """Chooses the next chunk's size from an exponential moving average of item cost."""

    def __init__(self, fixed: int | None, lanes: int, min_target: float = MIN_TARGET) -> None:
        self.fixed = fixed
        self.lanes = lanes
        self.min_target = min_target
        self.cost: float | None = None  # seconds per item

    def observe(self, items: int, seconds: float) -> None:
        if items <= 0:
            return
        cost = max(seconds / items, 1e-7)
        self.cost = cost if self.cost is None else 0.7 * self.cost + 0.3 * cost

    def size(self, elapsed: float, remaining: int | None) -> int:
        """Items for the next chunk; ``remaining`` is known once the input is exhausted."""
        if self.fixed is not None:
            return self.fixed
        if self.cost is None:
            size = 1  # nothing measured yet: learn the cost from small chunks first
        else:
            target = min(MAX_TARGET, max(self.min_target, TAIL_SHARE * elapsed))
            size = max(1, min(MAX_CHUNK, int(target / self.cost)))
        if remaining is not None:
            size = min(size, max(1, math.ceil(remaining / (2 * self.lanes))))
        return size
