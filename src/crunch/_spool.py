"""PATHs that only crunch's own process can read, copied where every worker can.

``crunch process <(make-data)`` names ``/dev/fd/63``: one of crunch's own file descriptors. A
worker is another process, where ``/dev/fd/63`` is missing or something else, and a pipe can
be read only once (a retry would find it empty). So a PATH that is

- a pipe (``<(cmd)``, ``/dev/stdin`` fed by a pipe, a named FIFO), or
- reached through crunch's own descriptors (``/dev/stdin``, ``/dev/fd/N``, ``/proc/self/fd/N``)
  and neither a directory nor a file the workers can open under its real name,

is read once, in the parent, into a private temporary directory; the task gets that copy (in
every mode, so all modes see the same bytes), under the key the PATH was given as. A regular
file named through a descriptor (``crunch process /dev/stdin < data.txt``) is handed to the
workers by its real path, without a copy. The copy is streamed (memory stays bounded, the disk
holds the whole input) and removed when the run ends; a run killed with ``kill -9`` leaves its
``crunch-*`` directory in the temporary directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crunch._results import InvalidItem

_COPY_CHUNK = 1 << 20


def _own_prefixes() -> tuple[str, ...]:
    return ("/proc/self/", "/proc/thread-self/", f"/proc/{os.getpid()}/")


def per_process(path: str) -> bool:
    """True when resolving ``path`` goes through this process's own ``/proc`` entries."""
    return _own_entry(path) is not None


def own_descriptor(path: str) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``: 1), or None."""
    entry = _own_entry(path)
    if entry is None:
        return None
    parent, name = os.path.split(entry)  # .../fd/N
    return int(name) if os.path.basename(parent) == "fd" and name.isdigit() else None


def _own_entry(path: str) -> str | None:
    """The path of this process's own ``/proc`` entry that resolving ``path`` reaches, or None."""
    own = _own_prefixes()
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        head, tail = os.path.split(current)
        current = os.path.join(os.path.realpath(head), tail)
        if (current + "/").startswith(own):
            return current
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(head, os.readlink(current)))
    return None


class Spool:
    """Copies of the PATHs the workers cannot read themselves; ``close`` removes them all."""

    def __init__(self) -> None:
        self.directory: str | None = None
        self.copies = 0

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, path: str) -> Path | InvalidItem | None:
        """What the task should open for the PATH ``path``; None when ``path`` itself will do."""
        try:
            st = os.stat(path)
        except OSError:
            return None  # the walk reports it
        if stat.S_ISDIR(st.st_mode):
            return None
        fifo = stat.S_ISFIFO(st.st_mode)
        if not fifo and not per_process(path):
            return None
        if stat.S_ISREG(st.st_mode):
            real = os.path.realpath(path)
            try:
                if not per_process(real) and os.path.samefile(real, path):
                    return Path(real)
            except OSError:
                pass
        return self._copy(path)

    def _copy(self, path: str) -> Path | InvalidItem:
        import shutil
        import tempfile

        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="crunch-")
        self.copies += 1
        folder = os.path.join(self.directory, str(self.copies))
        os.mkdir(folder)
        target = os.path.join(folder, os.path.basename(path) or "input")
        try:
            with open(path, "rb") as source, open(target, "wb") as copy:
                shutil.copyfileobj(source, copy, _COPY_CHUNK)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return InvalidItem(
                type(exc).__name__, f"{path}: reading it into a temporary copy failed: {reason}"
            )
        return Path(target)

    def close(self) -> None:
        if self.directory is not None:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
