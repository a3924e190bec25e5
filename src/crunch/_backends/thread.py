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

from crunch._backends import Backend, Lost
from crunch._backends._lanes import LaneJob, LaneJobs
from crunch._exceptions import WorkerStartError
from crunch._failures import startup_error_text
from crunch._runner import UnitOutcome
from crunch._units import Job


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
