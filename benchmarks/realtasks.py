"""Cheap per-item functions for the real-input benchmarks (benchmarks/realinputs.py).

At module level so that crunch workers and the Pool reference can import them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def cheap(record: dict[str, Any]) -> int:
    """A few microseconds of work on one JSON record: the fine grain where overhead shows."""
    return len(record["text"]) + record["id"] % 7


def checksum(path: Path) -> dict[str, str]:
    """What crunch's built-in ``checksum`` task returns, for the serial reference loop."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"algorithm": "sha256", "digest": digest}
