"""What runs again: positions of earlier chunks, lost with their worker or failed and retried.

A ``Chunk`` is a unit in flight with what the parent knows of its positions. A position that
must run again is a ``Redo``: it points into its earlier chunk, and ``RedoQueue.take`` makes
the next chunk of them (a subset of that chunk's unit). Two ways lead back in:

- *rerun* (``RedoQueue.rerun``): the chunk did not come back whole (see ``Lost``) and the
  position is not to blame; it is queued at once. A *suspect* (its chunk was lost in a worker
  death nobody could be blamed for) and an *isolated* position (one of its chunk-mates is at
  fault, not known which) run in a chunk of their own, so the next death names it; a suspect
  that was alone in its chunk for ``SUSPECT_LIMIT`` unexplained deaths is the culprit.
- *retry* (``RedoQueue.retry``): the item failed with an error ``retry_on`` names, and has
  tries left; it waits an exponential backoff with jitter (``backoff_delay``), due-time first,
  and ``release`` queues it once due.
"""

from __future__ import annotations

import collections
import heapq
import random
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from crunch._failures import ItemFailure
from crunch._retry import retryable

# An item that was in flight in this many unexplained worker deaths, alone, is the culprit.
SUSPECT_LIMIT = 3
MAX_BACKOFF = 30.0  # seconds


class Chunk:
    """A unit in flight, and what the parent knows of its positions.

    ``seqs`` gives each position's place in the input (for ``ordered``): a ``range`` for a
    chunk fresh from the input, whose positions follow each other. ``keys`` are the keys the
    parent holds (None when the unit knows its own); ``attempts`` and ``suspicion`` are set for
    reruns and retries, one entry per position.
    """

    __slots__ = ("attempts", "id", "keys", "seqs", "suspicion", "unit")

    def __init__(
        self,
        chunk_id: int,
        unit: Any,
        seqs: Sequence[int],
        keys: Sequence[Any] | None,
        attempts: list[int] | None = None,
        suspicion: list[int] | None = None,
    ) -> None:
        self.id = chunk_id
        self.unit = unit
        self.seqs = seqs
        self.keys = keys
        self.attempts = attempts
        self.suspicion = suspicion

    def tries(self, position: int) -> int:
        return self.attempts[position] if self.attempts else 1


class Redo:
    """One position of an earlier chunk waiting to run again."""

    __slots__ = ("alone", "attempts", "chunk", "position", "suspicion")

    def __init__(
        self, chunk: Chunk, position: int, attempts: int, suspicion: int, alone: bool = False
    ) -> None:
        self.chunk = chunk
        self.position = position
        self.attempts = attempts
        self.suspicion = suspicion  # unexplained worker deaths it was in flight for
        self.alone = alone  # runs in a chunk of its own (see Lost.isolate)


class _Due(NamedTuple):
    """A retry backing off, in the heap: due first, then in input order."""

    at: float  # time.monotonic() it is due
    seq: int
    order: int  # ties broken in the order retried: never compares the Redo
    redo: Redo


def backoff_delay(tries: int, backoff: float) -> float:
    """Seconds to wait before the next try of an item that failed ``tries`` times: exponential
    from ``backoff``, at most ``MAX_BACKOFF``, with jitter (x0.5 to x1.5) so that items that
    failed together do not all come back together."""
    delay = min(MAX_BACKOFF, backoff * 2 ** (tries - 1))
    return delay * random.uniform(0.5, 1.5)


class RedoQueue:
    """The positions waiting to run again: queued now (``ready``), or backing off."""

    __slots__ = ("backing_off", "backoff", "ready", "retries", "retry_on", "tiebreak", "told")

    def __init__(self, retries: int, retry_on: Iterable[str], backoff: float) -> None:
        self.retries = retries
        self.retry_on = frozenset(retry_on)
        self.backoff = backoff
        self.ready: collections.deque[Redo] = collections.deque()  # to run next, in order
        self.backing_off: list[_Due] = []  # a heap
        self.tiebreak = 0
        self.told = 0.0  # the due time ``release`` last returned

    def __len__(self) -> int:
        """Positions waiting, ready or backing off."""
        return len(self.ready) + len(self.backing_off)

    # ------------------------------------------------------------------ reruns
    def rerun(self, chunk: Chunk, position: int, *, suspect: bool, alone: bool) -> int:
        """Queue ``position`` of a lost ``chunk`` to run again, and return 0; ``suspect``: lost
        in an unexplained death, ``alone``: to run in a chunk of its own. But a suspect that
        was alone in ``SUSPECT_LIMIT`` such deaths is not queued: return that count."""
        suspicion = (chunk.suspicion[position] if chunk.suspicion else 0) + suspect
        if suspect and len(chunk.unit) == 1 and suspicion >= SUSPECT_LIMIT:
            return suspicion
        self.ready.append(Redo(chunk, position, chunk.tries(position), suspicion, alone))
        return 0

    def take(self, chunk_id: int, limit: int) -> Chunk:
        """The next chunk to run again, from ``ready``: a suspect or isolated position alone,
        so the next death names it; else up to ``limit`` positions of the same earlier chunk."""
        ready = self.ready
        first = ready.popleft()
        batch = [first]
        if not (first.suspicion or first.alone):
            while (
                ready
                and len(batch) < limit
                and not ready[0].suspicion
                and not ready[0].alone
                and ready[0].chunk is first.chunk
            ):
                batch.append(ready.popleft())
        source = first.chunk
        positions = [r.position for r in batch]
        keys = source.keys
        return Chunk(
            chunk_id,
            source.unit.subset(positions),
            [source.seqs[p] for p in positions],
            None if keys is None else [keys[p] for p in positions],
            [r.attempts for r in batch],
            [r.suspicion for r in batch],
        )

    # ------------------------------------------------------------------ retries
    def wants_retry(self, failure: ItemFailure, tries: int) -> bool:
        """An error that ``retry_on`` names, with tries left (``retries`` more after the first)."""
        return (
            failure.kind == "error"
            and tries <= self.retries
            and retryable(failure.names, self.retry_on)
        )

    def retry(self, chunk: Chunk, position: int, tries: int, now: float) -> float:
        """Back off before try ``tries + 1`` of ``position`` (it failed at ``now``); return
        when it is due."""
        due = now + backoff_delay(tries, self.backoff)
        self.tiebreak += 1
        entry = _Due(due, chunk.seqs[position], self.tiebreak, Redo(chunk, position, tries + 1, 0))
        heapq.heappush(self.backing_off, entry)
        return due

    def release(self, now: float) -> float | None:
        """Queue the retries due by ``now``; return when the next one is due, unless that is
        the time returned last."""
        heap = self.backing_off
        while heap and heap[0].at <= now:
            self.ready.append(heapq.heappop(heap).redo)
        if heap and heap[0].at != self.told:
            self.told = heap[0].at
            return self.told
        return None

    # ------------------------------------------------------------------ stopping
    def drop(self) -> int:
        """Forget every position waiting (the run stops before they start); how many."""
        dropped = len(self)
        self.ready.clear()
        self.backing_off.clear()
        return dropped
