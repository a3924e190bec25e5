"""Where items come from: lazy sources, each a generator of ``(key, item)`` pairs.

Nothing here reads more than it must: a walk lists one directory at a time, standard input is
read as it arrives, a ``--jsonl`` file one line at a time. A problem with one input never stops
a source; it is yielded in place of the item as an ``InvalidItem`` (``crunch._results``), which
the run records as a failed item of kind ``error`` without calling the task.

Paths given on the command line (``check_paths``)
    Every PATH except ``-`` must exist and be readable (a directory must be listable). All the
    problems are returned at once, one message each (``data/x.txt: no such file or directory``),
    so the caller can report them together and exit 2 before any work starts. A PATH that is a
    symbolic link is checked through the link; one whose target is missing is reported as a
    broken symbolic link.

Walking directories (``walk``)
    - Keys. The key of a file is the path as reached from the root given, normalised as
      ``pathlib`` does, always with ``/`` separators: ``data/sub/a.txt`` for the roots
      ``data``, ``data/`` and ``./data`` alike, ``data/sub/a.txt`` for ``data//sub``, ``a.txt``
      for ``.``; ``..`` is kept as given, as pathlib keeps it. The item is ``Path(key)``
      (``walk_keys``, the engine's walk, yields None in its place: workers make the Path).
    - Order. Depth first; the entries of each directory, files and subdirectories together,
      sorted by name as Python compares ``str`` (code point order). For UTF-8 names this is byte
      order, the order of ``LC_ALL=C ls``: uppercase before lowercase, independent of locale and
      file system. Undecodable bytes (kept as surrogate escapes by ``os.fsdecode``) sort by
      their escape code points (U+DC80-U+DCFF), not by byte value.
    - Hidden entries (name starts with ``.``) met during the walk are skipped unless
      ``hidden=True``. A root is never skipped for its own name.
    - Symbolic links met during the walk (to files or directories, dangling or not) are skipped
      unless ``follow_symlinks=True``; so nothing outside the roots is read by default
      (README, "What crunch guarantees": Safety). A root named by the caller is used even
      when it is a link.
    - With ``follow_symlinks=True`` a link is walked as what it points to. A directory whose
      ``(st_dev, st_ino)`` is already on the current path from the root (a link to an ancestor:
      a loop) is not entered again, so the walk always ends and a loop yields every file once;
      the skip is noted in ``warnings``. Two links to the same directory that is *not* an
      ancestor are both walked, but each file in it is yielded once (below). The same check
      guards against bind-mount loops without ``follow_symlinks``.
    - One item per file (``Overlap``). A directory entry reached again, through roots that
      overlap or repeat (``d d/sub ./d/a.txt d``), a root that is a link into another root, or
      a followed link, is yielded only the first time, under the key met first in walk order.
      An entry is ``(st_dev, st_ino)`` of its real directory plus its name, so hard links (two
      names of one file) are two items, as ``find`` lists them. Only entries that can be met
      twice are remembered: a single root without ``follow_symlinks`` remembers nothing; with
      overlapping roots, the entries below the inner root (memory grows with the files there);
      with ``follow_symlinks``, every entry (memory grows with the number of files).
    - A dangling link (when following links) is yielded as ``InvalidItem("FileNotFoundError",
      ...)``: the user asked for what it points to and it is missing.
    - A subdirectory that cannot be listed (permissions, or it vanished) does not stop the walk:
      it is yielded under its own key as an ``InvalidItem`` of the ``OSError``'s type
      (``PermissionError``), so the run fails that entry visibly (exit 1) and ``--resume`` tries
      it again. The same for a root that cannot be read when ``check_paths`` was skipped.
    - Other non-regular files met during the walk (FIFOs, sockets, devices) are skipped, with a
      note in ``warnings``: opening a FIFO would hang a worker. A root is yielded whatever it
      is; the command hands a root that is a pipe to the task as a copy (``crunch._spool``).
    - ``warnings``: pass a list to collect one human message per skipped loop or special file,
      for the caller to log. Nothing is collected for hidden entries, unfollowed links or
      excluded paths: those are the documented rules, not surprises.
    - ``leave_out``: the run's own output (``crunch._own_files.OwnFiles``); a file that is one
      of its files, by ``(st_dev, st_ino)``, is not yielded, silently (the same for a root).

Patterns (``--glob``, ``--exclude``; ``glob_to_regex``)
    - A pattern matches the path relative to its root with ``/`` separators (``sub/a.txt`` for
      ``data/sub/a.txt`` under the root ``data``); for a root that is a file, its name. Patterns
      are anchored: ``*.py`` matches only at the top, ``**/*.py`` at any depth.
    - ``*`` matches any run of characters within one component, ``?`` one character other than
      ``/``, ``[abc]``, ``[a-z]``, ``[!abc]`` (or ``[^abc]``) one character of (not of) a set,
      never ``/``. A ``[`` without a closing ``]`` is literal. ``\\`` makes the next character
      literal (``\\*``). Matching is case-sensitive. A leading ``/`` or ``./`` is ignored.
    - ``**`` as a whole component: ``**/`` matches zero or more directories (``**/*.py`` matches
      ``os.py`` and ``a/b/os.py``); a trailing ``/**`` matches everything below (``build/**``
      matches ``build/x`` and ``build/x/y``, not ``build`` itself); ``**`` alone matches every
      path. Inside a component (``a**b``) it is a plain ``*``, as in ``.gitignore``.
    - ``--glob`` (include, repeatable): a file is kept when it matches ANY glob; no globs keep
      every file. Directories are always entered; globs only choose files.
    - ``--exclude`` (repeatable): a file is dropped when it matches any exclude. A directory is
      pruned (not entered at all) when an exclude matches its relative path either as ``dir`` or
      as ``dir/``. So ``--exclude build``, ``--exclude build/`` and ``--exclude 'build/**'`` all
      prune ``build``; a pattern ending in ``/`` matches directories only (``--exclude '*/'``
      prunes every top-level directory but keeps top-level files). Pruning a directory that way
      never drops a file the pattern would not have dropped itself, except for ``dir/`` patterns,
      whose point it is.
    - Each pattern is translated once to a regular expression; all globs (and all excludes) are
      joined into one alternation, so testing a file costs one ``re`` call per list.

Standard input (``stdin_paths``)
    One path a line (the ``\\n`` and then one trailing ``\\r`` removed; nothing else, names may
    hold spaces), or NUL-separated with ``null=True`` (``find -print0``; there a trailing ``\\r``
    is part of the name). Empty entries are skipped. Read as data arrives (``read1``), never all
    of stdin first. Names are decoded with ``os.fsdecode`` so undecodable bytes survive the round
    trip to the file system. Keys are normalised as for the walk. Paths are not checked: one that
    does not exist fails when the task opens it. A path to a file of ``leave_out`` (the run's own
    output) is skipped.

JSON Lines (``jsonl_items``)
    Each line is one item, a JSON value decoded with ``orjson`` (a line it refuses is read by
    the ``json`` module, so the ``\\udcXX`` escapes crunch writes read back); whitespace-only
    lines are skipped; a UTF-8 byte order mark at the start of the file is ignored. The key is
    the 1-based line number, or with ``key_field`` the value of that top-level field. A line
    that is not valid JSON becomes ``(line, InvalidItem("JSONDecodeError", "line 7: <orjson's
    message>"))``; with ``key_field``, a line that is not an object or lacks the field becomes
    ``(line, InvalidItem("KeyError", "line 7: no field 'id'"))``. A key must be a string or an
    integer: any other value (``null``, ``true``, ``1.5``, a list, an object) becomes ``(line,
    InvalidItem("TypeError", "line 7: field 'id' is a float; ..."))`` rather than being
    stringified, because ``true == 1`` and ``2.0 == 2`` in Python would merge distinct items and
    a stringified object would not match the record's key on ``--resume``. The file is streamed;
    one that cannot be opened raises ``OSError`` at the first ``next()`` (check it with
    ``check_paths`` first).
"""

from __future__ import annotations

import contextlib
import errno
import operator
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from crunch._jsonline import loads
from crunch._results import InvalidItem

if TYPE_CHECKING:
    from crunch._own_files import OwnFiles

__all__ = [
    "FilesSource",
    "JsonlSource",
    "Overlap",
    "check_paths",
    "files",
    "glob_to_regex",
    "jsonl",
    "jsonl_items",
    "jsonl_lines",
    "stdin_paths",
    "walk",
]

# How much of standard input to ask for at once in NUL mode; ``read1`` returns what is there.
_STDIN_CHUNK = 64 * 1024

_UTF8_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------------------------
# Paths given by the caller


def _reason(exc: OSError) -> str:
    """``No such file or directory`` -> ``no such file or directory``."""
    text = os.strerror(exc.errno) if exc.errno is not None else (exc.strerror or str(exc))
    return text[:1].lower() + text[1:]


def _shown(path: str) -> str:
    return path if path else "''"


def check_paths(paths: Sequence[str]) -> list[str]:
    """Return one message for every PATH (except ``-``) that is missing or cannot be read.

    An empty list means every path is usable. Each distinct path is reported once, in the
    order given: ``data/missing.txt: no such file or directory``, ``secret/: permission
    denied``, ``link: broken symbolic link``.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path == "-" or path in seen:
            continue
        seen.add(path)
        problem = _check_path(path)
        if problem is not None:
            problems.append(f"{_shown(path)}: {problem}")
    return problems


def _check_path(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "broken symbolic link"
        return _reason(exc)
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(path) as entries:
                next(entries, None)
        except OSError as exc:
            return f"cannot list directory: {_reason(exc)}"
        return None
    # Opening would block on a FIFO (``<(cmd)``), so ask for permission instead.
    if not os.access(path, os.R_OK):
        return os.strerror(errno.EACCES).lower()
    return None


def _key_of(path: str) -> str:
    """The key of a path: normalised as pathlib does, with ``/`` separators."""
    return PurePath(path).as_posix()


# ---------------------------------------------------------------------------------------------
# Patterns


def glob_to_regex(pattern: str) -> str:
    """Translate one ``--glob``/``--exclude`` pattern to a regular expression (not compiled).

    The expression is meant for ``re.fullmatch`` on a ``/``-separated relative path; it has no
    capturing groups, so several can be joined with ``|``. See the module docstring for the
    rules.
    """
    while pattern.startswith(("/", "./")):
        pattern = pattern[1:] if pattern.startswith("/") else pattern[2:]
    parts = pattern.split("/")
    out: list[str] = []
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if part == "**":
            # "**/" : zero or more whole directories. Trailing "/**" or a lone "**": anything.
            out.append(".*" if i == last else "(?:.*/)?")
            continue
        out.append(_component_to_regex(part))
        if i != last:
            out.append("/")
    return "".join(out)


def _component_to_regex(part: str) -> str:
    """Translate a pattern component (no ``/`` in it) to a regex that never matches ``/``."""
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        i += 1
        if c == "*":
            while i < n and part[i] == "*":  # "a**b" is "a*b"
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i < n:
                out.append(re.escape(part[i]))
                i += 1
            else:
                out.append(re.escape("\\"))
        elif c == "[":
            parsed = _bracket(part, i)
            if parsed is None:
                out.append(re.escape("["))
            else:
                i, regex = parsed
                out.append(regex)
        else:
            out.append(re.escape(c))
    return "".join(out)


def _bracket(part: str, start: int) -> tuple[int, str] | None:
    """Translate ``[...]`` whose body begins at ``start``: (index after ``]``, regex).

    ``!`` or ``^`` first negates; a ``]`` right after the opening (and negation) is literal;
    ``\\`` escapes; ``a-z`` is a range (an inverted one, ``z-a``, is empty, as in fnmatch).
    The set never matches ``/``. None when there is no closing ``]``.
    """
    i, n = start, len(part)
    negate = i < n and part[i] in "!^"
    if negate:
        i += 1
    items: list[tuple[str, str]] = []  # (low, high) inclusive
    first = True
    while i < n:
        c = part[i]
        if c == "]" and not first:
            break
        first = False
        if c == "\\" and i + 1 < n:
            i += 1
            c = part[i]
        i += 1
        if i + 1 < n and part[i] == "-" and part[i + 1] != "]":
            high = part[i + 1]
            if high == "\\" and i + 2 < n:
                high = part[i + 2]
                i += 1
            i += 2
            if c <= high:
                items.append((c, high))
        else:
            items.append((c, c))
    else:
        return None
    body = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in items
    )
    if negate:
        return i + 1, f"[^/{body}]"
    if not body:
        return i + 1, "(?!)"
    # Looked ahead so that a range such as "+-0" does not let "/" in.
    return i + 1, f"(?!/)[{body}]"


def _combine(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One compiled alternation of all the patterns, or None when there are none."""
    if not patterns:
        return None
    joined = "|".join(f"(?:{glob_to_regex(p)})" for p in patterns)
    return re.compile(joined, re.DOTALL)


# ---------------------------------------------------------------------------------------------
# Walking directories


def walk(
    roots: Sequence[str],
    *,
    hidden: bool = False,
    follow_symlinks: bool = False,
    globs: Sequence[str] = (),
    excludes: Sequence[str] = (),
    warnings: Any = None,
    leave_out: OwnFiles | None = None,
    overlap: Overlap | None = None,
) -> Iterator[tuple[str, Path | InvalidItem]]:
    """Yield ``(key, Path)`` for every file under ``roots``, depth first, in name order.

    An entry that cannot be read is yielded as ``(key, InvalidItem)``. Patterns are compiled
    here, at the call; the walk itself starts at the first ``next()``. Pass a list (anything
    with ``append``) as ``warnings`` to collect a message for each link loop and special file
    that was skipped. Files of ``leave_out`` (the run's own output) are never yielded. A file
    reached again (overlapping roots, a followed link) is yielded once; pass one ``Overlap``
    of all the roots to several ``walk`` calls that must not repeat each other.
    """
    return with_paths(
        walk_keys(
            roots,
            hidden=hidden,
            follow_symlinks=follow_symlinks,
            globs=globs,
            excludes=excludes,
            warnings=warnings,
            leave_out=leave_out,
            overlap=overlap,
        )
    )


def walk_keys(
    roots: Sequence[str],
    *,
    hidden: bool = False,
    follow_symlinks: bool = False,
    globs: Sequence[str] = (),
    excludes: Sequence[str] = (),
    warnings: Any = None,
    leave_out: OwnFiles | None = None,
    overlap: Overlap | None = None,
) -> Iterator[tuple[str, InvalidItem | None]]:
    """``walk`` without the ``Path`` objects: ``(key, None)`` for each file, the file at the
    key (``(key, InvalidItem)`` as ``walk``), in the same order.

    The engine sends workers the keys of files, and each worker makes ``Path(key)`` itself; a
    ``Path`` made here would only be turned back into its string. Not making it is most of the
    parent's cost per file (benchmarks/walk.py).
    """
    walker = _Walker(
        hidden=hidden,
        follow_symlinks=follow_symlinks,
        include=_combine(globs),
        exclude=_combine(excludes),
        warnings=warnings,
        leave_out=leave_out,
        overlap=overlap or Overlap(roots, follow_symlinks=follow_symlinks),
    )
    return walker.walk(roots)


def with_paths(pairs: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The pairs of ``walk_keys`` as ``walk`` yields them: ``(key, None)`` becomes
    ``(key, Path(key))``; any other pair passes unchanged."""
    for key, item in pairs:
        yield key, Path(key) if item is None else item


Entry = tuple[int, int, str]
"""A directory entry: its real directory's ``(st_dev, st_ino)`` and its name."""


class Overlap:
    """Where roots overlap, and the entries already yielded there (one item per file).

    An entry is a name in a directory, ``(st_dev, st_ino, name)`` of the real directory after
    links are resolved, so ``d/a.txt`` reached from ``d``, ``./d/``, ``d/a.txt`` or a link to
    ``d`` is one entry, and two hard links (two names) are two. Only entries that *can* be
    reached twice are remembered: below a root that lies inside another root (or is given
    twice), a root file inside a root directory, and everything when links are followed.
    Overlap is found from the roots' real paths, so one directory mounted at two places (a
    bind mount) is not recognised.
    """

    __slots__ = ("every", "inner_dirs", "inner_files", "seen")

    def __init__(self, roots: Sequence[str], *, follow_symlinks: bool = False) -> None:
        self.every = follow_symlinks  # a followed link may lead anywhere
        self.inner_dirs: set[tuple[int, int]] = set()
        self.inner_files: dict[tuple[int, int], set[str]] = {}
        self.seen: set[Entry] = set()
        if self.every or len(roots) < 2:
            return
        reals = []
        for root in roots:
            try:
                real = os.path.realpath(root)
                st = os.stat(real)
            except (OSError, ValueError):
                continue
            reals.append((real, stat.S_ISDIR(st.st_mode), (st.st_dev, st.st_ino), root))
        dirs = {real for real, is_dir, _, _ in reals if is_dir}
        counts: dict[str, int] = {}
        for real, *_ in reals:
            counts[real] = counts.get(real, 0) + 1
        for real, is_dir, ident, root in reals:
            if counts[real] < 2 and not any(up in dirs for up in _ancestors(real)):
                continue  # no other root reaches it
            if is_dir:
                self.inner_dirs.add(ident)
            else:
                entry = root_entry(root)
                if entry is not None:
                    self.inner_files.setdefault(entry[:2], set()).add(entry[2])

    def __bool__(self) -> bool:
        return self.every or bool(self.inner_dirs or self.inner_files)

    def first(self, entry: Entry | None) -> bool:
        """Note ``entry``; False when it was yielded before (``None``: cannot tell, True)."""
        if entry is None:
            return True
        if entry in self.seen:
            return False
        self.seen.add(entry)
        return True


def _ancestors(path: str) -> Iterator[str]:
    """``/a/b/c`` -> ``/a/b``, ``/a``, ``/`` (``path`` is absolute and normalised)."""
    parent = os.path.dirname(path)
    while parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


def root_entry(path: str | os.PathLike[str]) -> Entry | None:
    """The real directory entry of ``path`` (links resolved), or None when it cannot be told."""
    try:
        real = os.path.realpath(path)
        st = os.stat(os.path.dirname(real) or os.sep)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino, os.path.basename(real)


class _Walker:
    __slots__ = (
        "exclude",
        "follow_symlinks",
        "hidden",
        "include",
        "leave_out",
        "overlap",
        "warnings",
    )

    def __init__(
        self,
        *,
        hidden: bool,
        follow_symlinks: bool,
        include: re.Pattern[str] | None,
        exclude: re.Pattern[str] | None,
        warnings: Any,
        leave_out: OwnFiles | None = None,
        overlap: Overlap | None = None,
    ) -> None:
        self.hidden = hidden
        self.follow_symlinks = follow_symlinks
        self.include = include
        self.exclude = exclude
        self.warnings = warnings
        self.leave_out = leave_out
        self.overlap = overlap if overlap else None

    def _warn(self, message: str) -> None:
        if self.warnings is not None:
            self.warnings.append(message)

    def _keep_file(self, rel: str) -> bool:
        if self.exclude is not None and self.exclude.fullmatch(rel):
            return False
        return self.include is None or self.include.fullmatch(rel) is not None

    def _prune_dir(self, rel: str) -> bool:
        exclude = self.exclude
        return exclude is not None and (
            exclude.fullmatch(rel) is not None or exclude.fullmatch(rel + "/") is not None
        )

    def walk(self, roots: Sequence[str]) -> Iterator[tuple[str, InvalidItem | None]]:
        """``(key, None)`` per file (the file at the key), ``(key, InvalidItem)`` per entry
        that could not be read."""
        for root in roots:
            yield from self._walk_root(root)

    def _walk_root(self, root: str) -> Iterator[tuple[str, InvalidItem | None]]:
        key = _key_of(root)
        try:
            st = os.stat(root)  # through a link: a root is used even when it is one
        except OSError as exc:
            yield key, _invalid(key, exc)
            return
        if not stat.S_ISDIR(st.st_mode):
            name = PurePath(key).name
            own = self.leave_out
            if own and own.is_own(name, root, link=True):
                return
            if self._keep_file(name):
                overlap = self.overlap
                if overlap is None or overlap.first(root_entry(root)):
                    yield key, None
            return
        if key == ".":
            prefix = ""
        elif key.endswith("/"):  # "/" or "//"
            prefix = key
        else:
            prefix = key + "/"
        try:
            entries = _listdir(root)
        except OSError as exc:
            yield key, _invalid(key, exc)
            return
        yield from self._walk_dir(entries, prefix, (st.st_dev, st.st_ino))

    def _walk_dir(
        self,
        entries: list[os.DirEntry[str]],
        prefix: str,
        top_id: tuple[int, int],
    ) -> Iterator[tuple[str, InvalidItem | None]]:
        hidden = self.hidden
        follow = self.follow_symlinks
        # Overlapping roots (crunch._sources.Overlap): a directory is "shared" when its entries
        # may be met again; only there is each entry noted. Elsewhere this costs one test.
        overlap = self.overlap
        inner_dirs = overlap.inner_dirs if overlap is not None else set()
        inner_files = overlap.inner_files if overlap is not None else {}
        first = overlap.first if overlap is not None else None
        top_shared = overlap is not None and (overlap.every or top_id in inner_dirs)
        # The run's own output: only a file with one of its names (or a followed link) is
        # stat-ed to tell (crunch._own_files).
        own = self.leave_out if self.leave_out else None
        own_names = own.names if own is not None else frozenset()
        own_every = own is not None and own.every_name
        # One frame per directory on the current path: (its sorted entries, the position
        # reached, its path relative to the root with a trailing "/", its (st_dev, st_ino),
        # whether it is shared, the names of root files in it).
        stack: list[_Frame] = [(iter(entries), "", top_id, top_shared, inner_files.get(top_id))]
        ancestors = {top_id}
        while stack:
            it, rel_dir, dir_id, shared, root_names = stack[-1]
            for entry in it:
                name = entry.name
                if not hidden and name.startswith("."):
                    continue
                is_link = entry.is_symlink()
                if is_link and not follow:
                    continue
                rel = rel_dir + name
                if _is_dir(entry):
                    if self._prune_dir(rel):
                        continue
                    key = prefix + rel
                    try:
                        st = entry.stat()
                        ident = (st.st_dev, st.st_ino)
                        if ident in ancestors:
                            self._warn(f"{key}: skipped, a link loop (leads back to a parent)")
                            continue
                        children = _listdir(entry.path)
                    except OSError as exc:
                        if first is None or not shared or first((*dir_id, name)):
                            yield key, _invalid(key, exc)
                        continue
                    ancestors.add(ident)
                    stack.append(
                        (
                            iter(children),
                            rel + "/",
                            ident,
                            shared or ident in inner_dirs,
                            inner_files.get(ident),
                        )
                    )
                    break  # descend: the loop resumes this directory's iterator later
                if not self._keep_file(rel):
                    continue
                key = prefix + rel
                # An entry that may be met again is yielded the first time only (a followed
                # link counts as the entry it leads to).
                if (
                    (shared or (root_names is not None and name in root_names))
                    and first is not None
                    and not first(root_entry(entry.path) if is_link else (*dir_id, name))
                ):
                    continue
                if _is_file(entry):
                    if (
                        own is not None
                        and (name in own_names or is_link or own_every)
                        and own.holds(entry.path)
                    ):
                        continue
                    yield key, None
                elif is_link and not os.path.exists(entry.path):
                    target = _readlink(entry.path)
                    yield (
                        key,
                        InvalidItem(
                            "FileNotFoundError",
                            f"{key}: broken symbolic link (its target {target!r} does not exist)",
                        ),
                    )
                else:
                    self._warn(f"{key}: skipped, not a regular file (FIFO, socket or device)")
            else:
                stack.pop()
                ancestors.discard(dir_id)


_Frame = tuple[Iterator[os.DirEntry[str]], str, tuple[int, int], bool, "set[str] | None"]


def _listdir(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=_entry_name)


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _invalid(key: str, exc: OSError) -> InvalidItem:
    return InvalidItem(type(exc).__name__, f"{key}: {_reason(exc)}")


# ---------------------------------------------------------------------------------------------
# Standard input


def stdin_paths(
    stream: BinaryIO, *, null: bool = False, leave_out: OwnFiles | None = None
) -> Iterator[tuple[str, Path]]:
    """Yield ``(key, Path)`` for each path read from ``stream``: one a line, or NUL-separated.

    A path to a file of ``leave_out`` (the run's own output) is skipped.
    """
    own = leave_out if leave_out else None
    tails = tuple(os.fsencode(name) for name in own.names) if own is not None else ()
    every = own is not None and own.every_name
    for raw in _nul_records(stream) if null else _line_records(stream):
        if raw:
            if own is not None and (every or raw.endswith(tails)) and own.holds(os.fsdecode(raw)):
                continue
            path = Path(os.fsdecode(raw))
            yield path.as_posix(), path


def _line_records(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        end = len(line)
        if end and line[end - 1] == 0x0A:  # "\n"
            end -= 1
        if end and line[end - 1] == 0x0D:  # "\r"
            end -= 1
        yield line[:end]


def _nul_records(stream: BinaryIO) -> Iterator[bytes]:
    read = getattr(stream, "read1", None) or stream.read
    pending = b""
    while chunk := read(_STDIN_CHUNK):
        *complete, pending = (pending + chunk).split(b"\0")
        yield from complete
    if pending:
        yield pending


# ---------------------------------------------------------------------------------------------
# JSON Lines


_KEY_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    float: "a float",
    list: "a list",
    dict: "an object",
}


def _key_kind(key: Any, line: bytes, key_field: str) -> str:
    """What a key that is neither a string nor an integer is, said as a person would."""
    if isinstance(key, float) and key.is_integer():
        # orjson reads an integer beyond 64 bits as a float; the standard parser says which.
        import json

        try:
            exact = json.loads(line)[key_field]
        except (ValueError, KeyError, TypeError):
            exact = None
        if isinstance(exact, int):
            return "an integer too large for 64 bits (write it as a string)"
    name = _KEY_TYPE_NAMES.get(type(key))
    if name is None:
        name = type(key).__name__
        name = f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"
    return name


def jsonl_items(
    path: str | os.PathLike[str] | BinaryIO, *, key_field: str | None = None
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(key, value)`` for each non-blank line of a JSON Lines file (or binary stream,
    such as standard input, which is read as it arrives and left open).

    The key is the 1-based line number, or the value of the top-level field ``key_field``. A
    broken line yields ``(line number, InvalidItem)`` instead (see the module docstring).
    """
    return map(_KEY_AND_VALUE, jsonl_lines(path, key_field=key_field))


_KEY_AND_VALUE = operator.itemgetter(1, 2)


def jsonl_lines(
    path: str | os.PathLike[str] | BinaryIO, *, key_field: str | None = None
) -> Iterator[tuple[int, Any, Any]]:
    """``jsonl_items`` with each item's line number first: ``(line number, key, value)``."""
    opened: contextlib.AbstractContextManager[BinaryIO]
    if isinstance(path, (str, os.PathLike)):
        opened = open(path, "rb")  # noqa: SIM115 - closed by the with below
    else:
        opened = contextlib.nullcontext(path)
    with opened as f:
        for lineno, raw in enumerate(f, start=1):
            entry = jsonl_entry(lineno, raw, key_field)
            if entry is not None:
                yield lineno, entry[0], entry[1]


def jsonl_entry(lineno: int, raw: bytes, key_field: str | None) -> tuple[Any, Any] | None:
    """``(key, value)`` of one JSON Lines line (``lineno`` 1-based), or None for a blank one.

    The one place that decides what a line is: the parent's ``jsonl_items`` and the workers'
    line ranges (``crunch._units.JsonlUnit``) both call it.
    """
    line = raw[len(_UTF8_BOM) :] if lineno == 1 and raw.startswith(_UTF8_BOM) else raw
    try:
        value = loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return None
        return lineno, InvalidItem("JSONDecodeError", f"line {lineno}: {exc}")
    if key_field is None:
        return lineno, value
    if type(value) is not dict or key_field not in value:
        what = "" if isinstance(value, dict) else " (the line is not an object)"
        return lineno, InvalidItem("KeyError", f"line {lineno}: no field {key_field!r}{what}")
    key = value[key_field]
    if type(key) is str or type(key) is int:
        return key, value
    kind = _key_kind(key, line, key_field)
    return (
        lineno,
        InvalidItem(
            "TypeError",
            f"line {lineno}: field {key_field!r} is {kind}; a key must be a string or an integer",
        ),
    )


# ---------------------------------------------------------------------------------------------
# Sources the engine hands to workers whole


class JsonlSource:
    """A JSON Lines file, each line one item: workers read, decode and key the lines.

    Made by ``crunch.jsonl(path, key=...)``; the keys are those of ``jsonl_items``. The engine
    cuts a regular file into line-aligned byte ranges; any other file (a pipe) is read here,
    line by line. ``skip``: keys not to run (already done, for ``--resume``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key_field: str | None = None,
        skip: frozenset[Any] | None = None,
    ) -> None:
        self.path = path
        self.key_field = key_field
        self.skip = skip or None

    def regular(self) -> bool:
        try:
            return stat.S_ISREG(os.stat(self.path).st_mode)
        except OSError:
            return False

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """``(key, item)`` pairs read here, in the parent (the path for pipes)."""
        skip = self.skip
        for key, item in jsonl_items(self.path, key_field=self.key_field):
            if skip is None or key not in skip:
                yield key, item

    def __repr__(self) -> str:
        return f"crunch.jsonl({os.fspath(self.path)!r}, key={self.key_field!r})"


class FilesSource:
    """Files by key: the engine sends workers their keys, and each worker makes the ``Path``.

    ``entries`` yields ``(key, None)`` for the file at the key, as ``walk_keys`` does, or
    ``(key, Path | InvalidItem)`` pairs, as ``walk`` and ``stdin_paths`` do; no ``Path`` is
    sent (a worker makes the same one from the key).
    """

    def __init__(self, entries: Iterable[tuple[str, Any]]) -> None:
        self.entries = entries

    def keys(self) -> Iterator[Any]:
        """A key per file, or ``(key, item)`` when the item is not ``Path(key)`` (an entry that
        could not be read, a private copy of a pipe)."""
        invalid = InvalidItem
        for key, item in self.entries:
            if item is None:
                yield key
            else:
                yield (key, item) if type(item) is invalid or str(item) != key else key

    def __iter__(self) -> Iterator[Path | InvalidItem]:
        for key, item in self.entries:
            yield Path(key) if item is None else item


def jsonl(path: str | os.PathLike[str], *, key: str | None = None) -> JsonlSource:
    """The lines of a JSON Lines file as items, keyed by line number or by the field ``key``.

    ``crunch.imap(fn, crunch.jsonl("records.jsonl", key="id"))``: the workers read, decode and
    key the lines themselves, so the parent's cost per item stays tiny. A line that is not
    valid JSON, or lacks the key field, is a failed item keyed by its line number.
    """
    return JsonlSource(path, key)


def files(
    *paths: str | os.PathLike[str],
    hidden: bool = False,
    follow_symlinks: bool = False,
    glob: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> FilesSource:
    """Every file under ``paths`` (files or directories), walked as ``crunch process`` does.

    Each item is a ``pathlib.Path`` keyed by its path string; workers build the ``Path``
    themselves. ``glob`` and ``exclude`` take the command's ``--glob``/``--exclude`` patterns.
    """
    roots = [os.fspath(p) for p in paths]
    return FilesSource(
        walk_keys(
            roots,
            hidden=hidden,
            follow_symlinks=follow_symlinks,
            globs=tuple(glob),
            excludes=tuple(exclude),
        )
    )
