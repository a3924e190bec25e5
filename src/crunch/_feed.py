"""The scheduler's view of the input: numbered items pulled lazily, a slice at a time.

- ``SequenceFeed``: a list, tuple or range is sliced directly (nothing to wait for).
- ``ThreadFeed``: any other iterable (a generator, a directory walk, stdin) is pulled by a
  reader thread into a bounded buffer, so a slow source never blocks dispatch and dispatch
  starts before the source is finished. The buffer holds at most ``BUFFER`` items: input is
  consumed only as fast as it is processed (bounded memory).

``take(n)`` returns ``(first_seq, keys, items)`` for up to ``n`` items, keys as the library
defines them (README, "The library": Keys) or as the source gave them (``keyed``: the source
yields pairs).
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Any

BUFFER = 8192  # items read ahead of dispatch: enough to cut big chunks, small in memory

KeyFn = Callable[[Any], Any]


def default_keys(seq0: int, items: list[Any]) -> Sequence[Any]:
    """``str(item)`` for paths, the 0-based input index for anything else (README: Keys)."""
    # One pass in C over the items' types: this runs for every item of a run.
    if not any(issubclass(kind, PurePath) for kind in set(map(type, items))):
        return range(seq0, seq0 + len(items))
    return [str(x) if isinstance(x, PurePath) else seq0 + i for i, x in enumerate(items)]


class Feed:
    def __init__(self, keyed: bool, key: KeyFn | None) -> None:
        self.keyed = keyed
        self.key = key
        self.taken = 0  # items handed to the scheduler so far
        self.exhausted = False
        self.error: BaseException | None = None

    def _split(self, seq0: int, entries: list[Any]) -> tuple[int, Sequence[Any], list[Any]]:
        if self.keyed:
            keys = [entry[0] for entry in entries]
            items = [entry[1] for entry in entries]
        else:
            items = entries
            keys = [self.key(x) for x in items] if self.key else default_keys(seq0, items)
        return seq0, keys, items

    def take(self, n: int) -> tuple[int, Sequence[Any], list[Any]] | None:
        raise NotImplementedError

    def buffered(self) -> int:
        """Items read from the source but not yet taken."""
        raise NotImplementedError

    def remaining(self) -> int | None:
        """Items not yet taken, when that is known (a sized input, or a finished source)."""
        return self.buffered() if self.exhausted else None

    def close(self) -> None:
        return None


class SequenceFeed(Feed):
    def __init__(self, items: Sequence[Any], keyed: bool, key: KeyFn | None) -> None:
        super().__init__(keyed, key)
        self.items = items
        self.exhausted = len(items) == 0

    def take(self, n: int) -> tuple[int, Sequence[Any], list[Any]] | None:
        start = self.taken
        entries = list(self.items[start : start + n])
        if not entries:
            self.exhausted = True
            return None
        self.taken += len(entries)
        self.exhausted = self.taken >= len(self.items)
        return self._split(start, entries)

    def buffered(self) -> int:
        return len(self.items) - self.taken

    def remaining(self) -> int | None:
        return len(self.items) - self.taken


class ThreadFeed(Feed):
    def __init__(
        self, items: Iterable[Any], keyed: bool, key: KeyFn | None, wake: Callable[[], None]
    ) -> None:
        super().__init__(keyed, key)
        self.source: Iterator[Any] = iter(items)
        self.buffer: collections.deque[Any] = collections.deque()
        self.room = threading.Event()
        self.room.set()
        self.wake = wake
        self.want = True  # the scheduler waits for items: wake it on the next one
        self.done = False  # the reader finished (end of input or error)
        self.stopping = False
        self.thread = threading.Thread(target=self._read, name="crunch-input", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer, room = self.buffer, self.room
        try:
            for entry in self.source:
                buffer.append(entry)
                if self.want:
                    self.want = False
                    self.wake()
                if len(buffer) >= BUFFER:
                    room.clear()
                    if len(buffer) >= BUFFER:
                        room.wait()
                if self.stopping:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler, raised there
            self.error = exc
        finally:
            self.done = True
            self.wake()

    def take(self, n: int) -> tuple[int, Sequence[Any], list[Any]] | None:
        buffer = self.buffer
        count = min(n, len(buffer))
        if count == 0:
            self.exhausted = self.done and not buffer
            self.want = not self.exhausted
            # The reader may have appended between the check and ``want``: look once more.
            if not buffer:
                return None
            count = min(n, len(buffer))
        pop = buffer.popleft
        entries = [pop() for _ in itertools.repeat(None, count)]
        if len(buffer) < BUFFER // 2:
            self.room.set()
        start = self.taken
        self.taken += count
        self.exhausted = self.done and not buffer
        return self._split(start, entries)

    def buffered(self) -> int:
        return len(self.buffer)

    def remaining(self) -> int | None:
        return len(self.buffer) if self.done else None

    def close(self) -> None:
        self.stopping = True
        self.room.set()


def make_feed(
    items: Iterable[Any], *, keyed: bool, key: KeyFn | None, wake: Callable[[], None]
) -> Feed:
    if isinstance(items, (list, tuple, range)):
        return SequenceFeed(items, keyed, key)
    return ThreadFeed(items, keyed, key, wake)
