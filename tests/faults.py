"""Task functions for the tests, importable by worker processes, and the table of faults.

Each fault case is an item value that makes ``faulty`` misbehave in one way; every other item
returns ``x * x``. ``FAULTS`` says which kind of record each case must end as, per mode.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import time
from dataclasses import dataclass


def square(x: int) -> int:
    return x * x


def square_or_fail(x: int) -> int:
    if x % 10 == 3:
        raise ValueError(f"bad item {x}")
    return x * x


async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def slow_square(x: int) -> int:
    time.sleep(0.002)
    return x * x


class Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")


class BadReduceError(Exception):
    def __reduce__(self):
        raise RuntimeError("__reduce__ of this exception fails")


class UnpicklableError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = __import__("threading").Lock()


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # the record's error kind
    type: str  # the record's error type
    modes: tuple[str, ...]  # the modes where this fault can be injected safely
    message_has: str = ""


ALL = ("sync", "thread", "async", "process")
PROCESS = ("process",)

FAULTS = {
    "raise": Fault("raise", "error", "ValueError", ALL, "boom"),
    "sysexit": Fault("sysexit", "error", "SystemExit", ALL, "4"),
    "keyboard": Fault("keyboard", "error", "KeyboardInterrupt", ALL),
    "bad_reduce_exc": Fault("bad_reduce_exc", "error", "BadReduceError", ALL, "reduce"),
    "unpicklable_exc": Fault("unpicklable_exc", "error", "UnpicklableError", ALL, "lock"),
    "unpicklable_value": Fault(
        "unpicklable_value", "error", "TypeError", PROCESS, "could not be pickled"
    ),
    "exit": Fault("exit", "crash", "WorkerDied", PROCESS, "exited with code 3"),
    "sigkill": Fault("sigkill", "crash", "WorkerDied", PROCESS, "SIGKILL"),
    "segfault": Fault("segfault", "crash", "WorkerDied", PROCESS, "SIGSEGV"),
    "hang": Fault("hang", "timeout", "TimeoutError", ALL, "timeout"),
    "spin": Fault("spin", "timeout", "TimeoutError", ALL, "timeout"),
}


def faulty(x: object) -> object:
    """``x * x`` for ints; a fault for the name of a fault case."""
    if isinstance(x, int):
        time.sleep(0.001)
        return x * x
    if x == "raise":
        raise ValueError("boom")
    if x == "sysexit":
        raise SystemExit(4)
    if x == "keyboard":
        raise KeyboardInterrupt
    if x == "bad_reduce_exc":
        raise BadReduceError("my __reduce__ fails")
    if x == "unpicklable_exc":
        raise UnpicklableError("carries a lock")
    if x == "unpicklable_value":
        return Unpicklable()
    if x == "exit":
        os._exit(3)
    if x == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if x == "segfault":
        ctypes.string_at(0)
    if x == "hang":
        time.sleep(10)
    if x == "spin":
        end = time.monotonic() + 3  # past the hard limit, short enough not to hog the GIL
        while time.monotonic() < end:
            pass
    raise AssertionError(f"unknown fault {x!r}")


def pickles(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


_calls_file = None


def record_call(x: int) -> int:
    """Appends x to the file named by $CRUNCH_TEST_CALLS, then returns x * x."""
    path = os.environ["CRUNCH_TEST_CALLS"]
    with open(path, "a") as f:
        f.write(f"{x}\n")
    return x * x


_flaky_state: dict[int, int] = {}


def flaky(x: int, error: type[Exception] = ConnectionError) -> int:
    """Fails with ``error`` on the first two tries of each item (counted in $CRUNCH_TEST_CALLS)."""
    path = os.environ["CRUNCH_TEST_CALLS"]
    with open(path, "a") as f:
        f.write(f"{x}\n")
    with open(path) as f:
        tries = sum(1 for line in f if line.strip() == str(x))
    if tries <= 2:
        raise error(f"try {tries} of {x} failed")
    return x


class FlakyError(Exception):
    """A user-defined error, named to --retry-on as faults.FlakyError."""


def flaky_custom(x: int) -> int:
    """``flaky`` with a user-defined error."""
    return flaky(x, FlakyError)


def flaky_value_error(x: int) -> int:
    """``flaky`` with a ValueError: never retried, whatever --retry-on names."""
    return flaky(x, ValueError)


def always_value_error(x: int) -> int:
    raise ValueError(f"{x} is invalid")


def sleeper(x: float) -> float:
    time.sleep(x)
    return x


def square_init() -> None:
    os.environ["CRUNCH_TEST_INIT"] = "1"


def bad_init() -> None:
    raise RuntimeError("init refuses")


def sleep_item(item: object) -> object:
    """Sleeps the number of seconds in the item (a JSON number, or a record's "s")."""
    seconds = item["s"] if isinstance(item, dict) else item
    time.sleep(float(seconds))  # ty: ignore[invalid-argument-type]
    return {"pid": os.getpid(), "slept": seconds}


def record_path(path: object) -> int:
    """Notes the path in $CRUNCH_TEST_CALLS, then returns its size (a task over files)."""
    with open(os.environ["CRUNCH_TEST_CALLS"], "a") as f:
        f.write(f"{path}\n")
    return os.path.getsize(str(path))


def fail_on_odd_name(path: object) -> int:
    """Fails for files whose name has an odd number in it, else returns the size."""
    name = os.path.basename(str(path))
    digits = "".join(c for c in name if c.isdigit())
    if digits and int(digits) % 2:
        raise ValueError(f"odd file {name}")
    return os.path.getsize(str(path))


def add_offset(item: object, offset: int = 0, label: str = "") -> object:
    """Returns the item plus ``offset`` and echoes ``label`` (checks -O parsing)."""
    return {
        "value": item + offset if isinstance(item, int) else item,
        "label": label,
        "label_type": type(label).__name__,
    }


_INITIALIZED: list[int] = []


def mark_init() -> None:
    _INITIALIZED.append(os.getpid())


def was_initialized(item: object) -> bool:
    return bool(_INITIALIZED)


def big_result(x: int) -> bytes:
    """A 30 MB value: slow enough to send that a kill can land mid-write."""
    return b"x" * 30_000_000


def _load_only_here(pid: int) -> object:
    if os.getpid() != pid:
        raise RuntimeError("this item cannot be loaded in another process")
    return LoadsOnlyHere()


class LoadsOnlyHere:
    """Pickles fine in the parent; unpickling it in a worker raises."""

    def __reduce__(self):
        return (_load_only_here, (os.getpid(),))
