"""A task that fails the way real ones do, to show what ``crunch report`` makes of a run.

It "parses" each file after a call to a made-up remote service:

- the service takes ~10 ms with a long tail, and drops one call in six with
  ``ConnectionError`` (retried with ``--retries``: most of these items then succeed);
- Python files are parsed with ``ast`` (the broken one in ``data/odd`` raises SyntaxError);
- JSON Lines files must hold only valid JSON (``data/odd/bad-lines.jsonl`` does not);
- everything else must be UTF-8 text (the Latin-1 files are not);
- a few files (chosen by their digest) make the service hang (``--timeout`` ends them), and an
  empty file crashes the "native parser" (the worker dies by SIGSEGV).

The README's example:

    crunch gen demo/ --kind mixed --files 200 --seed 7 --size 2MiB
    crunch process demo/ data/odd --task docs/report_demo.py:parse \\
        --timeout 1 --retries 2 -o demo.jsonl
    crunch report demo.jsonl --plot report.png
"""

from __future__ import annotations

import ast
import ctypes
import hashlib
import json
import random
import time
from pathlib import Path


def parse(path: Path) -> dict[str, int]:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).digest()
    if random.random() < 1 / 6:
        raise ConnectionError("connection reset by peer")
    if digest[0] < 4:
        time.sleep(3600)  # the service never answers
    time.sleep(random.lognormvariate(-4.6, 0.9))  # ~10 ms, with a long tail
    if not data:
        ctypes.string_at(0)  # the native parser reads address 0: SIGSEGV
    if path.suffix == ".py":
        tree = ast.parse(data, filename=path.name)
        return {"nodes": sum(1 for _ in ast.walk(tree))}
    if path.suffix == ".jsonl":
        records = 0
        for number, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}: line {number} is not JSON: {exc}") from None
                records += 1
        return {"records": records}
    return {"words": len(data.decode("utf-8").split())}
