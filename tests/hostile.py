"""Hostile inputs, one table per kind, for the parametrised tests in ``test_hostile.py``.

A new case is one line in a table. The tables:

- ``NAMES``: file names (as bytes) that must each get exactly one record, under a key that maps
  back to exactly that file (``os.fsencode(json.loads(line)["item"])``), and that ``--resume``
  matches, whether the file is walked or named on standard input (README, "Output").
- ``VALUES``: what a task may return or raise, and the record each must give (README, "Output":
  a record is valid JSON and never carries a value other than the task's).
- ``PLACEMENTS``: where the records go relative to the inputs (``-o`` naming an input in some
  spelling, inside a walked directory, standard output redirected there): refused with exit 2
  and nothing touched, or run with crunch's own output left out of the inputs (README,
  "Inputs"). They run in the tree ``PLACEMENT_TREE`` builds.
- ``DUPLICATE_KEYS``: ``--jsonl FILE --key FIELD`` inputs where a key may name two items
  (README, "Inputs"): refused (exit 2, naming the key and both lines) or run whole.
- ``RESUME_FILES``: what ``-o FILE --resume`` may find in FILE (README, "The command"): refused
  with exit 2 and FILE untouched, or resumed to exactly one record per current input.
- ``OVERLAPS``: PATHs that name files more than once (repeated, nested, through links): one
  item per file, under the key met first, and ``--resume`` has nothing more to do (README,
  "Inputs"). They run in the tree ``OVERLAP_TREE`` builds.
- ``STOPS``: stop signals (SIGINT, SIGTERM, SIGHUP), to crunch alone or to its whole process
  group, at one moment of a run, in the modes listed; ``test_stop_signals.py`` says what each
  moment must give (README, "Exit status" and "What crunch guarantees").

This module is also a task module: workers import it for ``hostile:value``.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Name:
    id: str
    raw: bytes  # the file name's bytes
    on_lines: bool = True  # can travel on line-separated stdin (no "\n", no trailing "\r")


NAMES = [
    Name("plain", b"plain.txt"),
    Name("not-utf8-ff", b"b\xff.txt"),
    Name("not-utf8-latin1", "café".encode("latin-1") + b".txt"),
    Name("utf8-of-a-surrogate", b"\xed\xb3\xbf.txt"),
    Name("literal-backslash-u", b"\\udcff.txt"),  # must not collide with the byte 0xff above
    Name("quote-and-backslash", b'q"uo\\te.txt'),
    Name("newline-inside", b"new\nline.txt", on_lines=False),
    Name("carriage-return-at-end", b"cr.txt\r", on_lines=False),
    Name("spaces-and-tab", b" lead\ttab .txt"),
    Name("leading-dash", b"-o.txt"),
    Name("control-bytes", b"\x01\x1b[31m\x7f.txt"),
    Name("emoji", "\N{GRINNING FACE}.txt".encode()),
    Name("nfc", "\u00e9.txt".encode()),  # the NFC and NFD spellings are two files
    Name("nfd", "e\u0301.txt".encode()),
    Name("looks-like-null", b"null"),
    Name("longest", b"n" * 255),
]


@dataclass(frozen=True)
class Value:
    id: str
    make: Any  # () -> the value the task returns (or raises, for an exception)
    ok: bool
    type: str = ""  # the record's error type when not ok
    message_has: str = ""  # a part of the record's error message when not ok
    needs: str = ""  # a module the case needs (skipped without it)


class _Error(ValueError):
    pass


def _raise(exc: BaseException) -> Any:
    def make() -> Any:
        raise exc

    return make


def _numpy_nan() -> Any:
    import numpy as np

    return {"v": np.array([[1.0, 2.0], [3.0, np.nan]])}


def _numpy_inf_scalar() -> Any:
    import numpy as np

    return [np.float32(np.inf)]


VALUES = [
    Value("nan", lambda: math.nan, False, "ValueError", "NaN at value,"),
    Value("infinity", lambda: math.inf, False, "ValueError", "infinity at value,"),
    Value("minus-infinity", lambda: -math.inf, False, "ValueError", "-infinity at value,"),
    Value("nested-nan", lambda: {"a": [1, (2, math.nan)]}, False, "ValueError", "value['a'][1][1]"),
    Value(
        "surrogate-and-nan", lambda: {"s": "\udcff", "x": math.inf}, False, "ValueError", "['x']"
    ),
    Value("numpy-nan", _numpy_nan, False, "ValueError", "NaN at value['v'][1, 1]", "numpy"),
    Value("numpy-inf", _numpy_inf_scalar, False, "ValueError", "infinity at value[0]", "numpy"),
    Value("none-is-fine", lambda: None, True),
    Value("null-text-is-fine", lambda: {"null": "null", "n": [None]}, True),
    Value("largest-float", lambda: 1.7976931348623157e308, True),
    Value("surrogate-in-value", lambda: ["b\udcff.txt", "\udc80"], True),
    Value(
        "surrogate-in-message",
        _raise(_Error("cannot read b\udcff.txt")),
        False,
        "_Error",
        "cannot read b\udcff.txt",
    ),
    Value("surrogate-in-key-of-value", lambda: {"\udcff": 1}, True),
]

_BY_ID = {case.id: case for case in VALUES}


def value(item: Any) -> Any:
    """The task of the ``VALUES`` cases: the item is a case id (or ``{"id": case id}``)."""
    case_id = item["id"] if isinstance(item, dict) else item
    return _BY_ID[case_id].make()


# ------------------------------------------------------------------------------ placements
def PLACEMENT_TREE(root: Any) -> None:  # noqa: N802 - a table's companion, named like it
    """The inputs every placement case starts from (``root`` is a fresh directory)."""
    import os

    t = root / "t"
    (t / "sub").mkdir(parents=True)
    (t / "a.txt").write_text("alpha\n")
    (t / "b.txt").write_text("beta\n")
    (t / "sub" / "c.txt").write_text("gamma\n")
    (t / "notes.txt").write_text("my notes, not records\n")
    stats = '{"bytes":6,"lines":1,"words":1,"sha256":"-"}'  # what the default task gives
    (t / "old.jsonl").write_text(
        f'{{"item":"t/a.txt","ok":true,"value":{stats},"seconds":0,"attempts":1}}\n'
    )
    (t / "outlink").symlink_to("sub/out.jsonl")  # dangling until a case writes that output
    (root / "notes").write_text("a file of my own, named by no input\n")
    (root / "data.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    (root / "list.txt").write_text("t/a.txt\nt/b.txt\n")
    (root / "list-with-output.txt").write_text("t/out.jsonl\nt/a.txt\n./t/out.jsonl\n")
    (root / "link-a").symlink_to("t/a.txt")
    (root / "tlink").symlink_to("t")
    os.link(t / "a.txt", root / "hard-a")


WALKED = {"t/a.txt", "t/b.txt", "t/sub/c.txt", "t/notes.txt", "t/old.jsonl"}


@dataclass(frozen=True)
class Placement:
    id: str
    args: tuple[str, ...]  # after "crunch process"
    refused: bool  # exit 2, nothing written or truncated; else the run is whole (exit 0)
    keys: frozenset[str] = frozenset()  # the records' items when not refused
    records_in: str = ""  # where the records are ("" for the -o FILE of args; or stdout's FILE)
    stdin_from: str = ""  # standard input redirected from this file
    stdout_to: str = ""  # standard output redirected to this file


def _walked_but(*own: str) -> frozenset[str]:
    return frozenset(WALKED - set(own))


PLACEMENTS = [
    Placement("o-is-the-path", ("t/a.txt", "-o", "t/a.txt"), refused=True),
    Placement("o-is-the-path-spelt-otherwise", ("t/a.txt", "-o", "./t//a.txt"), refused=True),
    Placement("o-is-a-link-to-the-path", ("t/a.txt", "-o", "link-a"), refused=True),
    Placement("o-is-a-hard-link-of-the-path", ("t/a.txt", "-o", "hard-a"), refused=True),
    Placement("path-is-a-link-to-o", ("link-a", "-o", "t/a.txt"), refused=True),
    Placement("o-is-a-path-among-others", ("t", "t/b.txt", "-o", "t/b.txt"), refused=True),
    Placement("o-is-the-jsonl-file", ("--jsonl", "data.jsonl", "-o", "data.jsonl"), refused=True),
    Placement(
        "resume-from-the-jsonl-file",
        ("--jsonl", "data.jsonl", "-o", "data.jsonl", "--resume"),
        refused=True,
    ),
    Placement("o-is-standard-input", ("-", "-o", "list.txt"), refused=True, stdin_from="list.txt"),
    Placement("o-is-a-walked-file-not-records", ("t", "-o", "t/notes.txt"), refused=True),
    Placement("o-is-a-walked-file-via-a-link", ("tlink", "-o", "t/a.txt"), refused=True),
    # Paths on stdin come after -o is truncated: a file that is not records could be one.
    Placement("o-not-records-and-stdin", ("-", "-o", "notes"), refused=True, stdin_from="list.txt"),
    Placement("o-new-inside-the-walk", ("t", "-o", "t/out.jsonl"), False, _walked_but()),
    Placement("o-new-deeper", ("t", "-o", "t/sub/out.jsonl"), False, _walked_but()),
    Placement("o-an-earlier-output", ("t", "-o", "t/old.jsonl"), False, _walked_but("t/old.jsonl")),
    Placement(
        "resume-an-earlier-output",
        ("t", "-o", "t/old.jsonl", "--resume"),
        False,
        _walked_but("t/old.jsonl"),  # its record of t/a.txt is kept, not run again
    ),
    Placement("o-named-through-a-linked-dir", ("t", "-o", "tlink/out.jsonl"), False, _walked_but()),
    Placement(
        "o-reached-by-a-followed-link",
        ("t", "--follow-symlinks", "-o", "t/sub/out.jsonl"),
        False,
        _walked_but(),
    ),
    Placement(
        "stdin-names-the-output",
        ("-", "-o", "t/out.jsonl"),
        False,
        frozenset({"t/a.txt"}),
        stdin_from="list-with-output.txt",
    ),
    Placement(
        "o-earlier-records-with-stdin",
        ("-", "-o", "t/old.jsonl"),
        False,
        frozenset({"t/a.txt", "t/b.txt"}),
        stdin_from="list.txt",
    ),
    Placement(
        "stdout-redirected-into-the-walk",
        ("t",),
        False,
        _walked_but(),
        records_in="t/out.jsonl",
        stdout_to="t/out.jsonl",
    ),
]


# -------------------------------------------------------------------------------- overlaps
def OVERLAP_TREE(root: Any) -> None:  # noqa: N802 - a table's companion, named like it
    """``d`` with a nested directory, a hidden file and a hard link; links to ``d`` and a file."""
    import os

    d = root / "d"
    (d / "sub" / "deep").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt", "sub/deep/e.txt", ".hid.txt"):
        (d / name).write_text(f"{name}\n")
    os.link(d / "a.txt", d / "hard.txt")  # a second name of a.txt: a second item
    (root / "link-d").symlink_to("d")
    (root / "link-a").symlink_to("d/a.txt")


_D = ("d/a.txt", "d/b.txt", "d/hard.txt", "d/sub/c.txt", "d/sub/deep/e.txt")


@dataclass(frozen=True)
class Overlapping:
    id: str
    args: tuple[str, ...]  # after "crunch process"
    keys: tuple[str, ...]  # one record each, nothing else
    stdin: bytes = b""


OVERLAPS = [
    Overlapping("as-in-the-issue", ("d", "d/sub", "./d/a.txt", "d"), _D),
    Overlapping("one-root-twice", ("d", "d"), _D),
    Overlapping("spelt-four-ways", ("d", "./d", "d/", "d//"), _D),
    Overlapping("inner-root-after", ("d", "d/sub"), _D),
    Overlapping("inner-root-first", ("d/sub", "d"), _D),
    Overlapping("inner-file-first", ("./d/a.txt", "d"), _D),
    Overlapping("inner-file-after", ("d", "d/sub/c.txt"), _D),
    Overlapping("file-twice", ("d/b.txt", "./d/b.txt"), ("d/b.txt",)),
    Overlapping(
        "link-to-a-root", ("link-d", "d"), tuple(k.replace("d/", "link-d/", 1) for k in _D)
    ),
    Overlapping("link-to-a-file", ("link-a", "d"), ("link-a", *_D[1:])),
    Overlapping("hard-links-are-two-names", ("d/a.txt", "d/hard.txt"), ("d/a.txt", "d/hard.txt")),
    Overlapping("hidden-file-named-as-a-root", ("d", "d/.hid.txt"), (*_D, "d/.hid.txt")),
    Overlapping(
        "each-root-keeps-its-own-glob",  # *.txt matches c.txt only from the root d/sub
        ("d", "d/sub", "--glob", "*.txt"),
        ("d/a.txt", "d/b.txt", "d/hard.txt", "d/sub/c.txt"),
    ),
    Overlapping("on-both-sides-of-stdin", ("d", "-", "d/sub"), _D, stdin=b""),
    Overlapping("followed-links-lead-back-in", ("d", "link-d", "--follow-symlinks"), _D),
]


# ------------------------------------------------------------------------------- stop signals
@dataclass(frozen=True)
class Stop:
    id: str
    signum: int
    to: str  # "group": crunch's whole process group (a terminal, `timeout`, systemd);
    #          "crunch": crunch alone; "thread": crunch, delivered to a thread other than
    #          its main one (the kernel picks any thread that does not block the signal)
    moment: str  # "start-up", "first-half-second", "in-flight", "hung", "no-input", "crash-storm"
    modes: tuple[str, ...]


LOCAL = ("process", "thread", "async", "sync")
TERM, INT, HUP = signal.SIGTERM, signal.SIGINT, signal.SIGHUP

STOPS = [
    Stop("term-group-in-flight", TERM, "group", "in-flight", (*LOCAL, "dask")),  # dask: local
    Stop("int-group-in-flight", INT, "group", "in-flight", ("process", "async")),
    Stop("hup-crunch-in-flight", HUP, "crunch", "in-flight", ("process", "thread")),
    Stop("hup-group-in-flight", HUP, "group", "in-flight", ("process",)),
    Stop("term-crunch-in-flight", TERM, "crunch", "in-flight", ("dask",)),  # a local cluster
    Stop("term-group-hung", TERM, "group", "hung", LOCAL),
    Stop("int-crunch-hung", INT, "crunch", "hung", ("process",)),
    Stop("term-thread-hung", TERM, "thread", "hung", LOCAL),
    Stop("term-crunch-no-input", TERM, "crunch", "no-input", ("process", "thread")),
    Stop("int-group-no-input", INT, "group", "no-input", ("async",)),
    Stop("term-crunch-crash-storm", TERM, "crunch", "crash-storm", ("process",)),
    Stop("int-group-start-up", INT, "group", "start-up", ("process",)),
    Stop("term-group-start-up", TERM, "group", "start-up", ("thread",)),
    Stop("hup-crunch-start-up", HUP, "crunch", "start-up", ("process",)),
    Stop("int-group-first-half-second", INT, "group", "first-half-second", ("process",)),
    Stop("term-crunch-first-half-second", TERM, "crunch", "first-half-second", ("thread",)),
]


# -------------------------------------------------------------------------- duplicate keys
@dataclass(frozen=True)
class Keyed:
    id: str
    lines: tuple[str, ...]  # the --jsonl file, one JSON text (or not) a line
    repeated: str = ""  # the repeated key as JSON ("" when the input is fine)
    at: tuple[int, int] = (0, 0)  # the lines of its two items
    field: str = "id"


DUPLICATE_KEYS = [
    Keyed("string-twice", ('{"id": "a"}', '{"id": "b"}', '{"id": "a"}'), '"a"', (1, 3)),
    Keyed("integer-twice", ('{"id": 1}', '{"id": 2}', '{"id": 1}'), "1", (1, 3)),
    Keyed("string-and-integer-differ", ('{"id": "1"}', '{"id": 1}')),
    Keyed("id-equals-a-malformed-lines-number", ('{"id": "x"}', "{oops", '{"id": 2}'), "2", (2, 3)),
    Keyed("malformed-line-after-its-number", ('{"id": 3}', '{"id": "y"}', "{oops"), "3", (1, 3)),
    Keyed("line-without-the-field", ('{"id": 2}', '{"n": 1}'), "2", (1, 2)),
    Keyed("key-of-the-wrong-type", ('{"id": 2}', '{"id": true}'), "2", (1, 2)),
    Keyed("true-is-not-1", ('{"id": 1}', '{"id": true}', '{"id": 3}')),
    Keyed("blank-lines-are-no-items", ('{"id": "a"}', "", "  ", '{"id": "b"}')),
    Keyed(
        "late-repeat",
        (*(f'{{"id": {n}}}' for n in range(100, 160)), '{"id": 100}'),
        "100",
        (1, 61),
    ),
    Keyed("other-field", ('{"k": "a", "id": 1}', '{"k": "a", "id": 2}'), '"a"', (1, 2), "k"),
]


# ---------------------------------------------------------------------------- resume files
def _record(item: str, value: Any, ok: bool = True) -> str:
    import json

    body = {"item": item, "ok": ok, "value" if ok else "error": value}
    return json.dumps({**body, "seconds": 0.1, "attempts": 1}, separators=(",", ":")) + "\n"


_STATS = {"bytes": 6, "lines": 1, "words": 1, "sha256": "-"}  # the shape of a stats value
_FAILED = {"kind": "error", "type": "OSError", "message": "x", "traceback": ""}


@dataclass(frozen=True)
class ResumeFile:
    id: str
    content: bytes = b""  # FILE before the resumed run
    made_by: tuple[str, ...] = ()  # or: FILE made by "crunch process t" with these options
    args: tuple[str, ...] = ()  # options of the resumed run (after "crunch process t")
    refused: str = ""  # a part of the message when refused (exit 2, FILE untouched)
    keys: tuple[str, ...] = ("t/a.txt", "t/b.txt")  # FILE's records after the resumed run
    removed: int = 0  # records of items no longer among the inputs that were removed


RESUME_FILES = [
    ResumeFile("same-task", made_by=("--task", "stats")),
    ResumeFile("written-by-another-task", made_by=("--task", "checksum"), refused="another task"),
    ResumeFile(
        "task-now-fails-on-a-done-item",
        content=_record("t/a.txt", _STATS).encode(),
        args=("--task", "faults:always_value_error"),
        refused="the task now fails on it",
    ),
    ResumeFile("text-without-a-newline", b"my notes", refused="not a crunch result record"),
    ResumeFile("torn-first-record", b'{"item":"t/a.txt","ok":tr'),
    ResumeFile(
        "two-ok-records-for-one-key",
        (_record("t/a.txt", _STATS) * 2).encode(),
        refused="two ok records",
    ),
    ResumeFile(
        "records-of-items-gone",
        (_record("t/gone.txt", _STATS) + _record("t/a.txt", _STATS)).encode(),
        removed=1,
    ),
    ResumeFile(
        "failed-records-of-items-gone",
        (_record("t/gone.txt", _FAILED, ok=False) + _record("t/a.txt", _STATS)).encode(),
    ),
    ResumeFile(
        "a-narrower-glob",
        (_record("t/a.txt", _STATS) + _record("t/b.txt", _STATS)).encode(),
        args=("--glob", "a*"),
        keys=("t/a.txt",),
        removed=1,
    ),
    ResumeFile("an-empty-file", b""),
]
