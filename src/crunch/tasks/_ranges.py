"""Line-aligned byte ranges of a file, for tasks that split large files into units.

A large file is cut into byte ranges with :func:`split_ranges` (no file reading needed). A unit
owns the lines that *start* at a byte offset in its range ``[start, end)`` (``end=None``: to the
end of the file), so a line longer than the split size belongs wholly to the range its first
byte is in, and the units of a file together hold every line exactly once, in order.

A unit reads only its own range with :func:`iter_unit_blocks` (large blocks made of whole lines,
for tasks that work on many lines at once) or :func:`iter_unit_lines` (one line at a time, with
its newline). A unit counts the lines it owns (:func:`count_lines`); merging two states can then
shift the second's line numbers by the first's line count so they stay the file's own.

A *line* is a run of bytes ending with ``\\n``, or the final run of a file that does not end with
``\\n``. An empty file has no lines; ``b"a\\nb"`` has two; ``\\r`` is an ordinary byte.

"""

from __future__ import annotations

from collections.abc import Iterator
from io import FileIO
from os import PathLike

BLOCK_SIZE = 1 << 20
"""Bytes read at a time (a block handed out may be longer when a line is)."""


def split_ranges(size: int, split_size: int) -> list[tuple[int, int | None]]:
    """Cut a file of ``size`` bytes into byte ranges of ``split_size`` bytes.

    The ranges are ``[(0, s), (s, 2s), ..., (k*s, None)]``: consecutive, covering the file, the
    last one open-ended (``None``: to the end of the file, whatever its size by then). A file no
    larger than ``split_size`` (an empty one included) is one range, ``[(0, None)]``. The ranges
    are plain offsets; each unit finds its own line boundaries with :func:`iter_unit_blocks`.
    """
    if split_size <= 0:
        raise ValueError(f"split size must be a positive number of bytes, got {split_size!r}")
    if size < 0:
        raise ValueError(f"file size cannot be negative, got {size!r}")
    if size <= split_size:
        return [(0, None)]
    count = -(-size // split_size)  # ceiling division
    ranges: list[tuple[int, int | None]] = [
        (i * split_size, (i + 1) * split_size) for i in range(count - 1)
    ]
    ranges.append(((count - 1) * split_size, None))
    return ranges


def _first_line_start(f: FileIO, start: int, block_size: int) -> int | None:
    """Offset of the first line start at or after ``start``; ``None`` when there is none."""
    if start <= 0:
        return 0
    # A line starts at ``start`` exactly when the byte before it is a newline, so look for the
    # first newline at offset ``start - 1`` or later; the line after it is the first one we own.
    offset = start - 1
    f.seek(offset)
    while True:
        chunk = f.read(block_size)
        if not chunk:
            return None
        i = chunk.find(b"\n")
        if i >= 0:
            return offset + i + 1
        offset += len(chunk)


def iter_unit_blocks(
    path: str | PathLike[str],
    start: int = 0,
    end: int | None = None,
    *,
    block_size: int = BLOCK_SIZE,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, block)`` pairs holding the lines that start in ``[start, end)``.

    Each block is whole lines (it ends with ``\\n``, except the file's last line when the file
    does not end with one) and ``offset`` is the file offset of its first byte. Blocks are about
    ``block_size`` bytes; a block is longer when a single line is. Together the blocks of the
    units of :func:`split_ranges` are the whole file, each byte once, in order.
    """
    if block_size <= 0:
        raise ValueError(f"block size must be positive, got {block_size!r}")
    if end is not None and end <= start:
        return
    with open(path, "rb", buffering=0) as f:
        begin = _first_line_start(f, start, block_size)
        if begin is None or (end is not None and begin >= end):
            return
        f.seek(begin)
        line_start = begin  # file offset of the first byte not yet handed out (a line start)
        chunk_offset = begin  # file offset of the next chunk read
        pending: list[bytes] = []  # the start of a line that goes on in the next chunk
        while end is None or line_start < end:
            chunk = f.read(block_size)
            if not chunk:
                if pending:
                    yield line_start, b"".join(pending)
                return
            if end is not None and chunk_offset + len(chunk) >= end:
                # This chunk holds the byte at ``end - 1`` or lies past it: the last line we own
                # is the one holding that byte, and it ends at the first newline from there.
                cut = chunk.find(b"\n", max(end - 1 - chunk_offset, 0))
                if cut >= 0:
                    pending.append(chunk[: cut + 1])
                    yield line_start, b"".join(pending)
                    return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pending.append(chunk)
            else:
                pending.append(chunk[: cut + 1])
                yield line_start, b"".join(pending)
                line_start = chunk_offset + cut + 1
                pending = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
            chunk_offset += len(chunk)


def iter_unit_lines(
    path: str | PathLike[str],
    start: int = 0,
    end: int | None = None,
    *,
    block_size: int = BLOCK_SIZE,
) -> Iterator[bytes]:
    """Yield the lines (bytes, each with its ``\\n``) that start at an offset in ``[start, end)``.

    ``end=None`` reads to the end of the file. The file's last line has no ``\\n`` when the file
    does not end with one. The file is read in blocks of ``block_size`` bytes.
    """
    for _, block in iter_unit_blocks(path, start, end, block_size=block_size):
        lines = block.split(b"\n")
        last = lines.pop()
        for line in lines:
            yield line + b"\n"
        if last:
            yield last


def count_lines(data: bytes) -> int:
    """Number of lines in ``data``: its newlines, plus one for a final line without a newline."""
    if not data:
        return 0
    return data.count(b"\n") + (not data.endswith(b"\n"))
