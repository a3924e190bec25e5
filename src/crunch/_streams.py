"""The command's standard streams: standard output carries records and nothing else.

Two steps (README, "Output"):

- ``guard_standard_fds()``, the first thing the ``crunch`` executable does: a closed file
  descriptor 0, 1 or 2 (``crunch ... >&-``) is opened on ``/dev/null``, so that no file crunch
  opens later can land on it (records written into a log, task output into the records file).
  Which of them were closed is remembered: ``stdout_closed()``.
- ``records_only()``, around a run: the records get a private duplicate of file descriptor 1,
  and descriptor 1 itself (and ``sys.stdout``) is pointed at standard error. So whatever a task
  or its ``--init`` writes to standard output (``print``, ``os.write(1, ...)``, C code, child
  processes, and worker processes, which inherit descriptor 1 when they start) lands on
  standard error. Everything is put back when the run ends.
- ``stdin_binary()``: standard input for the input reader thread, which may never return.

When ``sys.stdout`` is not the process's own descriptor 1 (click's test runner, a notebook),
only ``sys.stdout`` is swapped: the records go to the object that was ``sys.stdout``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

TYPE_CHECKING = False  # kept free of typing: this runs before the command's first signal handler
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import BinaryIO

_closed_at_start: set[int] = set()


def guard_standard_fds() -> None:
    """Open ``/dev/null`` on each closed standard descriptor (0, 1, 2) and note which they were."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # the lowest free descriptor is ``fd`` itself, unless it was not
                os.dup2(null, fd)
                os.close(null)
            _closed_at_start.add(fd)
    if sys.stdin is None:
        sys.stdin = _text(0, "rb")
    if sys.stdout is None:
        sys.stdout = _text(1, "wb")
    if sys.stderr is None:
        sys.stderr = _text(2, "wb")


def _text(fd: int, mode: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        open(fd, mode, closefd=False),  # lives as long as the process
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def stdout_closed() -> bool:
    """Whether standard output was closed when crunch started (so records cannot go there)."""
    return 1 in _closed_at_start or sys.stdout is None


@contextlib.contextmanager
def records_only() -> Generator[BinaryIO | None]:
    """Yield the stream for records; meanwhile anything else written to stdout goes to stderr.

    Yields ``None`` when standard output was closed at start (there is nowhere for records).
    """
    stdout, closed = sys.stdout, stdout_closed()
    with contextlib.ExitStack() as stack:
        if _fileno(stdout) == 1:
            sink: BinaryIO | None = stack.enter_context(_fd1_to_stderr(stdout))
        else:
            sink = getattr(stdout, "buffer", None)
        sys.stdout = sys.stderr
        try:
            yield None if closed else sink
        finally:
            sys.stdout = stdout


@contextlib.contextmanager
def _fd1_to_stderr(stdout: object) -> Generator[BinaryIO]:
    """Records get a private duplicate of descriptor 1; descriptor 1 becomes stderr's."""
    _flush(stdout)
    private = os.dup(1)  # not inheritable: no worker or child process gets it
    sink = open(private, "wb")  # noqa: SIM115 - closed below
    os.dup2(2, 1)
    try:
        yield sink
    finally:
        _flush(stdout)  # what the run printed goes to stderr, before descriptor 1 comes back
        os.dup2(private, 1)
        with contextlib.suppress(OSError, ValueError):
            sink.close()  # flushed by the writer; a reader that went away is not news here


def _flush(stream: object) -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError):
        getattr(stream, "flush")()  # noqa: B009 - any object; a stream without flush is fine


def silence_stderr() -> None:
    """Standard error's reader went away: what is still to be written there goes nowhere.

    Descriptor 2 is pointed at ``/dev/null``, so the interpreter's last flush at exit does not
    fail again (which would make the exit status 120).
    """
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def stdin_binary() -> BinaryIO:
    """Standard input as bytes, through a file object of its own when it is descriptor 0.

    The input reader thread may still be blocked reading it when crunch exits (a pipe where
    nothing comes, then a signal). Had it locked the buffer of ``sys.stdin``, the interpreter's
    teardown would abort on that lock ("could not acquire lock for <stdin>"); this object is
    the reader's alone, and lives as long as the blocked thread does.
    """
    stdin = sys.stdin
    if _fileno(stdin) == 0:
        return open(os.dup(0), "rb")
    return stdin.buffer  # a test runner's or a notebook's stdin


def _fileno(stream: object) -> int | None:
    try:
        return getattr(stream, "fileno")()  # noqa: B009 - any object: a test runner's, a notebook's
    except (AttributeError, OSError, ValueError):
        return None
