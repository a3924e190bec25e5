"""Async mode: an asyncio event loop, N items' worth of concurrency under a semaphore.

- ``async def`` tasks are awaited directly on the engine's loop, one chunk per semaphore slot;
  ``asyncio.wait_for`` cancels an item at ``timeout`` (a real cancellation).
- plain functions run in a thread, as ``asyncio.to_thread`` runs them (context variables
  included), under ``asyncio.Semaphore(N)``, on N threads of crunch's own (asyncio's default
  of ``cpu + 4`` threads would cap I/O-bound work). A thread cannot be cancelled: at
  ``timeout`` the item is reported and its thread abandoned, as in thread mode, and a fresh set
  of threads takes over so the stuck one does not shrink the pool. They are daemon threads
  that nothing waits for (``DaemonThreads``): the threads of a ``ThreadPoolExecutor`` are
  joined when the interpreter exits, so one item hung past ``timeout`` would keep the
  program, its summary printed, from ever ending.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from crunch._backends import Backend, Lost
from crunch._backends._lanes import LaneJob, LaneJobs
from crunch._exceptions import WorkerStartError
from crunch._failures import startup_error_text
from crunch._runner import UnitOutcome, arun_unit, is_async_task
from crunch._units import Job


class AsyncBackend(Backend):
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
        self.timeout = timeout
        self.init = init
        self.is_async = is_async_task(job.fn)
        self.jobs = LaneJobs(None if self.is_async else timeout)
        self.semaphore: asyncio.Semaphore | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: dict[asyncio.Task[Any], LaneJob] = {}
        self.holding: set[LaneJob] = set()
        self.local = threading.local()
        self.init_error: str | None = None
        self.threads: DaemonThreads | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.semaphore = asyncio.Semaphore(self.lanes)
        if not self.is_async:
            self.threads = DaemonThreads(self.lanes)
        elif self.init is not None:
            self._run_init()

    def _run_init(self) -> None:
        try:
            assert self.init is not None
            self.init()
        except BaseException as exc:  # noqa: BLE001 - reported as the run's error
            self.init_error = startup_error_text(exc)

    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[UnitOutcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[UnitOutcome | Lost] = self.loop.create_future()
        job = LaneJob(chunk_id, unit, attempts, future)
        job.halted = self.jobs.is_halted
        task = self.loop.create_task(self._run(job))
        self.tasks[task] = job
        task.add_done_callback(self._forget)
        return future

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self.tasks.pop(task, None)

    async def _run(self, job: LaneJob) -> None:
        assert self.semaphore is not None
        assert job.future is not None
        try:
            await self.semaphore.acquire()
        except asyncio.CancelledError:  # killed while waiting for a slot: it never started
            job.future.cancel()
            raise
        self.holding.add(job)
        try:
            if self.init_error is not None:
                job.future.set_exception(WorkerStartError(self.init_error))
                return
            try:
                if self.is_async:
                    outcome = await arun_unit(
                        self.job, job.unit, job, attempts=job.attempts, timeout=self.timeout
                    )
                else:
                    self.jobs.running.add(job)
                    outcome = await self._to_thread(self._in_thread, job)
                    self.jobs.running.discard(job)
            except asyncio.CancelledError:
                job.future.cancel()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler
                if not job.future.done():
                    job.future.set_exception(exc)
                return
            if not job.future.done():
                job.future.set_result(outcome)
        finally:
            self._release(job)

    def _release(self, job: LaneJob) -> None:
        if job in self.holding:
            self.holding.discard(job)
            assert self.semaphore is not None
            self.semaphore.release()

    async def _to_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``asyncio.to_thread``, on crunch's own daemon threads."""
        assert self.loop is not None
        assert self.threads is not None
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await self.loop.run_in_executor(self.threads, call)

    def _in_thread(self, job: LaneJob) -> UnitOutcome:
        if self.init is not None and not getattr(self.local, "ready", False):
            self.local.ready = True
            self._run_init()
        if self.init_error is not None:
            raise WorkerStartError(self.init_error)
        return job.run(self.job)

    def check_timeouts(self, now: float) -> None:
        overdue = self.jobs.overdue(now)
        for job in overdue:
            self.jobs.abandon(job)
            self._release(job)  # its thread is stuck, not its semaphore slot
            for task, owner in list(self.tasks.items()):
                if owner is job:
                    task.cancel()  # stop awaiting the stuck thread (the thread runs on)
        if overdue and self.threads is not None:
            # The stuck threads stay with the old set; new items get a full one.
            self.threads.shutdown(wait=False)
            self.threads = DaemonThreads(self.lanes)

    def halt(self) -> None:
        self.jobs.halted = True

    async def close(self, *, kill: bool) -> None:
        self.halt()
        if kill:
            self.jobs.salvage_all()
            for task in list(self.tasks):
                task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.threads is not None:
            self.threads.shutdown(wait=False)


class DaemonThreads(Executor):
    """Up to ``workers`` daemon threads running the calls submitted, started as they are needed.

    ``ThreadPoolExecutor`` without its exit hook (which joins every thread it started): a
    thread stuck in a hung item never keeps the interpreter from exiting.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.started = 0
        self.calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self.idle = threading.Semaphore(0)
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.calls.put((future, functools.partial(fn, *args, **kwargs)))
        if not self.idle.acquire(blocking=False):
            with self.lock:
                if self.started < self.workers:
                    self.started += 1
                    threading.Thread(target=self._work, name="crunch-async", daemon=True).start()
        return future

    def _work(self) -> None:
        while (call := self.calls.get()) is not None:
            future, fn = call
            if future.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del call, future, fn
            self.idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Each thread ends at its next None; one stuck in an item ends when (if) it returns.
        with self.lock:
            for _ in range(self.started):
                self.calls.put(None)
