"""A unit on its way through a thread, and the timeout watchdog over such threads.

Shared by the modes whose items run on threads of a process that cannot kill them: thread
and sync mode (crunch._backends.thread), async mode's plain functions (crunch._backends.aio) and
a dask worker's item under ``--timeout`` (crunch._backends.dask). A ``LaneJob`` is its thread's
lane: it says which position runs since when, so the watchdog can abandon the job at an item
past the timeout, salvaging what finished.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from crunch._backends import Lost
from crunch._failures import ItemFailure
from crunch._runner import Progress, UnitOutcome, run_unit
from crunch._units import Job


class LaneJob:
    """One unit on its way through a lane thread; doubles as that thread's lane."""

    __slots__ = (
        "abandoned",
        "attempts",
        "chunk_id",
        "future",
        "halted",
        "index",
        "progress",
        "started",
        "thread",
        "unit",
    )

    def __init__(
        self,
        chunk_id: int,
        unit: Any,
        attempts: list[int] | None,
        future: asyncio.Future[Any] | None,
    ) -> None:
        self.chunk_id = chunk_id
        self.unit = unit
        self.attempts = attempts
        self.future = future
        self.progress = Progress()
        self.index = -1
        self.started = 0.0  # 0.0: between items
        self.abandoned = False
        self.halted: Callable[[], bool] = _never
        self.thread: threading.Thread | None = None

    def begin(self, index: int, start: float) -> bool:
        if self.abandoned or self.halted():
            return False
        self.started = start  # before index: the watchdog never pairs a new index with an old time
        self.index = index
        return True

    def end(self) -> None:
        self.started = 0.0

    def run(self, job: Job, timeout: float | None = None) -> UnitOutcome:
        return run_unit(
            job, self.unit, self, attempts=self.attempts, timeout=timeout, progress=self.progress
        )

    def abandon(self, timeout: float) -> Lost:
        """Give up on this job: salvage finished items, blame the hung one, rerun the rest."""
        self.abandoned = True
        hung = self.index
        elapsed = time.monotonic() - self.started
        return Lost(
            rerun=range(hung + 1, len(self.unit)),
            blamed={hung: (ItemFailure.timeout(timeout), elapsed)},
            partial=self.progress.outcome(hung),
        )

    def salvage(self) -> Lost:
        """Stop waiting for this job (the run is being killed): keep what finished."""
        self.abandoned = True
        done = self.done()
        return Lost(rerun=range(done, len(self.unit)), partial=self.progress.outcome(done))

    def done(self) -> int:
        """Positions finished so far: up to the one in hand (all of them once it is over)."""
        if self.index < 0:
            return 0
        return self.index if self.started else self.index + 1


def _never() -> bool:
    return False


class LaneJobs:
    """Jobs in flight on lane threads, with the timeout watchdog over them (thread and async)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.running: set[LaneJob] = set()
        self.halted = False

    def is_halted(self) -> bool:
        return self.halted

    def overdue(self, now: float) -> list[LaneJob]:
        if self.timeout is None:
            return []
        limit = self.timeout
        return [j for j in list(self.running) if j.started and now - j.started > limit]

    def salvage_all(self) -> None:
        self.halted = True
        for job in list(self.running):
            self.running.discard(job)
            if job.future is not None and not job.future.done():
                job.future.set_result(job.salvage())

    def abandon(self, job: LaneJob) -> None:
        assert self.timeout is not None
        self.running.discard(job)
        if job.future is not None and not job.future.done():
            job.future.set_result(job.abandon(self.timeout))
