"""The ``--resume`` side of the output file: what is done already, and a clean file to append to.

``prepare_resume(path)`` is called once, before the run, on the ``-o FILE`` of a resumed run.
The run then skips the keys in ``done`` and opens FILE for appending (``"ab"``), so that
afterwards FILE holds exactly one record per item (README, "The command": ``--resume``).

Rules
    - No file: nothing to resume; an empty ``done``, and the file is not created here.
    - A torn last line (the file does not end with ``\\n``; left by a killed run) is removed and
      never parsed, even when it happens to be valid JSON: only a line with its ``\\n`` was
      written whole. Its item is simply run again.
    - A record is a JSON object with ``"item"`` (the key: a string or an integer, JSON types
      kept, so ``7`` and ``"7"`` are different items) and ``"ok"`` (``true`` or ``false``).
      Lines are read by orjson, and a line it refuses by the ``json`` module
      (``crunch._jsonline.loads``): a key holding ``\\udcXX`` escapes (a file name that is not
      UTF-8) is matched exactly.
    - An item is done when the file has an ok record for it, wherever that record is; a failed
      record never cancels an ok one. Of several ok records for one key the last one is kept.
      Failed records are all dropped, so the resumed run's new record is the item's only one.
    - Blank (whitespace-only) lines carry nothing and are dropped quietly.
    - Any other line that is not a record (not JSON, not an object, no ``"item"``/``"ok"``, an
      ``"item"`` that is neither a string nor an integer such as ``true`` or ``1.5``) is not
      silently dropped: ``UsageError`` names the file and every such line number (the first
      ``MAX_BAD_LINES_SHOWN`` of them, and how many more), and the file is left untouched.
    - The rewrite keeps the kept lines byte for byte (no re-serialisation), in file order. It
      goes to a temporary file in the same directory, which is flushed, fsynced, given the
      original's permission bits and moved over FILE with ``os.replace`` (then the directory is
      fsynced): a crash at any moment leaves either the old file or the new one, never a mix.
      When FILE is a symbolic link its target is rewritten and the link kept. When nothing is to
      be dropped the file is not rewritten at all.
    - Memory: the file is read twice, streamed; between the passes only the keys and the line
      number of each key's winning record are held, never the records themselves.

Result and resume files are JSON, never pickle (README, "What crunch guarantees": Safety).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from crunch._jsonline import loads
from crunch.exceptions import UsageError

__all__ = ["MAX_BAD_LINES_SHOWN", "ResumeState", "prepare_resume"]

MAX_BAD_LINES_SHOWN = 20
"""How many bad line numbers the error lists before it says "and N more"."""

Key = str | int


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What ``prepare_resume`` found and did.

    ``done``: the keys that have an ok record (skip them). ``kept``: records in the file now
    (``len(done)``). ``dropped_failed``: failed records removed. ``dropped_duplicates``: older
    ok records of a key removed in favour of its last one. ``repaired_torn_line``: a torn last
    line was removed. ``rewritten``: the file was replaced (False when it was already clean or
    did not exist). ``existed``: the file was there at all.
    """

    done: set[Key] = field(default_factory=set)
    kept: int = 0
    dropped_failed: int = 0
    dropped_duplicates: int = 0
    repaired_torn_line: bool = False
    rewritten: bool = False
    existed: bool = False


def prepare_resume(path: str | os.PathLike[str]) -> ResumeState:
    """Read the results file of an earlier run, clean it for appending, return what is done.

    Raises ``UsageError`` when a line other than the last is not a result record, or when the
    path is not a regular file (a directory, say); the file is then left as it was.
    """
    shown = os.fspath(path)
    target = Path(os.path.realpath(path))
    try:
        st = target.stat()
    except FileNotFoundError:
        return ResumeState()
    except OSError as exc:
        raise UsageError(f"cannot resume from {shown}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"cannot resume from {shown}: not a regular file")

    scan = _scan(target, shown)
    if scan.bad_lines:
        raise UsageError(_bad_lines_message(shown, scan.bad_lines, scan.bad_count))

    done = {key for key, line in scan.winner.items() if line > 0}
    keep_lines = {line for line in scan.winner.values() if line > 0}
    dropped_lines = scan.lines_total - len(keep_lines)
    rewritten = False
    if dropped_lines:
        try:
            _rewrite(target, keep_lines, st.st_mode)
        except OSError as exc:
            raise UsageError(
                f"cannot resume from {shown}: cannot rewrite it: {exc.strerror or exc}"
            ) from exc
        rewritten = True
    return ResumeState(
        done=done,
        kept=len(keep_lines),
        dropped_failed=scan.failed_records,
        dropped_duplicates=scan.ok_records - len(keep_lines),
        repaired_torn_line=scan.torn,
        rewritten=rewritten,
        existed=True,
    )


@dataclass(slots=True)
class _Scan:
    # key -> line number of its last ok record, or -(line number of its last record) while it
    # has no ok record yet: positive means done.
    winner: dict[Key, int] = field(default_factory=dict)
    lines_total: int = 0  # every line, the torn one and blank ones included
    ok_records: int = 0
    failed_records: int = 0
    torn: bool = False
    bad_lines: list[int] = field(default_factory=list)  # the first MAX_BAD_LINES_SHOWN
    bad_count: int = 0


def _scan(target: Path, shown: str) -> _Scan:
    scan = _Scan()
    winner = scan.winner
    try:
        with open(target, "rb") as f:
            for lineno, line in enumerate(f, start=1):
                scan.lines_total = lineno
                if not line.endswith(b"\n"):  # only the last line can lack it
                    scan.torn = True
                    break
                if not line.strip():
                    continue
                record = _record(line)
                if record is None:
                    scan.bad_count += 1
                    if len(scan.bad_lines) < MAX_BAD_LINES_SHOWN:
                        scan.bad_lines.append(lineno)
                    continue
                key, ok = record
                if ok:
                    scan.ok_records += 1
                    winner[key] = lineno
                else:
                    scan.failed_records += 1
                    if winner.get(key, 0) <= 0:
                        winner[key] = -lineno
    except OSError as exc:
        raise UsageError(f"cannot resume from {shown}: {exc.strerror or exc}") from exc
    return scan


def _record(line: bytes) -> tuple[Key, bool] | None:
    """``(key, ok)`` of a result record line, or None when the line is not one."""
    try:
        value = loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    key = value.get("item")
    ok = value.get("ok")
    if not isinstance(ok, bool):
        return None
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return key, ok
    return None


def _bad_lines_message(shown: str, lines: Iterable[int], count: int) -> str:
    listed = ", ".join(str(n) for n in lines)
    more = count - MAX_BAD_LINES_SHOWN
    if more > 0:
        listed += f" and {more} more"
    noun = "line is" if count == 1 else "lines are"
    return (
        f"cannot resume from {shown}: {count} {noun} not a crunch result record "
        f"(line {listed}). Only a torn last line is repaired; fix or remove these lines, "
        "or write to a new file without --resume. The file was left unchanged."
    )


def _rewrite(target: Path, keep_lines: set[int], mode: int) -> None:
    """Replace ``target`` atomically by the lines whose numbers are in ``keep_lines``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".resume")
    try:
        with os.fdopen(fd, "wb") as out, open(target, "rb") as src:
            write = out.write
            for lineno, line in enumerate(src, start=1):
                if lineno in keep_lines:
                    write(line)
            out.flush()
            os.fchmod(out.fileno(), stat.S_IMODE(mode))
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
