"""The ``--resume`` side of the output file: what is done already, and a clean file to append to.

A resumed run reads its ``-o FILE`` in two steps, so that nothing is changed before every
check has passed: ``scan_resume(path)`` reads it (and refuses it, see below) without writing;
``ResumePlan.apply()`` then cleans it for appending. The run skips the keys in ``done`` and
opens FILE for appending (``"ab"``). When the run has listed all its inputs, ``drop_stale``
removes the records of items that are no longer among them, so that afterwards FILE holds
exactly one record per item of this run (README, "The command": ``--resume``).
``prepare_resume(path)`` is the first two steps at once.

Rules
    - No file: nothing to resume; an empty ``done``, and the file is not created here.
    - A torn last line (the file does not end with ``\\n``; left by a killed run) is removed and
      never parsed, even when it happens to be valid JSON: only a line with its ``\\n`` was
      written whole. Its item is simply run again. But only a line that starts as every record
      starts (``{"item":``, or a piece of that) can be torn from one: any other last line
      without a newline (a file that is no crunch output at all, such as a text with no
      newline) is a bad line, so such a file is refused, never emptied.
    - A record is a JSON object with ``"item"`` (the key: a string or an integer, JSON types
      kept, so ``7`` and ``"7"`` are different items) and ``"ok"`` (``true`` or ``false``).
      Lines are read by orjson, and a line it refuses by the ``json`` module
      (``crunch._jsonline.loads``): a key holding ``\\udcXX`` escapes (a file name that is not
      UTF-8) is matched exactly.
    - An item is done when the file has an ok record for it, wherever that record is; a failed
      record never cancels an ok one. Failed records are all dropped, so the resumed run's new
      record is the item's only one.
    - Two ok records for one key mean the key named two items (a run before keys were checked,
      or records put together by hand): dropping either would lose a record, so ``UsageError``
      names each such key and both line numbers, and the file is left untouched.
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
    - Records of items no longer among the inputs (a deleted file, a narrower ``--glob``) are
      removed by ``drop_stale`` after the run, and only when the run listed every input (not
      when a signal or a refused input ended the listing early): the same atomic rewrite.
    - Memory: the file is read twice, streamed; between the passes only the keys are held (with
      the line number of each key's ok record), never the records themselves.

Result and resume files are JSON, never pickle (README, "What crunch guarantees": Safety).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, KeysView
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from crunch._exceptions import UsageError
from crunch._jsonline import dumps, loads
from crunch._results import RECORD_START

__all__ = [
    "MAX_BAD_LINES_SHOWN",
    "ResumeCounts",
    "ResumePlan",
    "ResumeState",
    "drop_stale",
    "mark_seen",
    "prepare_resume",
    "scan_resume",
]

MAX_BAD_LINES_SHOWN = 20
"""How many bad line numbers the error lists before it says "and N more"."""

Key = str | int


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What ``ResumePlan.apply`` found and did.

    ``done``: the keys that have an ok record (skip them). ``lines``: each of those keys and
    the line of its record; ``mark_seen`` flips a key's line negative when the run meets it,
    which ``drop_stale`` reads. ``failed_before``: the keys whose records all failed (they are
    run again). ``kept``: records in the file now (``len(done)``).
    ``dropped_failed``: failed records removed. ``repaired_torn_line``: a torn last line was
    removed. ``rewritten``: the file was replaced (False when it was already clean or did not
    exist). ``existed``: the file was there at all.
    """

    lines: dict[Key, int] = field(default_factory=dict)
    failed_before: frozenset[Key] = frozenset()
    kept: int = 0
    dropped_failed: int = 0
    repaired_torn_line: bool = False
    rewritten: bool = False
    existed: bool = False

    @property
    def done(self) -> KeysView[Key]:
        return self.lines.keys()


@dataclass(slots=True)
class ResumePlan:
    """A results file read and found resumable (``scan_resume``), not changed yet."""

    shown: str
    target: Path | None = None  # None: there is no file
    mode: int = 0
    scan: _Scan | None = None

    @property
    def lines(self) -> dict[Key, int]:
        """Each done key and the line of its ok record in the file as it is now."""
        return self.scan.winner if self.scan is not None else {}

    def recorded_value(self, key: Key) -> Any:
        """The value of ``key``'s ok record (the file is read up to that line)."""
        assert self.target is not None
        wanted = self.lines[key]
        with open(self.target, "rb") as f:
            for lineno, line in enumerate(f, start=1):
                if lineno == wanted:
                    return loads(line).get("value")
        raise LookupError(key)

    def apply(self) -> ResumeState:
        """Clean the file for appending (atomically); ``UsageError`` when it cannot."""
        scan = self.scan
        if scan is None or self.target is None:
            return ResumeState()
        keep_lines = set(scan.winner.values())
        rewritten = False
        if scan.lines_total - len(keep_lines):
            try:
                _rewrite(self.target, keep_lines.__contains__, self.mode)
            except OSError as exc:
                raise UsageError(
                    f"cannot resume from {self.shown}: cannot rewrite it: {exc.strerror or exc}"
                ) from exc
            rewritten = True
        return ResumeState(
            lines=scan.winner,
            failed_before=frozenset(scan.failed_only),
            kept=len(keep_lines),
            dropped_failed=scan.failed_records,
            repaired_torn_line=scan.torn,
            rewritten=rewritten,
            existed=True,
        )


@dataclass(slots=True)
class ResumeCounts:
    """What a resumed run found and did, for its summary (README, "The command": ``--resume``).

    ``done``: inputs with an ok record, not run again. ``rerun``: inputs whose records had all
    failed, run again. ``removed``: ok records of items no longer among the inputs, removed
    (``drop_stale``; failed records are all dropped, whatever their item).
    """

    done: int = 0
    rerun: int = 0
    removed: int = 0


def prepare_resume(path: str | os.PathLike[str]) -> ResumeState:
    """Read the results file of an earlier run, clean it for appending, return what is done.

    Raises ``UsageError`` when a line is not a result record (a torn last line excepted), when
    a key has two ok records, or when the path is not a regular file (a directory, say); the
    file is then left as it was.
    """
    return scan_resume(path).apply()


def scan_resume(path: str | os.PathLike[str]) -> ResumePlan:
    """Read the results file without changing it; ``UsageError`` when it cannot be resumed."""
    shown = os.fspath(path)
    target = Path(os.path.realpath(path))
    try:
        st = target.stat()
    except FileNotFoundError:
        return ResumePlan(shown)
    except OSError as exc:
        raise UsageError(f"cannot resume from {shown}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"cannot resume from {shown}: not a regular file")

    scan = _scan(target, shown)
    if scan.bad_lines:
        raise UsageError(_bad_lines_message(shown, scan.bad_lines, scan.bad_count))
    if scan.repeated:
        raise UsageError(_repeated_message(shown, scan.repeated, scan.repeated_count))
    scan.failed_only = [key for key, line in scan.winner.items() if line <= 0]
    for key in scan.failed_only:
        del scan.winner[key]  # only failed records: not done
    return ResumePlan(shown, target, st.st_mode, scan)


def mark_seen(lines: dict[Key, int], key: Key) -> bool:
    """Is ``key`` done? If so, note that this run met it (for ``drop_stale``)."""
    line = lines.get(key)
    if line is None:
        return False
    if line > 0:
        lines[key] = -line
    return True


def drop_stale(path: str | os.PathLike[str], state: ResumeState) -> int:
    """After a run that listed every input: remove the records of done keys it never met.

    Returns how many records were removed (the file is rewritten atomically only then).
    """
    stale = {key for key, line in state.lines.items() if line > 0}
    if not stale:
        return 0
    target = Path(os.path.realpath(path))

    def keep(_lineno: int, line: bytes) -> bool:
        record = _record(line)
        return record is None or record[0] not in stale

    _rewrite(target, keep, target.stat().st_mode, with_line=True)
    return len(stale)


@dataclass(slots=True)
class _Scan:
    # key -> line number of its ok record, or -(line number of its last record) while it has
    # no ok record: positive means done.
    winner: dict[Key, int] = field(default_factory=dict)
    lines_total: int = 0  # every line, the torn one and blank ones included
    ok_records: int = 0
    failed_records: int = 0
    torn: bool = False
    bad_lines: list[int] = field(default_factory=list)  # the first MAX_BAD_LINES_SHOWN
    bad_count: int = 0
    repeated: list[tuple[Key, int, int]] = field(default_factory=list)  # key, first, again
    repeated_count: int = 0
    failed_only: list[Key] = field(default_factory=list)  # keys with no ok record


def _scan(target: Path, shown: str) -> _Scan:
    scan = _Scan()
    winner = scan.winner
    try:
        with open(target, "rb") as f:
            for lineno, line in enumerate(f, start=1):
                scan.lines_total = lineno
                if not line.endswith(b"\n"):  # only the last line can lack it
                    if _could_be_torn(line):
                        scan.torn = True
                    else:
                        _bad(scan, lineno)
                    break
                if not line.strip():
                    continue
                record = _record(line)
                if record is None:
                    _bad(scan, lineno)
                    continue
                key, ok = record
                if ok:
                    scan.ok_records += 1
                    first = winner.get(key, 0)
                    if first > 0:
                        scan.repeated_count += 1
                        if len(scan.repeated) < MAX_BAD_LINES_SHOWN:
                            scan.repeated.append((key, first, lineno))
                    else:
                        winner[key] = lineno
                else:
                    scan.failed_records += 1
                    if winner.get(key, 0) <= 0:
                        winner[key] = -lineno
    except OSError as exc:
        raise UsageError(f"cannot resume from {shown}: {exc.strerror or exc}") from exc
    return scan


def _bad(scan: _Scan, lineno: int) -> None:
    scan.bad_count += 1
    if len(scan.bad_lines) < MAX_BAD_LINES_SHOWN:
        scan.bad_lines.append(lineno)


def _could_be_torn(line: bytes) -> bool:
    """Is this newline-less last line the start of a record (so a killed run may have left it)?"""
    head = line[: len(RECORD_START)]
    return head == RECORD_START[: len(head)]


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


def _repeated_message(shown: str, repeated: list[tuple[Key, int, int]], count: int) -> str:
    listed = "; ".join(
        f"{dumps(key).decode()} on lines {first} and {again}" for key, first, again in repeated
    )
    more = count - len(repeated)
    if more > 0:
        listed += f"; and {more} more"
    return (
        f"cannot resume from {shown}: a key has two ok records ({listed}), so it named two "
        "items and resuming would keep only one. Make the keys unique and write to a new file. "
        "The file was left unchanged."
    )


def _rewrite(
    target: Path, keep: Callable[..., bool], mode: int, *, with_line: bool = False
) -> None:
    """Replace ``target`` atomically by its lines for which ``keep(line number)`` (or, with
    ``with_line``, ``keep(line number, line)``) is true."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".resume")
    try:
        with os.fdopen(fd, "wb") as out, open(target, "rb") as src:
            write = out.write
            for lineno, line in enumerate(src, start=1):
                if keep(lineno, line) if with_line else keep(lineno):
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
