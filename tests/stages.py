"""The stages of an item's trip, the ways each can go wrong, and what the record must say.

An item travels: pickled in the parent (``send``), unpickled in a worker (``load``), run
(``run``), its value pickled in the worker (``return``), unpickled in the parent
(``receive``). ``CASES`` crosses every stage with every way it can fail there (an exception,
``SystemExit``, ``KeyboardInterrupt``, another ``BaseException``; in a worker also a segfault
and ``os._exit``), and says which modes have that stage and what the bad item's record must
be. ``task`` is the function every case runs: ``x * x`` for ints, a fault for a ``Bad`` item.

Self-contained (standard library only): a dask worker gets this module uploaded as the task's.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any

STAGES = ("send", "load", "run", "return", "receive")
RAISES = ("error", "sysexit", "keyboard", "base")
DIES = ("segfault", "exit")

# The words each stage's failure carries in its message (see the README's record format).
STAGE_WORDS = {
    "send": "could not be pickled in the parent",
    "load": "could not be unpickled in the worker",
    "run": "",
    "return": "could not be pickled in the worker",
    "receive": "could not be unpickled in the parent",
}
DEATH_WORDS = {
    "load": "while the item was being unpickled in the worker",
    "run": "",
    "return": "while the value was being pickled in the worker",
}
RAISED_TYPE = {
    "error": "ValueError",
    "sysexit": "SystemExit",
    "keyboard": "KeyboardInterrupt",
    "base": "StageBaseError",
}
DEATH_MESSAGE = {"segfault": "SIGSEGV", "exit": "exited with code 5"}

# Modes without processes; "async_def" is async mode running ``atask``, an ``async def`` task.
IN_PROCESS = ("sync", "thread", "async", "async_def")


class StageBaseError(BaseException):
    """A ``BaseException`` that is neither ``SystemExit`` nor ``KeyboardInterrupt``."""


def misbehave(how: str) -> None:
    """Fail in the way ``how`` names, wherever this is called."""
    if how == "error":
        raise ValueError("stage fault")
    if how == "sysexit":
        raise SystemExit(7)
    if how == "keyboard":
        raise KeyboardInterrupt("stage fault")
    if how == "base":
        raise StageBaseError("stage fault")
    if how == "segfault":
        ctypes.string_at(0)
    if how == "exit":
        os._exit(5)
    raise AssertionError(f"unknown fault {how!r}")


def in_main_process() -> bool:
    """True in crunch's own process (the caller's), False in a worker process."""
    return multiprocessing.parent_process() is None


class Harmless:
    """What a bad object turns into where it does not misbehave."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Harmless)

    def __hash__(self) -> int:
        return 0


def _load_in_worker(how: str) -> Harmless:
    if not in_main_process():
        misbehave(how)
    return Harmless()


def _load_in_parent(how: str) -> Harmless:
    if in_main_process():
        misbehave(how)
    return Harmless()


class FailsToPickle:
    """Pickling it misbehaves, wherever that happens."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self):
        misbehave(self.how)


class FailsToLoadInWorker:
    """Pickles fine; unpickling it misbehaves in a worker process."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self):
        return (_load_in_worker, (self.how,))


class FailsToLoadInParent:
    """Pickles fine; unpickling it misbehaves in crunch's own process."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self):
        return (_load_in_parent, (self.how,))


@dataclass(frozen=True)
class Bad:
    """The bad item of a case: it fails at ``stage`` in the way ``how`` names."""

    stage: str
    how: str


def bad_item(stage: str, how: str) -> object:
    """The item itself, for the stages where the item is what misbehaves."""
    if stage == "send":
        return FailsToPickle(how)
    if stage == "load":
        return FailsToLoadInWorker(how)
    return Bad(stage, how)


def task(x: object) -> object:
    """``x * x`` for ints; a ``Bad`` item fails at its stage."""
    if isinstance(x, int):
        time.sleep(0.001)
        return x * x
    if isinstance(x, (FailsToPickle, FailsToLoadInWorker)):
        return Harmless()  # reached only in a mode where items are not pickled
    assert isinstance(x, Bad), x
    if x.stage == "run":
        misbehave(x.how)
    if x.stage == "return":
        return FailsToPickle(x.how)
    if x.stage == "receive":
        return FailsToLoadInParent(x.how)
    raise AssertionError(f"unknown stage {x.stage!r}")


async def atask(x: object) -> object:
    """``task`` as an ``async def`` function (mode async awaits it on its event loop)."""
    await asyncio.sleep(0)
    return task(x)


@dataclass(frozen=True)
class Case:
    stage: str
    how: str
    modes: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.stage}-{self.how}"

    def kind(self, mode: str) -> str | None:
        """The bad item's record kind in ``mode``; None: the item is fine there."""
        if mode in IN_PROCESS and self.stage != "run":
            return None  # that stage does not exist: nothing is pickled
        return "crash" if self.how in DIES else "error"

    def check(self, failure: Any, mode: str) -> None:
        """Assert that ``failure`` (a crunch.Failure) is this case's record in ``mode``."""
        kind, type_, message = failure.kind, failure.type, failure.message
        assert kind == self.kind(mode), failure
        if self.how in DIES:
            assert type_ == "WorkerDied", failure
            if mode == "process":  # dask is told a worker died, not how or when
                assert DEATH_MESSAGE[self.how] in message, failure
                assert DEATH_WORDS[self.stage] in message, failure
        else:
            assert type_ == RAISED_TYPE[self.how], failure
            assert STAGE_WORDS[self.stage] in message, failure


def _modes(stage: str, how: str) -> tuple[str, ...]:
    if how in DIES:
        return ("process", "dask")  # a crash in-process takes the whole program with it
    if stage == "run":
        return ("sync", "thread", "async", "async_def", "process", "dask")
    return ("sync", "thread", "async_def", "process", "dask")  # absent in-process: item ok


CASES = [
    Case(stage, how, _modes(stage, how))
    for stage in STAGES
    for how in RAISES + DIES
    if not (how in DIES and stage in ("send", "receive"))  # a crash of the parent: out of reach
]
