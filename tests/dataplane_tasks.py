"""Tasks for the data-plane tests: they act on JSON records, at module level for the workers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def double(record: dict[str, Any]) -> int:
    return record["x"] * 2


def exit_on_37(record: dict[str, Any]) -> int:
    """Kills its worker on the record with id 37 (a crash inside a line range)."""
    if record["id"] == 37:
        os._exit(3)
    return record["x"] * 2


def hang_on_5(record: dict[str, Any]) -> int:
    """Sleeps far past any test timeout on the record with id 5."""
    if record["id"] == 5:
        time.sleep(60)
    return record["x"] * 2


def flaky_on_even(record: dict[str, Any]) -> int:
    """Fails with ConnectionError the first time it meets an even id (a marker file per id)."""
    marks = Path(os.environ["CRUNCH_TEST_MARKS"])
    mark = marks / str(record["id"])
    if record["id"] % 2 == 0 and not mark.exists():
        mark.touch()
        raise ConnectionError(f"first try of {record['id']}")
    return record["x"] * 2


def fail_when_told(record: dict[str, Any]) -> int:
    """Fails on ids listed in CRUNCH_TEST_FAIL (comma-separated)."""
    bad = {int(x) for x in os.environ.get("CRUNCH_TEST_FAIL", "").split(",") if x}
    if record["id"] in bad:
        raise ValueError(f"told to fail on {record['id']}")
    return record["x"] * 2


def size(path: Path) -> int:
    return path.stat().st_size


class touch_then_double:  # noqa: N801 - used like a function: touch_then_double(marker)(record)
    """A task that leaves a file behind the first time it runs (did anything run at all?)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, record: dict[str, Any]) -> int:
        Path(self.marker).touch()
        return record["id"] * 2


def none_nan_or_value(record: dict[str, Any]) -> Any:
    """None for even ids, NaN for id 7, else a dict holding a None: nulls of both kinds."""
    if record["id"] == 7:
        return float("nan")
    return None if record["id"] % 2 == 0 else {"x": record["x"], "none": None}
