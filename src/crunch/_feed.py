"""The scheduler's view of the input: units of about ``n`` items, cut lazily, one at a time.

- ``SequenceFeed``: a list, tuple or range is sliced directly (nothing to wait for).
- ``ThreadFeed``: any other iterable (a generator, stdin) is pulled by a reader thread into a
  bounded buffer, so a slow source never blocks dispatch and dispatch starts before the source
  is finished. The buffer holds at most ``BUFFER`` items: input is consumed only as fast as it
  is processed (bounded memory).
- ``PathFeed``: a ``FilesSource`` (a walk, or paths from stdin): a ``ThreadFeed`` of keys that
  hands out ``PathsUnit``s; no ``Path`` is made in the parent.
- ``JsonlFeed``: a ``JsonlSource`` on a regular file: reads the file once, counting newlines,
  and cuts line-aligned byte ranges (``JsonlUnit``); the workers read and decode the lines.

``take(n)`` returns ``(first_seq, unit, keys)``: ``keys`` are the keys the parent holds, as the
library defines them (the README's "Keys") or as the source gave them (``keyed``: the source
yields pairs), or None when the unit knows its own keys.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Any

from crunch._units import ItemsUnit, JsonlUnit, PathsUnit

BUFFER = 8192  # items read ahead of dispatch: enough to cut big chunks, small in memory

KeyFn = Callable[[Any], Any]


def default_keys(seq0: int, items: list[Any]) -> Sequence[Any]:
    """``str(item)`` for paths, the 0-based input index for anything else (README, "Keys")."""
    # One pass in C over the items' types: this runs for every item of a run.
    if not any(issubclass(kind, PurePath) for kind in set(map(type, items))):
        return range(seq0, seq0 + len(items))
    return [str(x) if isinstance(x, PurePath) else seq0 + i for i, x in enumerate(items)]


Taken = tuple[int, Any, Sequence[Any] | None]


class Feed:
    def __init__(self, keyed: bool, key: KeyFn | None, records: bool = False) -> None:
        self.keyed = keyed
        self.key = key
        self.records = records  # workers write records: they need the keys
        self.taken = 0  # positions handed to the scheduler so far
        self.exhausted = False
        self.error: BaseException | None = None

    def _unit(self, seq0: int, entries: list[Any]) -> Taken:
        if self.keyed:
            keys = [entry[0] for entry in entries]
            items = [entry[1] for entry in entries]
        else:
            items = entries
            keys = [self.key(x) for x in items] if self.key else default_keys(seq0, items)
        return seq0, ItemsUnit(items, keys if self.records else None), keys

    def take(self, n: int) -> Taken | None:
        raise NotImplementedError

    def drop_buffered(self) -> None:
        """Forget what was read but not taken (the run stops; it was counted as not run)."""
        buffered = self.buffered()
        if buffered:
            self.take(buffered)

    def buffered(self) -> int:
        """Items read from the source but not yet taken."""
        raise NotImplementedError

    def remaining(self) -> int | None:
        """Items not yet taken, when that is known (a sized input, or a finished source)."""
        return self.buffered() if self.exhausted else None

    def close(self) -> None:
        return None


class SequenceFeed(Feed):
    def __init__(
        self, items: Sequence[Any], keyed: bool, key: KeyFn | None, records: bool = False
    ) -> None:
        super().__init__(keyed, key, records)
        self.items = items
        self.exhausted = len(items) == 0

    def take(self, n: int) -> Taken | None:
        start = self.taken
        entries = list(self.items[start : start + n])
        if not entries:
            self.exhausted = True
            return None
        self.taken += len(entries)
        self.exhausted = self.taken >= len(self.items)
        return self._unit(start, entries)

    def buffered(self) -> int:
        return len(self.items) - self.taken

    def remaining(self) -> int | None:
        return len(self.items) - self.taken


class ThreadFeed(Feed):
    def __init__(
        self,
        items: Iterable[Any],
        keyed: bool,
        key: KeyFn | None,
        wake: Callable[[], None],
        records: bool = False,
    ) -> None:
        super().__init__(keyed, key, records)
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

    def take(self, n: int) -> Taken | None:
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
        return self._unit(start, entries)

    def buffered(self) -> int:
        return len(self.buffer)

    def remaining(self) -> int | None:
        return len(self.buffer) if self.done else None

    def close(self) -> None:
        self.stopping = True
        self.room.set()


class PathFeed(ThreadFeed):
    """Keys of files (or ``(key, InvalidItem)``) from a reader thread, as ``PathsUnit``s."""

    def _unit(self, seq0: int, entries: list[Any]) -> Taken:
        return seq0, PathsUnit(entries), None


class JsonlFeed(Feed):
    """Line-aligned byte ranges of a regular JSON Lines file, cut to about ``n`` lines each.

    The file is read once, in blocks, only to count newlines (at memory speed): that gives
    each range the number of its first line, so workers can key lines by number. Nothing is
    decoded here. The sequence of a position is its 0-based line number.
    """

    BLOCK = 1 << 20

    def __init__(self, path: str) -> None:
        super().__init__(keyed=True, key=None)
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115 - closed by close() or at the end
        self.size = os.fstat(self.file.fileno()).st_size
        self.offset = 0  # where the next range starts
        self.line = 1  # the number of its first line
        self.buffer = b""  # the file's bytes from ``offset`` on, read ahead
        self.eof = False
        self.bytes_per_line = 0.0

    def take(self, n: int) -> Taken | None:
        if self.exhausted:
            return None
        guess = max(1, int(n * (self.bytes_per_line or 64.0)))
        end = 0
        while True:
            buffer = self.buffer
            if len(buffer) >= guess or self.eof:
                end = buffer.find(b"\n", max(0, min(guess, len(buffer)) - 1)) + 1
                if end or self.eof:
                    break
            self._read(max(self.BLOCK, guess - len(buffer) + 1))
        if not end:  # the last line, without a newline (or nothing at all)
            end = len(self.buffer)
            if not end:
                self._finish()
                return None
        lines = self.buffer.count(b"\n", 0, end)
        if lines > n:  # the guess took too much: cut after the n-th line (first chunks are
            end = self._nth_line_end(n, end, lines)  # one line each, to spread the work)
            lines = n
        elif end == len(self.buffer) and self.eof and not self.buffer.endswith(b"\n"):
            lines += 1
        unit = JsonlUnit(self.path, self.offset, self.offset + end, self.line, lines)
        self.offset += end
        self.line += lines
        self.taken += lines
        self.buffer = self.buffer[end:]
        self.bytes_per_line = self.offset / max(1, self.line - 1)
        if self.eof and not self.buffer:
            self._finish()
        return unit.first_line - 1, unit, None

    def _nth_line_end(self, n: int, end: int, lines: int) -> int:
        """Where the n-th line of the buffer ends, knowing ``lines`` lines end by ``end``."""
        buffer = self.buffer
        if n <= 256:
            position = -1
            for _ in range(n):
                position = buffer.find(b"\n", position + 1)
            return position + 1
        # Many lines: guess in proportion, then walk line by line the rest of the way.
        cut = buffer.find(b"\n", max(0, end * n // lines - 1)) + 1
        have = buffer.count(b"\n", 0, cut)
        while have > n:
            cut = buffer.rfind(b"\n", 0, cut - 1) + 1
            have -= 1
        while have < n:
            cut = buffer.find(b"\n", cut) + 1
            have += 1
        return cut

    def _read(self, size: int) -> None:
        data = self.file.read(size)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def _finish(self) -> None:
        self.exhausted = True
        self.file.close()

    def buffered(self) -> int:
        return 0

    def remaining(self) -> int | None:
        if self.exhausted:
            return 0
        if not self.bytes_per_line:
            return None
        return max(1, int((self.size - self.offset) / self.bytes_per_line))

    def close(self) -> None:
        self.file.close()


def make_feed(
    items: Iterable[Any],
    *,
    keyed: bool,
    key: KeyFn | None,
    wake: Callable[[], None],
    records: bool = False,
) -> Feed:
    from crunch._sources import FilesSource, JsonlSource

    if isinstance(items, JsonlSource):
        if items.regular():
            return JsonlFeed(os.fspath(items.path))
        return ThreadFeed(items.pairs(), True, None, wake, records)
    if isinstance(items, FilesSource):
        return PathFeed(items.keys(), False, None, wake)
    if isinstance(items, (list, tuple, range)):
        return SequenceFeed(items, keyed, key, records)
    return ThreadFeed(items, keyed, key, wake, records)
