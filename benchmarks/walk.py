"""The parent's cost per file of a directory walk: keys only, or a ``pathlib.Path`` per file.

    uv run python benchmarks/walk.py                          # 50,000 files, 9 rounds
    uv run python benchmarks/walk.py --files 20000 --rounds 5
    uv run python benchmarks/walk.py --against OLD/src        # also time another crunch

The engine (``crunch.files``, ``crunch process DIR``) sends workers the keys of files, and each
worker makes its own ``Path``. This times what the parent does per file, on a tree of small
files in directories of 1,000, made once in --dir (a temporary directory by default):

- ``engine``: ``crunch.files(root).keys()``, the keys the engine reads (``walk_keys``: no
  ``Path`` is made);
- ``walk``: ``crunch._sources.walk``, the public walk, which yields ``Path(key)`` per file;
- ``walk+str``: ``FilesSource(walk(...)).keys()``, a ``Path`` made per file and turned back
  into its string, which is what the engine's walk did while it made Paths;
- ``against engine``, ``against walk``: with ``--against SRC``, the same two of the crunch in
  SRC (its ``src`` directory, e.g. an older commit's: ``git archive COMMIT src | tar -x -C
  OLD``).

Every contender runs in a fresh interpreter of this Python, one walk per round, after one
untimed warm-up walk (the directory entries are in the page cache for all of them); rounds are
interleaved with the order rotated, and the figures are medians. Only the walk is timed, not
the interpreter's start-up. Appends its table to results/walk.md with --out.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import RESULTS, machine

SRC = Path(__file__).resolve().parent.parent / "src"

# Run in a fresh interpreter: argv is (src directory, root, contender); prints seconds.
_ONE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from crunch import _sources as sources
root, contender = sys.argv[2], sys.argv[3]
if contender == "walk":
    walk = lambda: sources.walk([root])
elif contender == "walk+str":
    walk = lambda: sources.FilesSource(sources.walk([root])).keys()
else:
    walk = lambda: sources.files(root).keys()
for _ in walk():  # warm-up: the page cache, the first-call costs
    pass
start = time.perf_counter()
count = 0
for _ in walk():
    count += 1
print(time.perf_counter() - start, count)
"""


def make_tree(root: Path, files: int) -> None:
    """``files`` empty files, 1,000 a directory, half of them one level deeper."""
    made = root.with_name(root.name + ".made")
    if made.exists():
        return
    for n in range(files):
        directory = root / f"d{n // 1000:03}" / ("sub" if n % 2 else "")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{n % 1000:04}.txt").touch()
    made.touch()


def time_one(src: str, root: Path, contender: str, files: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _ONE, src, str(root / "tree"), contender],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    seconds, count = float(out[0]), int(out[1])
    if count != files:
        raise SystemExit(f"{contender}: walked {count} files, expected {files}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--dir", type=Path, default=None, help="where the tree is made (kept)")
    parser.add_argument("--against", default=None, help="the src directory of another crunch")
    parser.add_argument("--out", action="store_true", help="append the table to results/walk.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        base = args.dir or Path(scratch)
        make_tree(base / "tree", args.files)
        contenders = [("engine", str(SRC)), ("walk", str(SRC)), ("walk+str", str(SRC))]
        if args.against:
            other = os.path.abspath(args.against)
            contenders += [("against engine", other), ("against walk", other)]
        times: dict[str, list[float]] = {name: [] for name, _ in contenders}
        for round_ in range(args.rounds):
            shift = round_ % len(contenders)
            for name, src in contenders[shift:] + contenders[:shift]:
                contender = name.removeprefix("against ")
                times[name].append(time_one(src, base, contender, args.files))

    facts = machine()
    lines = [
        f"### {args.files:,} files, CPython {platform.python_version()}, "
        f"median of {args.rounds} ({time.strftime('%Y-%m-%d')}, load {facts['load_average']})",
        "",
        "| contender | median ms | µs per file | vs engine |",
        "|---|--:|--:|--:|",
    ]
    engine = statistics.median(times["engine"])
    for name, _src in contenders:
        median = statistics.median(times[name])
        lines.append(
            f"| {name} | {median * 1e3:.1f} | {median / args.files * 1e6:.2f} "
            f"| {median / engine:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / "walk.md", "a") as out:
            out.write(table + "\n")


if __name__ == "__main__":
    main()
