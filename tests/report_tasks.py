"""A task for the report tests: each input file says how its item behaves.

The first word of the file is the behaviour, the rest its arguments:

    ok                  returns {"words": N}
    raise WORD...       ValueError naming the file, a number and a quoted value
    missing NAME        KeyError('NAME')
    sleep SECONDS       sleeps, then returns (with --timeout: a timeout record)
    crash               the worker dies (os._exit(3)): a crash record in process mode
    flaky N             ConnectionError on the first N attempts (counted in .FILE.attempts), then ok

Used as ``--task report_tasks:act`` with the tests directory on PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def act(path: Path) -> dict[str, int]:
    words = Path(path).read_text().split()
    what, args = words[0], words[1:]
    if what == "raise":
        raise ValueError(f"cannot parse {path}: field 'size' is {len(args)} but expected 0x1f")
    if what == "missing":
        raise KeyError(args[0])
    if what == "sleep":
        time.sleep(float(args[0]))
    elif what == "crash":
        os._exit(3)
    elif what == "flaky":
        path = Path(path)
        marker = path.parent / f".{path.name}.attempts"  # hidden: never walked as an input
        with open(marker, "a") as f:
            f.write("x")
        attempts = marker.stat().st_size
        if attempts <= int(args[0]):
            raise ConnectionError(f"connection reset on attempt {attempts}")
    return {"words": len(words)}
