"""Thread mode (and sync mode, with one lane): chunks run on plain threads of this process.

    scheduler --submit--> job queue --> lane thread: run_unit(job, unit, lane, progress=...)
                                              |  job.progress fills as items finish; job.index
                                              |  and job.started say which position runs since
                                              |  when
    scheduler <--future-- call_soon_threadsafe(result)

A thread cannot be killed. At ``timeout`` the watchdog *abandons* the job instead: the items
finished so far are salvaged from ``job.progress``, the hung item is failed as a timeout, the rest
run again elsewhere, and a new lane thread replaces the stuck one (which exits when, if ever,
its item returns; its late result is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from crunch._failures import ItemFailure, startup_error_text
from crunch._runner import Progress, UnitOutcome, run_unit
from crunch._units import Job
from crunch.backends import Backend, Lost
from crunch.exceptions import WorkerStartError


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


class ThreadBackend(Backend):
    """N lane threads pulling jobs from one queue."""

    min_chunk_seconds = 0.003  # a hand-off between threads is cheap; I/O waits want concurrency

    def __init__(
        self,
        job: Job,
        *,
        workers: int,
        timeout: float | None,
        init: Callable[[], Any] | None,
    ) -> None:
        self.job = job
        self.lanes = workers
        self.init = init
        self.jobs = LaneJobs(timeout)
        self.queue: queue.SimpleQueue[LaneJob | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.init_error: str | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        for _ in range(self.lanes):
            self._add_lane()

    def _add_lane(self) -> None:
        thread = threading.Thread(target=self._lane_main, name="crunch-lane", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _lane_main(self) -> None:
        assert self.loop is not None
        loop = self.loop
        if self.init is not None:
            try:
                self.init()
            except BaseException as exc:  # noqa: BLE001 - reported as the run's error
                self.init_error = startup_error_text(exc)
        while (job := self.queue.get()) is not None:
            if self.init_error is not None:
                _post(loop, _fail, job.future, WorkerStartError(self.init_error))
                continue
            job.halted = self.jobs.is_halted
            job.thread = threading.current_thread()
            outcome = job.run(self.job)
            if job.abandoned:
                return  # a replacement lane took over; this late result is dropped
            _post(loop, self._finish, job, outcome)

    def _finish(self, job: LaneJob, outcome: UnitOutcome) -> None:
        self.jobs.running.discard(job)
        if job.future is not None and not job.future.done():
            job.future.set_result(outcome)

    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[UnitOutcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[UnitOutcome | Lost] = self.loop.create_future()
        job = LaneJob(chunk_id, unit, attempts, future)
        self.jobs.running.add(job)
        self.queue.put(job)
        return future

    def check_timeouts(self, now: float) -> None:
        for job in self.jobs.overdue(now):
            self.jobs.abandon(job)
            if job.thread in self.threads:
                self.threads.remove(job.thread)
            self._add_lane()

    def halt(self) -> None:
        self.jobs.halted = True

    async def close(self, *, kill: bool) -> None:
        # Threads cannot be killed; halting makes each stop before its next item, and the lane
        # threads are daemons, so an abandoned one never holds the interpreter open.
        if kill:
            self.jobs.salvage_all()
        for _ in self.threads:
            self.queue.put(None)
        if not kill:
            alive = [t for t in self.threads if t.is_alive()]
            await asyncio.to_thread(_join_all, alive)


def _join_all(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + 5.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Hand a lane's result to the loop; after the run ended (loop closed) drop it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
