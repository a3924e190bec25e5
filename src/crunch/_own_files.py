"""crunch's own output among its inputs: refused when it is one, left out of the walk otherwise.

The records file (``-o FILE``, which is also the file ``--resume`` reads) must never be read as
an input: truncating an input loses it, and walking a file while it is being written gives it a
different record each run (README, "Inputs").

- ``output_problems(output, inputs)``, called before the output is opened (and so before it is
  truncated): one message for each input that IS the output, the same file by
  ``(st_dev, st_ino)``: a PATH, the ``--jsonl`` FILE, or standard input redirected from it,
  however it is spelt (``./x``, a symbolic link, a hard link); and for an existing output
  inside a walked directory (where the walk would meet it, not hidden) that is not a file of
  crunch records (empty, or its first line starts as a record does); with ``-`` among the
  PATHs, whose paths are read only after the output is truncated, for any existing output
  that is not a file of crunch records. The caller exits 2.
- ``OwnFiles``: the files a run writes, noted once they are open (``add``): the ``-o`` file,
  and standard output when it is a regular file. The walk and the ``-`` reader ask
  ``is_own(name, path)`` for each file and leave those out, silently: it is the rule, not a
  surprise. The test costs nothing for most files: only a file with the same *name* as one of
  ours is ``stat``-ed (every file, when one of ours has other hard links, and every symbolic
  link followed by the walk).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import BinaryIO

from crunch._results import RECORD_START

__all__ = ["OwnFiles", "output_problems"]

Identity = tuple[int, int]


def _identity(path: str | os.PathLike[str], *, follow: bool = True) -> Identity | None:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def output_problems(
    output: str,
    inputs: Iterable[str],
    *,
    stdin_read: bool,
    stdin_paths: bool = False,
    hidden: bool = False,
) -> list[str]:
    """A message for each input that is the file ``output`` (see the module docstring).

    ``stdin_read``: standard input is read (``-`` as a PATH or the ``--jsonl`` FILE);
    ``stdin_paths``: ``-`` among the PATHs, whose paths could name any file."""
    try:
        st = os.stat(output)
    except (OSError, ValueError):
        return []  # it does not exist yet: it cannot be an input
    mine = st.st_dev, st.st_ino
    regular = stat.S_ISREG(st.st_mode)  # a FIFO or a device is never met in a walk
    problems = []
    seen: set[str] = set()
    for path in inputs:
        if path in seen or path == "-":
            continue
        seen.add(path)
        if _identity(path) == mine:
            shown = path if path == output else f"{path} (the same file as {output})"
            problems.append(_destroys(output, f"it is an input, {shown}"))
        elif (
            regular
            and _walked_into(output, path, hidden=hidden)
            and not _looks_like_records(output)
        ):
            problems.append(
                _destroys(
                    output,
                    f"it is an input (met in the walk of {path}) and not a file of crunch records",
                )
            )
    if stdin_read:
        try:
            stdin = os.fstat(0)
        except OSError:
            stdin = None
        if stdin is not None and (stdin.st_dev, stdin.st_ino) == mine:
            problems.append(_destroys(output, "it is standard input"))
    if stdin_paths and regular and not problems and not _looks_like_records(output):
        # The paths read from standard input may name it, and come after it is truncated.
        problems.append(
            _destroys(
                output,
                "it is not a file of crunch records, and a path read from standard input ('-') "
                "may name it as an input",
            )
        )
    return problems


def _destroys(output: str, what: str) -> str:
    return f"-o {output}: {what}, which writing the records would destroy; write them elsewhere"


def _looks_like_records(path: str) -> bool:
    """Empty, or starting as every crunch record starts: an earlier run's output."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(RECORD_START))
    except OSError:
        return False
    return head == RECORD_START[: len(head)]


def _walked_into(output: str, root: str, *, hidden: bool) -> bool:
    """Is ``output`` inside the directory ``root`` (by real path), where a walk would meet it?"""
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        return False
    real = os.path.realpath(output)
    rel = os.path.relpath(real, real_root)
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        return False
    return hidden or not any(part.startswith(".") for part in rel.split(os.sep))


class OwnFiles:
    """The files this run writes, which no source may yield as an input (see module doc)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.identities: set[Identity] = set()
        self.every_name = False  # one of ours has other names (hard links): stat every file

    def __bool__(self) -> bool:
        return bool(self.identities)

    def add(self, stream: BinaryIO, path: str | None = None) -> None:
        """Note an open file of ours (a regular one; pipes and terminals cannot be inputs)."""
        try:
            st = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):
            return
        name = os.path.basename(os.path.realpath(path)) if path else _name_of_fd(stream.fileno())
        self._note(st, name)

    def add_path(self, path: str) -> None:
        """Note a file of ours by its path, before it is open (nothing when it is not there)."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return
        self._note(st, os.path.basename(os.path.realpath(path)))

    def _note(self, st: os.stat_result, name: str | None) -> None:
        if not stat.S_ISREG(st.st_mode):
            return
        self.identities.add((st.st_dev, st.st_ino))
        if name is None or st.st_nlink > 1:
            self.every_name = True
        else:
            self.names.add(name)

    def is_own(self, name: str, path: str | os.PathLike[str], *, link: bool = False) -> bool:
        """Is the file ``path`` (whose last component is ``name``) one of ours?

        ``link``: ``path`` is a symbolic link that the caller follows (its name says nothing).
        """
        if not (name in self.names or link or self.every_name):
            return False
        return self.holds(path)

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """Is ``path`` (followed if a link) one of ours, by identity? One ``stat``."""
        return _identity(path) in self.identities


def _name_of_fd(fd: int) -> str | None:
    """The file name behind an open descriptor, where the system says (Linux's /proc)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if not target.startswith("/") or target.endswith(" (deleted)"):
        return None
    return os.path.basename(target)
