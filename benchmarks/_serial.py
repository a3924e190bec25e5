"""The plain serial loops crunch is measured against (benchmarks/realinputs.py).

    python benchmarks/_serial.py jsonl IN.jsonl OUT.jsonl    # parse, call, encode, write
    python benchmarks/_serial.py files DIR OUT.jsonl         # walk, checksum, encode, write

What a user writes by hand instead of crunch: one process, no per-item timing, the same
record shape crunch writes (``item``, ``ok``, ``value``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
from realtasks import cheap, checksum


def jsonl(source: str, out: str) -> None:
    loads, dumps = orjson.loads, orjson.dumps
    with open(source, "rb") as f, open(out, "wb") as o:
        write = o.write
        for line in f:
            record = loads(line)
            write(dumps({"item": record["id"], "ok": True, "value": cheap(record)}) + b"\n")


def files(root: str, out: str) -> None:
    dumps = orjson.dumps
    with open(out, "wb") as o:
        for directory, subdirs, names in os.walk(root):
            subdirs.sort()
            for name in sorted(names):
                path = Path(directory, name)
                o.write(dumps({"item": str(path), "ok": True, "value": checksum(path)}) + b"\n")


if __name__ == "__main__":
    kind, source, out = sys.argv[1:4]
    {"jsonl": jsonl, "files": files}[kind](source, out)
