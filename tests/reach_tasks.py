"""Functions that tests/test_pool_reach.py runs in pool workers, and a forkserver preload.

Imported as a forkserver preload module (``CRUNCH_TEST_MASK_FILE`` set), it writes the
server's blocked-signal mask, as the server started with it, into that file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main_file() -> str | None:
    """The file of this process's ``__main__``: the parent's script when a worker imported
    it, None in a worker that did not (its ``__main__`` is the forkserver's)."""
    return getattr(sys.modules["__main__"], "__file__", None)


def blocked_signals(status: str) -> set[int]:
    """The signals of the ``SigBlk`` mask in a ``/proc/PID/status`` text."""
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {n + 1 for n in range(64) if mask >> n & 1}
    raise AssertionError("no SigBlk line")


_MASK_FILE = os.environ.get("CRUNCH_TEST_MASK_FILE")
if _MASK_FILE and __name__ == "reach_tasks":
    Path(_MASK_FILE).write_text(Path("/proc/self/status").read_text())
