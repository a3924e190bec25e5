"""Real inputs at fine grain: crunch against a plain serial loop, a tuned Pool and xargs.

    uv run python benchmarks/realinputs.py                 # all three workloads, 3 rounds
    uv run python benchmarks/realinputs.py --only jsonl --records 200000 --rounds 5

Workloads (inputs are generated once into --data-dir and reused):
- jsonl: 1,000,000 JSON Lines records of ~75 bytes, the cheap function of realtasks.py;
  `crunch process --jsonl F --key id -o out.jsonl -j 2` against the serial loop of
  _serial.py (parse, call, encode, write) and the Pool of _pool.py (raw line blocks to
  workers, records built there).
- files: 50,000 files of ~2 KiB in 50 directories; `crunch process DIR --task checksum -o
  out.jsonl -j 2` against the serial loop (os.walk, hashlib, orjson) and
  `find DIR -type f -print0 | xargs -0 -P2 -n 1000 sha256sum`.
- one-file: `crunch process one.txt` in sync and process mode against
  `python -c "import click, pydantic, orjson"`, the floor any run of the command pays.

Every command runs as a whole process, after one untimed warm-up; the rounds are interleaved
(A B C A B C ...) so that a busy moment of the machine hits every contender; the figures are
medians. For crunch the
parent's own peak RSS and CPU seconds are read through _peak.py; CPU per item gives the rate
at which the parent alone would saturate (the ceiling on a machine with more cores).
Writes results/realinputs.json and results/realinputs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import RESULTS, machine

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERIAL = str(HERE / "_serial.py")
POOL = str(HERE / "_pool.py")
FLOOR = "python -c 'import click, pydantic, orjson'"
HEADER = "| contender | median s | ratio | parent peak MB | parent ceiling items/s |"
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def make_jsonl(path: Path, records: int) -> None:
    if path.exists():
        return
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i in range(1, records + 1):
            text = " ".join(rng.choices(WORDS, k=5))
            f.write(json.dumps({"id": i, "name": f"u{i:07d}", "text": text}) + "\n")
    tmp.rename(path)


def make_files(root: Path, count: int) -> None:
    if root.exists():
        return
    rng = random.Random(1)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    per_dir = max(1, count // 50)
    for i in range(count):
        d = tmp / f"d{i // per_dir:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_bytes(rng.randbytes(1024).hex().encode())
    tmp.rename(root)


# Every contender runs as an installed program would: from bytecode. A shell that forbids
# writing bytecode (PYTHONDONTWRITEBYTECODE) would make each run compile its imports again.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str] | str, *, shell: bool = False, peak: Path | None = None) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, shell=shell, capture_output=True, check=False, env=ENV)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise SystemExit(f"failed ({proc.returncode}): {cmd}\n{proc.stderr.decode()[-2000:]}")
    out = {"seconds": seconds}
    if peak is not None:
        rss, cpu = peak.read_text().split()
        out["peak_rss_mb"] = int(rss) / 1024
        out["parent_cpu"] = float(cpu)
    return out


def crunch_cmd(peak: Path, *args: str) -> list[str]:
    return [PY, str(HERE / "_peak.py"), str(peak), "process", "--no-progress", *args]


def run_rounds(contenders: dict[str, dict], rounds: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for spec in contenders.values():  # a warm-up, not timed: page cache and bytecode
        timed(spec["cmd"], shell=spec.get("shell", False), peak=spec.get("peak"))
    for _ in range(rounds):
        for name, spec in contenders.items():
            runs[name].append(
                timed(spec["cmd"], shell=spec.get("shell", False), peak=spec.get("peak"))
            )
    return runs


def summarise(runs: dict[str, list[dict]], items: int, base: str) -> dict[str, dict]:
    table = {}
    for name, got in runs.items():
        row = {"median_s": statistics.median(r["seconds"] for r in got), "runs": got}
        if "peak_rss_mb" in got[0]:
            row["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in got)
            cpu = statistics.median(r["parent_cpu"] for r in got)
            row["parent_cpu_s"] = cpu
            row["parent_ceiling_items_per_s"] = items / cpu if cpu else None
        table[name] = row
    base_s = table[base]["median_s"]
    for row in table.values():
        row["speedup_vs_" + base] = base_s / row["median_s"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["jsonl", "files", "one-file"], action="append")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "crunch-bench"))
    args = parser.parse_args()
    only = args.only or ["jsonl", "files", "one-file"]
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crunch-realinputs-"))
    w = str(args.workers)
    results: dict = {"machine": machine(), "workers": args.workers, "rounds": args.rounds}
    task = f"{HERE / 'realtasks.py'}:cheap"
    try:
        if "jsonl" in only:
            src = data / f"records-{args.records}.jsonl"
            make_jsonl(src, args.records)
            peak = work / "peak-jsonl"
            contenders = {
                "serial loop": {
                    "cmd": [PY, str(HERE / "_serial.py"), "jsonl", str(src), str(work / "s.jsonl")]
                },
                "crunch": {
                    "cmd": crunch_cmd(
                        peak,
                        "--jsonl",
                        str(src),
                        "--key",
                        "id",
                        "--task",
                        task,
                        "-o",
                        str(work / "c.jsonl"),
                        "-j",
                        w,
                    ),
                    "peak": peak,
                },
                "Pool (tuned)": {
                    "cmd": [PY, str(HERE / "_pool.py"), "jsonl", str(src), str(work / "p.jsonl"), w]
                },
            }
            runs = run_rounds(contenders, args.rounds)
            results["jsonl"] = summarise(runs, args.records, "serial loop")
            report("jsonl", results["jsonl"], args.records)
        if "files" in only:
            root = data / f"files-{args.files}"
            make_files(root, args.files)
            peak = work / "peak-files"
            contenders = {
                "serial loop": {
                    "cmd": [PY, str(HERE / "_serial.py"), "files", str(root), str(work / "s.jsonl")]
                },
                "crunch": {
                    "cmd": crunch_cmd(
                        peak, str(root), "--task", "checksum", "-o", str(work / "c.jsonl"), "-j", w
                    ),
                    "peak": peak,
                },
                "xargs -P2 sha256sum": {
                    "cmd": f"find {root} -type f -print0 | xargs -0 -P{w} -n 1000 sha256sum"
                    f" > {work / 'x.txt'}",
                    "shell": True,
                },
            }
            runs = run_rounds(contenders, args.rounds)
            results["files"] = summarise(runs, args.files, "serial loop")
            report("files", results["files"], args.files)
        if "one-file" in only:
            one = work / "one.txt"
            one.write_text("abc\n")
            crunch = str(Path(PY).with_name("crunch"))
            contenders = {
                "python -c 'import click, pydantic, orjson'": {
                    "cmd": [PY, "-c", "import click, pydantic, orjson"]
                },
                "crunch --mode sync": {"cmd": [crunch, "process", str(one), "--mode", "sync"]},
                "crunch --mode process": {"cmd": [crunch, "process", str(one)]},
            }
            runs = run_rounds(contenders, max(args.rounds, 5))
            table = summarise(runs, 1, "crunch --mode sync")
            floor = table[FLOOR]["median_s"]
            for row in table.values():
                row["vs_floor"] = row["median_s"] / floor
            results["one-file"] = table
            report("one-file", table, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if only == ["jsonl", "files", "one-file"] else "-" + "-".join(only)
    (RESULTS / f"realinputs{suffix}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"realinputs{suffix}.md").write_text(markdown(results))
    print(f"wrote {RESULTS / f'realinputs{suffix}.md'}")


def report(name: str, table: dict, items: int) -> None:
    print(f"\n== {name} ({items:,} items)")
    for who, row in table.items():
        extra = ""
        if "peak_rss_mb" in row:
            extra = (
                f"  parent peak {row['peak_rss_mb']:.1f} MB, parent CPU {row['parent_cpu_s']:.2f} s"
                f" (ceiling {row['parent_ceiling_items_per_s']:,.0f} items/s)"
            )
        ratio = _ratio(row)
        floor = f"  {row['vs_floor']:.2f}x floor" if "vs_floor" in row else ""
        print(f"  {who:<45} {row['median_s']:7.3f} s  {ratio:5.2f}x{floor}{extra}", flush=True)


def _ratio(row: dict) -> float:
    return next(v for k, v in row.items() if k.startswith("speedup_vs_"))


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Real inputs at fine grain",
        "",
        f"{m['usable_cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"{results['workers']} workers, median of {results['rounds']} interleaved rounds, "
        f"load {m['load_average']}. Command: `uv run python benchmarks/realinputs.py`.",
    ]
    for name in ("jsonl", "files", "one-file"):
        table = results.get(name)
        if not table:
            continue
        lines += [
            "",
            f"## {name}",
            "",
            "| contender | median s | ratio | parent peak MB | parent ceiling items/s |",
            "|---|--:|--:|--:|--:|",
        ]
        for who, row in table.items():
            ratio = row.get("vs_floor") or next(
                v for k, v in row.items() if k.startswith("speedup_vs_")
            )
            peak = f"{row['peak_rss_mb']:.1f}" if "peak_rss_mb" in row else ""
            ceiling = (
                f"{row['parent_ceiling_items_per_s']:,.0f}"
                if row.get("parent_ceiling_items_per_s")
                else ""
            )
            lines.append(f"| {who} | {row['median_s']:.3f} | {ratio:.2f}x | {peak} | {ceiling} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
