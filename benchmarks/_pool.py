"""A hand-tuned ``multiprocessing.Pool`` reference for the real-input benchmarks.

    python benchmarks/_pool.py jsonl IN.jsonl OUT.jsonl WORKERS

The parent reads raw line blocks and writes bytes; workers parse, call and encode whole
blocks: the best a careful user writes by hand with the standard library.
"""

from __future__ import annotations

import multiprocessing
import sys

import orjson
from realtasks import cheap

BLOCK = 1 << 20


def blocks(path: str):
    with open(path, "rb") as f:
        while data := f.read(BLOCK):
            data += f.readline()
            yield data


def work(data: bytes) -> bytes:
    loads, dumps = orjson.loads, orjson.dumps
    out = []
    for line in data.splitlines():
        record = loads(line)
        out.append(dumps({"item": record["id"], "ok": True, "value": cheap(record)}))
    out.append(b"")
    return b"\n".join(out)


if __name__ == "__main__":
    _kind, source, out, workers = sys.argv[1:5]
    with multiprocessing.get_context("fork").Pool(int(workers)) as pool, open(out, "wb") as o:
        for chunk in pool.imap_unordered(work, blocks(source)):
            o.write(chunk)
