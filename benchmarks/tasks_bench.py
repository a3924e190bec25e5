"""Built-in tasks at scale: splitting a big file, and a tree of Python files across workers.

    uv run python benchmarks/tasks_bench.py [--size 300MB] [--workers 2] [--repeat 3]

1. ``wordfreq`` on one generated text file of ``--size`` (default ~300 MB): unsplit (the
   file is one item, so one worker does it all) vs split into line-aligned ranges
   (``--split-size 16MiB``), both in process mode on ``--workers``. The two records must be
   equal; the split one should approach ``workers`` times faster.
2. ``pyast`` over a generated tree of Python files: sync vs process on ``--workers``.

Each case runs the real command (``python -m crunch process ...``) as a subprocess, timed
whole, ``--repeat`` times; the median counts. Writes benchmarks/results/tasks.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchutil

from crunch._gen import generate
from crunch._sizes import parse_size


def timed(args: list[str]) -> tuple[float, bytes]:
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "crunch", "process", *args, "--no-progress"],
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if out.returncode not in (0, 1):
        raise SystemExit(f"crunch failed ({out.returncode}): {out.stderr.decode()}")
    return elapsed, out.stdout


def median_run(args: list[str], repeat: int) -> tuple[float, bytes]:
    runs = [timed(args) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="300MB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--py-files", type=int, default=400)
    options = parser.parse_args()
    workers = str(options.workers)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        text_dir = Path(tmp) / "text"
        began = time.perf_counter()
        [big] = generate(text_dir, "text", files=1, seed=1, size=parse_size(options.size))
        made = time.perf_counter() - began
        size_mb = big.stat().st_size / 1e6
        print(f"generated {size_mb:.0f} MB of text in {made:.1f} s", file=sys.stderr)
        base = [str(big), "--task", "wordfreq", "--workers", workers]
        unsplit, out_unsplit = median_run([*base, "--split-size", "1GiB"], options.repeat)
        split, out_split = median_run([*base, "--split-size", "16MiB"], options.repeat)
        same = orjson.loads(out_unsplit)["value"] == orjson.loads(out_split)["value"]
        rows.append(
            [
                "wordfreq, 1 file",
                f"{size_mb:.0f} MB",
                "unsplit",
                f"{unsplit:.2f}",
                f"{size_mb / unsplit:.1f} MB/s",
                "1.00x",
                "",
            ]
        )
        rows.append(
            [
                "wordfreq, 1 file",
                f"{size_mb:.0f} MB",
                "split 16MiB",
                f"{split:.2f}",
                f"{size_mb / split:.1f} MB/s",
                f"{unsplit / split:.2f}x",
                "records equal" if same else "RECORDS DIFFER",
            ]
        )

        py_dir = Path(tmp) / "py"
        paths = generate(py_dir, "py", files=options.py_files, seed=2, size=10_000_000)
        py_mb = sum(p.stat().st_size for p in paths) / 1e6
        args = [str(py_dir), "--task", "pyast"]
        sync, out_sync = median_run([*args, "--mode", "sync"], options.repeat)
        proc, out_proc = median_run(
            [*args, "--mode", "process", "--workers", workers], options.repeat
        )

        def values(raw: bytes) -> dict:
            return {r["item"]: r.get("value") for r in map(orjson.loads, raw.splitlines())}

        same = values(out_sync) == values(out_proc)
        label = f"pyast, {len(paths)} files"
        rows.append(
            [
                label,
                f"{py_mb:.0f} MB",
                "sync",
                f"{sync:.2f}",
                f"{len(paths) / sync:.0f} files/s",
                "1.00x",
                "",
            ]
        )
        rows.append(
            [
                label,
                f"{py_mb:.0f} MB",
                f"process x{workers}",
                f"{proc:.2f}",
                f"{len(paths) / proc:.0f} files/s",
                f"{sync / proc:.2f}x",
                "records equal" if same else "RECORDS DIFFER",
            ]
        )
    header = ["workload", "input", "how", "seconds (median)", "rate", "speed-up", "check"]
    table = benchutil.markdown_table(header, rows)
    print(table)
    benchutil.save_json(
        "tasks.json", {"machine": benchutil.machine(), "header": header, "rows": rows}
    )
    benchutil.save_text("tasks.md", table + "\n")


if __name__ == "__main__":
    main()
