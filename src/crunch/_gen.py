"""Deterministic synthetic data sets, for trials and benchmarks (``crunch gen``).

:func:`generate` writes ``files`` files of one kind into a directory:

- ``text``: UTF-8 prose from a Zipf-distributed vocabulary (English words, made-up words, a few
  accented and non-Latin ones), in lines of varied length with blank lines between paragraphs
  and an occasional very long line;
- ``jsonl``: JSON Lines records, objects whose fields vary in presence and type (``int``,
  ``float``, ``str``, ``bool``, ``null``, lists and nested objects);
- ``py``: valid Python modules of varied shape: imports, constants, functions, ``async def``
  with ``await``/``async for``/``async with``, classes with methods and decorators, nested
  functions and classes, ``if``/``elif``/``else``, loops with ``else``, ``try`` with ``except``,
  ``except*``, ``else`` and ``finally``, ``with``, ``match``;
- ``mixed``: the three kinds in turn, in subdirectories: ``text/``, ``text/notes/``,
  ``jsonl/``, ``py/`` and ``py/pkg/``.

``size`` is the approximate total number of bytes of the whole set, shared among the files in
varied amounts (each file between about half and one and a half times its even share, and at
least one line or record); a file stops at the first line boundary past its share.

The same arguments always give the same bytes: every random choice comes from a
``random.Random`` seeded with a string made from ``seed`` (never the global generator or
``hash()``), one per file, so a file does not depend on how many others are made. Files are
built from small precomputed pools of lines, records and code blocks and streamed to disk in
blocks of about 1 MiB, so a set of any size needs only a few MiB of memory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from itertools import accumulate
from os import PathLike
from pathlib import Path

KINDS = ("text", "jsonl", "py", "mixed")
DEFAULT_SIZE = 1 << 20
BLOCK_SIZE = 1 << 20
_MAX_BATCH = 4096  # lines or records drawn at a time

_COMMON_TEXT = (
    "the of and to a in is it you that he was for on are with as I his they be at one have this "
    "from or had by hot word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father"
)
_UNICODE_TEXT = (
    "café naïve façade Straße über Ärger smörgåsbord jalapeño crème brûlée "
    "Ελλάδα λόγος мир привет 東京 日本語 データ 서울 ﬁne İstanbul"
)
_SYLLABLE_TEXT = (
    "ka ri to mo ne su la vi po de an el or un ix ba ce fo gu hy ja ke lo mu ny pa qu ro si te "
    "va wo xe yu ze str pl tr ch sh th qu"
)
_COMMON_WORDS: tuple[str, ...] = tuple(_COMMON_TEXT.split())
_UNICODE_WORDS: tuple[str, ...] = tuple(_UNICODE_TEXT.split())
_SYLLABLES: tuple[str, ...] = tuple(_SYLLABLE_TEXT.split())


def _rng(seed: int, *parts: object) -> random.Random:
    """A generator seeded from ``seed`` and ``parts`` (a string seed is hashed with SHA-512)."""
    return random.Random("/".join(map(str, (seed, *parts))))


def _vocabulary(seed: int) -> tuple[list[str], list[float]]:
    """Words in rank order and their cumulative Zipf weights."""
    rng = _rng(seed, "vocabulary")
    made_up = {"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(2500)}
    made_up -= set(_COMMON_WORDS)
    rare = [*sorted(made_up), *_UNICODE_WORDS]
    rng.shuffle(rare)
    words = [*_COMMON_WORDS, *rare]
    weights = [1 / (rank + 1) ** 1.05 for rank in range(len(words))]
    return words, list(accumulate(weights))


def _text_line(rng: random.Random, words: list[str], cum: list[float], count: int) -> str:
    chosen = rng.choices(words, cum_weights=cum, k=count)
    for i in range(len(chosen)):
        roll = rng.random()
        if roll < 0.03:
            chosen[i] = str(rng.randrange(10 ** rng.randint(1, 6)))
        elif roll < 0.12:
            chosen[i] += ","
        elif roll < 0.16:
            chosen[i] += "."
            if i + 1 < len(chosen):
                chosen[i + 1] = chosen[i + 1].capitalize()
    chosen[0] = chosen[0].capitalize()
    chosen[-1] = chosen[-1].rstrip(",.")
    return " ".join(chosen) + rng.choice(".....!?;:")


def _text_pool(seed: int) -> list[bytes]:
    rng = _rng(seed, "text-pool")
    words, cum = _vocabulary(seed)
    pool = []
    for _ in range(4096):
        roll = rng.random()
        if roll < 0.06:
            line = ""
        elif roll < 0.075:
            line = _text_line(rng, words, cum, rng.randint(150, 700))
        else:
            line = _text_line(rng, words, cum, rng.randint(2, 18))
        pool.append(line.encode() + b"\n")
    return pool


def _jsonl_pool(seed: int) -> list[bytes]:
    """Serialized records without their leading ``{"id":N,`` (added per record)."""
    rng = _rng(seed, "jsonl-pool")
    words, cum = _vocabulary(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(low, high)))

    pool = []
    for _ in range(2048):
        record: dict[str, object] = {"name": text(1, 3)}
        roll = rng.random()
        record["score"] = (
            round(rng.uniform(-100, 100), rng.randint(0, 6))
            if roll < 0.7
            else rng.randrange(-1000, 1000)
            if roll < 0.9
            else None
        )
        record["active"] = rng.random() < 0.5
        record["tags"] = rng.sample(words[:60], rng.randint(0, 4))
        if rng.random() < 0.6:
            record["meta"] = {
                "source": rng.choice(["web", "api", "batch", "import", "mobile"]),
                "rank": rng.randrange(1, 10_000),
                "weights": [round(rng.random(), 3) for _ in range(rng.randint(0, 3))],
            }
        elif rng.random() < 0.5:
            record["meta"] = None
        if rng.random() < 0.3:
            record["comment"] = text(3, 25)
        if rng.random() < 0.2:
            record["values"] = [rng.randrange(100) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.15:
            record["created"] = (
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
            )
        if rng.random() < 0.05:
            record["ratio"] = rng.choice([0, 1, 0.5, 1e-9, 12345.678, -3])
        body = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        pool.append(body[1:].encode() + b"\n")
    return pool


# --- Python source -----------------------------------------------------------------------------

_PY_IMPORTS = (
    "import asyncio",
    "import functools",
    "import itertools",
    "import json",
    "import math as _math",
    "import os",
    "import re",
    "import sys",
    "from collections import Counter, defaultdict",
    "from contextlib import contextmanager, suppress",
    "from dataclasses import dataclass, field",
    "from pathlib import Path",
    "from typing import Any",
)
_PY_NAMES = ("value", "items", "total", "count", "key", "data", "result", "item", "text", "size")
_PY_EXPRS = (
    "len(items)",
    "value + 1",
    "total * 2 - count",
    "[x * x for x in range(count) if x % 3]",
    "{k: v for k, v in zip(items, range(size))}",
    "sorted(items, key=lambda x: -x)",
    "sum(v for v in data if v)",
    "f'{key}={value!r}'",
    "(value, total, 'tuple')",
    "key if value else None",
    "data.get(key, 0)",
    "max(size, 3) // 2",
    "'café' + text",
    "not result",
    "{1, 2, 3} | {count}",
)


class _PySource:
    """Random Python statements; emits lines with indentation into ``self.lines``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def name(self) -> str:
        return self.rng.choice(_PY_NAMES)

    def expr(self) -> str:
        return self.rng.choice(_PY_EXPRS)

    def simple(self, indent: int, *, func: bool, is_async: bool, loop: bool, jumps: bool) -> None:
        rng = self.rng
        options = ["assign", "assign", "augassign", "call", "call", "pass", "import"]
        if jumps and func:
            options.append("return")
        if jumps and loop:
            options += ["break", "continue"]
        if is_async:
            options.append("await")
        elif func and jumps:
            options.append("yield")
        match rng.choice(options):
            case "assign":
                self.emit(indent, f"{self.name()} = {self.expr()}")
            case "augassign":
                self.emit(indent, f"{self.name()} {rng.choice(['+=', '-=', '|=', '*='])} 1")
            case "call":
                self.emit(indent, f"print({self.expr()}, file=sys.stderr)")
            case "pass":
                self.emit(indent, "pass")
            case "import":
                self.emit(indent, rng.choice(_PY_IMPORTS))
            case "return":
                self.emit(indent, f"return {self.expr()}")
            case "break" | "continue" as jump:
                self.emit(indent, jump)
            case "await":
                self.emit(indent, f"{self.name()} = await asyncio.sleep(0, {self.expr()})")
            case "yield":
                self.emit(indent, f"yield {self.expr()}")

    def body(
        self, indent: int, depth: int, *, func: bool, is_async: bool, loop: bool, jumps: bool = True
    ) -> None:
        for _ in range(self.rng.randint(1, 3)):
            self.statement(indent, depth, func=func, is_async=is_async, loop=loop, jumps=jumps)

    def statement(
        self, indent: int, depth: int, *, func: bool, is_async: bool, loop: bool, jumps: bool
    ) -> None:
        rng = self.rng
        if depth >= 5 or rng.random() < 0.5:
            self.simple(indent, func=func, is_async=is_async, loop=loop, jumps=jumps)
            return
        kinds = ["if", "elif", "for", "while", "try", "trystar", "with", "match", "def"]
        if is_async:
            kinds += ["async for", "async with"]
        kind = rng.choice(kinds)
        inner = {"func": func, "is_async": is_async, "loop": loop, "jumps": jumps}
        deeper = depth + 1
        if kind in ("if", "elif"):
            self.emit(indent, f"if {self.expr()}:")
            self.body(indent + 1, deeper, **inner)
            for _ in range(rng.randint(1, 3) if kind == "elif" else 0):
                self.emit(indent, f"elif {self.name()} > {rng.randrange(100)}:")
                self.body(indent + 1, deeper, **inner)
            if rng.random() < 0.5:
                self.emit(indent, "else:")
                self.body(indent + 1, deeper, **inner)
        elif kind in ("for", "async for", "while"):
            if kind == "while":
                self.emit(indent, f"while {self.name()} < {rng.randrange(1, 50)}:")
            elif kind == "for":
                self.emit(indent, f"for {self.name()} in {self.expr()}:")
            else:
                self.emit(indent, f"async for {self.name()} in _aiter_items(items):")
            self.body(indent + 1, deeper, **{**inner, "loop": True})
            if rng.random() < 0.3:
                self.emit(indent, "else:")
                self.body(indent + 1, deeper, **inner)
        elif kind == "try":
            self.emit(indent, "try:")
            self.body(indent + 1, deeper, **inner)
            for error in rng.sample(["ValueError", "KeyError", "(OSError, TypeError)"], 2):
                self.emit(indent, f"except {error} as exc:")
                self.body(indent + 1, deeper, **inner)
            if rng.random() < 0.4:
                self.emit(indent, "else:")
                self.body(indent + 1, deeper, **inner)
            if rng.random() < 0.4:
                self.emit(indent, "finally:")
                self.body(indent + 1, deeper, **inner)
        elif kind == "trystar":
            self.emit(indent, "try:")
            self.body(indent + 1, deeper, **inner)
            self.emit(indent, "except* ValueError as group:")
            # break, continue and return cannot leave an except* block
            self.body(indent + 1, deeper, **{**inner, "jumps": False})
        elif kind in ("with", "async with"):
            if kind == "with":
                self.emit(indent, f"with open({self.name()}) as handle, suppress(KeyError):")
            else:
                self.emit(indent, "async with asyncio.timeout(1.5) as scope:")
            self.body(indent + 1, deeper, **inner)
        elif kind == "match":
            self.emit(indent, f"match {self.name()}:")
            cases = rng.sample(
                ["0 | 1", "[first, *rest]", "{'key': found}", "str() as word", "(x, y)", "None"],
                rng.randint(1, 3),
            )
            for case in [*cases, "_"]:
                self.emit(indent + 1, f"case {case}:")
                self.body(indent + 2, deeper, **inner)
        else:
            self.function(indent, deeper, is_async=rng.random() < 0.3, name="inner")

    def function(
        self, indent: int, depth: int, *, is_async: bool, name: str, first: str = ""
    ) -> None:
        rng = self.rng
        if not first and rng.random() < 0.2:
            self.emit(indent, "@functools.cache")
        keyword = "async def" if is_async else "def"
        params = f"{first}items, value=None, *args, size: int = 3, **kwargs"
        self.emit(indent, f"{keyword} {name}({params}):")
        if rng.random() < 0.5:
            self.emit(indent + 1, f'"""Synthetic {keyword} {name}."""')
        self.emit(indent + 1, "total = count = 0")
        self.body(indent + 1, depth, func=True, is_async=is_async, loop=False)
        if not is_async or rng.random() < 0.5:
            self.emit(indent + 1, f"return {self.expr()}")

    def klass(self, indent: int, name: str) -> None:
        rng = self.rng
        if rng.random() < 0.3:
            self.emit(indent, "@dataclass")
        bases = rng.choice(["", "(object)", "(dict)", "(Exception)"])
        self.emit(indent, f"class {name}{bases}:")
        self.emit(indent + 1, f'"""Synthetic class {name}."""')
        self.emit(indent + 1, f"limit: int = {rng.randrange(100)}")
        for i in range(rng.randint(1, 4)):
            decorator = rng.choice(["", "", "", "@staticmethod", "@classmethod"])
            first = {"": "self, ", "@classmethod": "cls, "}.get(decorator, "")
            if decorator:
                self.emit(indent + 1, decorator)
            self.function(
                indent + 1, 2, is_async=rng.random() < 0.2, name=f"method_{i}", first=first
            )
        if rng.random() < 0.2:
            self.emit(indent + 1, "class Inner:")
            self.emit(indent + 2, "pass")


def _py_pool(seed: int) -> list[bytes]:
    """Top-level blocks, with ``__N__`` where each use puts a number unique in its file."""
    rng = _rng(seed, "py-pool")
    pool = []
    for _ in range(256):
        source = _PySource(rng)
        roll = rng.random()
        if roll < 0.4:
            source.function(0, 1, is_async=False, name="function__N__")
        elif roll < 0.6:
            source.function(0, 1, is_async=True, name="coroutine__N__")
        elif roll < 0.9:
            source.klass(0, "Model__N__")
        else:
            source.emit(0, f"CONSTANT__N__ = {source.expr()!s}")
        pool.append(("\n\n" + "\n".join(source.lines) + "\n").encode())
    return pool


def _py_header(rng: random.Random, index: int) -> bytes:
    imports = sorted(
        {"import asyncio", "import functools", "import sys", "from contextlib import suppress"}
        | set(rng.sample(_PY_IMPORTS, rng.randint(1, 5))),
        key=lambda line: (line.startswith("from"), line),
    )
    lines = [
        f'"""Synthetic module {index}: generated by crunch gen, valid but never run."""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "",
        f"VERSION = {rng.randrange(1000)}",
        "items = data = key = text = result = value = None",
        "",
        "",
        "async def _aiter_items(items):",
        "    for item in items or ():",
        "        yield item",
        "",
    ]
    return ("\n".join(lines) + "\n").encode()


# --- files -------------------------------------------------------------------------------------

Piece = Callable[[int], bytes]  # remaining bytes wanted -> the next whole lines


def _batch(remaining: int, average: int) -> int:
    """How many lines to draw: about half of what remains, so a file ends close to its share."""
    return max(1, min(_MAX_BATCH, remaining // (2 * max(average, 1))))


def _text_writer(pool: list[bytes], rng: random.Random) -> Piece:
    average = sum(map(len, pool)) // len(pool)

    def piece(remaining: int) -> bytes:
        return b"".join(rng.choices(pool, k=_batch(remaining, average)))

    return piece


def _jsonl_writer(pool: list[bytes], rng: random.Random) -> Piece:
    average = sum(map(len, pool)) // len(pool) + 10
    next_id = 1

    def piece(remaining: int) -> bytes:
        nonlocal next_id
        bodies = rng.choices(pool, k=_batch(remaining, average))
        first = next_id
        next_id += len(bodies)
        return b"".join([b'{"id":%d,%s' % (first + i, body) for i, body in enumerate(bodies)])

    return piece


def _py_writer(pool: list[bytes], rng: random.Random, index: int) -> Piece:
    header = _py_header(rng, index)
    blocks = 0

    def piece(remaining: int) -> bytes:
        nonlocal blocks
        blocks += 1
        if blocks == 1:
            return header
        block = rng.choice(pool)
        if remaining < len(block):  # near the end: of a few more, take the one that fits best
            block = min((block, *rng.choices(pool, k=3)), key=lambda b: abs(len(b) - remaining))
        return block.replace(b"__N__", b"_%d" % (blocks - 1))

    return piece


def _write(path: Path, target: int, piece: Piece) -> None:
    """Write whole pieces to ``path`` until it holds at least ``target`` bytes."""
    written = 0
    with open(path, "wb") as f:
        parts: list[bytes] = []
        buffered = 0
        while written + buffered < target:
            part = piece(target - written - buffered)
            parts.append(part)
            buffered += len(part)
            if buffered >= BLOCK_SIZE:
                f.write(b"".join(parts))
                written += buffered
                parts, buffered = [], 0
        f.write(b"".join(parts))


_NAMES = {"text": "text-{n}.txt", "jsonl": "records-{n}.jsonl", "py": "module_{n}.py"}
_MIXED_DIRS = {"text": ("text", "text/notes"), "jsonl": ("jsonl",), "py": ("py", "py/pkg")}


def generate(
    directory: str | PathLike[str],
    kind: str = "text",
    files: int = 10,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
) -> list[Path]:
    """Write ``files`` files of ``kind`` (about ``size`` bytes in all) under ``directory``.

    Returns the paths written, in order. See the module docstring for the kinds and layout.
    The directory (and its parents) is created when missing; files of the same name are
    replaced, others are left alone.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    for name, number in (("files", files), ("seed", seed), ("size", size)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError(f"{name} must be an integer, got {number!r}")
    if files < 0:
        raise ValueError(f"files must be a non-negative integer, got {files!r}")
    if size < 0:
        raise ValueError(f"size must be a non-negative number of bytes, got {size!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if files == 0:
        return []

    shares = _rng(seed, kind, "shares")
    weights = [shares.uniform(0.5, 1.5) for _ in range(files)]
    scale = size / sum(weights)
    width = max(4, len(str(files - 1)))
    pools: dict[str, list[bytes]] = {}
    makers = {"text": _text_pool, "jsonl": _jsonl_pool, "py": _py_pool}
    made = dict.fromkeys(_NAMES, 0)  # files of each kind so far

    paths = []
    for index in range(files):
        file_kind = ("text", "jsonl", "py")[index % 3] if kind == "mixed" else kind
        if file_kind not in pools:
            pools[file_kind] = makers[file_kind](seed)
        folder = root
        if kind == "mixed":  # each kind's files take turns among its folders
            dirs = _MIXED_DIRS[file_kind]
            folder = root / dirs[made[file_kind] % len(dirs)]
        made[file_kind] += 1
        path = folder / _NAMES[file_kind].format(n=f"{index:0{width}d}")
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = _rng(seed, kind, index)
        pool = pools[file_kind]
        if file_kind == "text":
            piece = _text_writer(pool, rng)
        elif file_kind == "jsonl":
            piece = _jsonl_writer(pool, rng)
        else:
            piece = _py_writer(pool, rng, index)
        _write(path, max(1, round(weights[index] * scale)), piece)
        paths.append(path)
    return paths
