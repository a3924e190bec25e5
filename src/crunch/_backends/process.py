"""Process mode: a ``ProcessPoolExecutor``, supervised so that a dead worker costs one item.

    scheduler --submit(chunk)--> ProcessBackend --pool.submit(process_chunk, id, unit)--> worker
        ^                              |                                                     |
        |                              |<----------- pickled outcome (bytes) ----------------|
        +---- UnitOutcome / Lost ------+                                                     |
                                       |          slot table (shared memory, a row a worker) |
                                       +--reads-> pid | chunk id | item index | started  <--+
                                                          written by the worker per item

Actors
- the worker (``crunch._worker.process_chunk``): runs a chunk and, before each item, writes
  which item it is on into its row of the slot table. It returns its outcome pickled, having
  checked that it pickles (a value that does not is failed in the worker, alone).
- the pool: a stock ``ProcessPoolExecutor`` on the *forkserver* start method. The parent has
  threads (the engine loop, the pool's own manager and feeder threads, the input reader);
  forking a process with threads can copy a held lock into the child and deadlock it, so
  workers are forked from a single-threaded server instead. It is also much cheaper than
  ``spawn`` per worker, since the server has ``crunch._worker`` preloaded.
- process groups (``_groups``): the forkserver leaves crunch's process group as it starts,
  so a signal sent to that whole group reaches crunch alone, and each worker leads a group of
  its own, so killing a worker (and shutting the pool down) kills what its task left running.
- the watchdog (``check_timeouts``): an item past ``timeout`` is first interrupted inside the
  worker by a soft timer (SIGALRM, raising into the task); one stuck in C code past the hard
  limit gets its worker SIGKILLed, and is blamed as a timeout.
- memory (``max_memory``, see crunch._memory): the watchdog also measures each worker and
  kills one past the cap, blaming its item as ``memory``; a worker near the cap between items
  sends its last chunk back as ``Recycled`` and leaves the pool the way ``max_tasks_per_child``
  makes workers leave (crunch._pool_reach), and ``_replace`` starts its successor: the pool
  does not break, nothing runs again but the items that worker had not started.
- break recovery (``_recover``): when any worker dies, a ``ProcessPoolExecutor`` fails every
  pending future (``BrokenProcessPool``) and terminates the other workers. We let it, reap the
  workers, then read the slot table: the item a worker was on when it died *of its own* (an exit
  status other than the pool's SIGTERM) is blamed, with its exit code or signal; the items of
  every other chunk in flight are innocent and run again on a fresh pool. A worker that died
  idle (killed from outside) blames nobody. One that died while unpickling its chunk's items
  or pickling their results makes that chunk's items *suspects*: the scheduler runs them one
  by one, so the item that kills workers is found and failed alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from crunch._backends import Backend, Lost, one_at_fault, undecodable, unsendable
from crunch._backends._groups import kill_leftovers, kill_worker, start_workers_server
from crunch._exceptions import WorkerStartError
from crunch._failures import ItemFailure
from crunch._memory import POLL as MEMORY_POLL
from crunch._memory import rss
from crunch._pool_reach import (
    mentions_main,
    replace_leavers,
    unstick_result_pipe,
    without_main,
    worker_processes,
)
from crunch._runner import UnitOutcome
from crunch._slots import (
    CHUNK,
    HALT,
    IDLE,
    INITIALIZING,
    LOADING,
    SLOT_WIDTH,
    slot_offset,
    table_size,
)
from crunch._transit import decode_outcome, dump_items
from crunch._units import Job
from crunch._worker import Recycled, init_process_worker, process_chunk

# How long the pool gets to terminate its workers after a break before we SIGKILL the rest
# (a task may ignore SIGTERM). Short, since every second here is a second of idle workers.
REAP_GRACE = 2.0
# A worker found dead this long without the pool reporting it means the pool's manager thread
# is stuck on a half-written result (see crunch._pool_reach.unstick_result_pipe); checked
# every DEATH_CHECK seconds.
DEATH_CHECK = 0.5
DEATH_NOTICE = 1.5
# Pools in a row whose workers all die before their initializer ran: the run cannot work.
STARTUP_FAILURES = 2


def hard_limit(timeout: float) -> float:
    """Seconds after which a stuck worker is killed: the soft timer had its chance by then."""
    return timeout + max(0.5, min(5.0, timeout))


class ProcessBackend(Backend):
    def __init__(
        self,
        job: Job,
        *,
        workers: int,
        timeout: float | None,
        init: Callable[[], Any] | None,
        max_memory: int | None = None,
    ) -> None:
        self.lanes = workers
        self.max_memory = max_memory
        self.fn_bytes = pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
        # Workers re-import the caller's __main__ only if something they unpickle needs it.
        self.with_main = mentions_main(self.fn_bytes) or (
            init is not None and mentions_main(pickle.dumps(init, pickle.HIGHEST_PROTOCOL))
        )
        self.restarting = False
        self.init = init
        self.timeout = timeout
        self.hard_timeout = None if timeout is None else hard_limit(timeout)
        # Workers fork from a server that has crunch._worker loaded (start_workers_server).
        self.ctx = multiprocessing.get_context("forkserver")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.table: Any = None
        self.generation = 0
        # chunk id -> (unit, attempts, the scheduler's future)
        self.inflight: dict[int, tuple[Any, list[int] | None, asyncio.Future[Any]]] = {}
        self.split: set[int] = set()  # chunks to run again with their values sent one by one
        self.procs: dict[int, Any] = {}  # pid -> multiprocessing.Process, of this generation
        self.timeout_kills: dict[int, float] = {}  # pid -> seconds its item had run
        self.memory_kills: dict[int, int] = {}  # pid -> bytes it held when killed
        self.leavers: set[int] = set()  # workers that left the pool on purpose (recycled)
        self.next_memory_check = 0.0
        self.recovering: asyncio.Task[None] | None = None
        self.halted = False
        self.closing = False
        self.startup_failures = 0
        self.health: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ pool life cycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        start_workers_server()  # before the pool's semaphores start the tracker
        self._open_pool()
        self.health = self.loop.create_task(self._watch_deaths())

    async def _watch_deaths(self) -> None:
        """Make sure the pool notices a dead worker (see ``unstick_result_pipe``)."""
        dead_since: dict[int, float] = {}
        while not self.closing:
            await asyncio.sleep(DEATH_CHECK)
            if self.recovering is not None or self.pool is None:
                dead_since.clear()
                continue
            now = time.monotonic()
            for pid, proc in list(self.procs.items()):
                if proc.exitcode is not None and pid not in self.leavers:
                    first = dead_since.setdefault(pid, now)
                    if now - first > DEATH_NOTICE:  # (returns at once if the pool knows)
                        await asyncio.to_thread(unstick_result_pipe, self.pool)
                        dead_since.clear()
                        break

    def _open_pool(self) -> None:
        table = self.ctx.RawArray("d", table_size(self.lanes))
        for slot in range(self.lanes):
            table[slot_offset(slot) + CHUNK] = IDLE
        table[HALT] = 1.0 if self.halted else 0.0
        rows = self.ctx.Value("i", self.lanes)  # see init_process_worker
        self.table = table
        self.pool = ProcessPoolExecutor(
            self.lanes,
            mp_context=self.ctx,
            initializer=init_process_worker,
            initargs=(
                table,
                rows,
                self.fn_bytes,
                self.init,
                self.timeout,
                dict(os.environ),
                os.getpid(),
                self.max_memory,
            ),
        )
        self.generation += 1
        self.procs = {}
        self.leavers = set()

    def _rows(self) -> list[tuple[int, int, int, float]]:
        table = self.table
        rows = []
        for slot in range(self.lanes):
            base = slot_offset(slot)
            pid, chunk, index, started = table[base : base + SLOT_WIDTH]
            if pid:
                rows.append((int(pid), int(chunk), int(index), started))
        return rows

    # ------------------------------------------------------------------ dispatch
    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[UnitOutcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[UnitOutcome | Lost] = self.loop.create_future()
        self.inflight[chunk_id] = (unit, attempts, future)
        if self.recovering is None:
            self._send(chunk_id)
        return future

    def _send(self, chunk_id: int) -> None:
        assert self.pool is not None
        unit, attempts, future = self.inflight[chunk_id]
        generation = self.generation
        try:
            blob = dump_items((unit, attempts))
        except BaseException as exc:  # noqa: BLE001 - the item's own, see crunch._transit
            del self.inflight[chunk_id]
            future.set_result(unsendable(unit, exc))
            return
        if not self.with_main and mentions_main(blob):
            # Items that need __main__, and workers started without it: start them again.
            self.with_main = True
            self._restart_for_main()
            return
        try:
            with without_main(not self.with_main):
                sent = self.pool.submit(process_chunk, chunk_id, blob, chunk_id in self.split)
        except BrokenProcessPool:
            self._broken(generation)
            return
        self._note_workers()
        sent.add_done_callback(functools.partial(self._done_threadsafe, generation, chunk_id))

    def _note_workers(self) -> None:
        # The workers' handles, to read their exit codes after a break (crunch._pool_reach).
        current = worker_processes(self.pool)
        self.procs.update((pid, p) for pid, p in current.items() if pid not in self.leavers)

    def _done_threadsafe(self, generation: int, chunk_id: int, sent: Future[Any]) -> None:
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
            self.loop.call_soon_threadsafe(self._done, generation, chunk_id, sent)

    def _done(self, generation: int, chunk_id: int, sent: Future[Any]) -> None:
        if generation != self.generation or chunk_id not in self.inflight:
            return  # handled already, as part of a break
        unit, _attempts, future = self.inflight[chunk_id]
        try:
            result = sent.result()
        except BrokenProcessPool:
            self._broken(generation)
            return
        except CancelledError:
            return
        except BaseException as exc:  # noqa: BLE001 - process_chunk raised: lose the chunk
            result = ItemFailure.from_exception(exc)
        if isinstance(result, bytes):
            try:
                outcome: UnitOutcome | Lost = decode_outcome(result)
            except BaseException as exc:  # noqa: BLE001 - a value's own, see crunch._transit
                if chunk_id not in self.split:
                    self.split.add(chunk_id)  # run it again, its values sent one by one
                    if self.recovering is None:  # (else recovery runs it again)
                        self._send(chunk_id)
                    return
                outcome = undecodable(unit, exc)
        elif isinstance(result, ItemFailure):  # the items did not unpickle in the worker
            outcome = one_at_fault(unit, result)
        elif isinstance(result, Recycled):  # the worker left the pool, near its memory cap
            outcome = self._recycled(generation, unit, result)
        else:
            del self.inflight[chunk_id]
            self.split.discard(chunk_id)
            future.set_exception(WorkerStartError(f"workers could not start the task:\n{result}"))
            return
        del self.inflight[chunk_id]
        self.split.discard(chunk_id)
        future.set_result(outcome)

    def _recycled(self, generation: int, items: Any, reply: Recycled) -> UnitOutcome | Lost:
        """The outcome of a worker's last chunk; the items it did not start run again."""
        if reply.left:
            self.leavers.add(reply.pid)
            self.procs.pop(reply.pid, None)
            self._replace(generation, reply.pid)
        try:
            outcome = decode_outcome(reply.data)
        except BaseException as exc:  # noqa: BLE001 - a value's own, see crunch._transit
            return undecodable(items, exc)  # (not run again split: its worker is gone)
        done = outcome.done
        if done == len(items):
            return outcome
        return Lost(rerun=range(done, len(items)), partial=outcome)

    def _replace(self, generation: int, leaver: int, tries: int = 200) -> None:
        """Start the replacement of a worker that left (see crunch._pool_reach), once the
        pool has let it go; checked every few milliseconds."""
        if generation != self.generation or self.closing or self.pool is None:
            return
        with without_main(not self.with_main):  # as the workers it replaces
            replaced = replace_leavers(self.pool, self.lanes, leaver)
        if not replaced and tries > 0:
            assert self.loop is not None
            self.loop.call_later(0.005, self._replace, generation, leaver, tries - 1)
            return
        kill_leftovers({leaver})  # what its tasks started, if anything, goes with it
        self._note_workers()

    # ------------------------------------------------------------------ supervision
    def check_timeouts(self, now: float) -> None:
        if self.recovering is not None or self.closing:
            return
        if self.max_memory is not None and now >= self.next_memory_check:
            self.next_memory_check = now + MEMORY_POLL
            self._check_memory()
        if self.hard_timeout is None:
            return
        for pid, chunk, index, started in self._rows():
            running = chunk >= 0 and index >= 0  # not loading or sending a chunk
            if running and now - started > self.hard_timeout and pid not in self.timeout_kills:
                self.timeout_kills[pid] = now - started
                kill_worker(pid)

    def _check_memory(self) -> None:
        """Kill a worker past the memory cap; the item it is on fails (see crunch._memory)."""
        assert self.max_memory is not None
        for pid, _chunk, _index, _started in self._rows():
            used = rss(pid)
            if used is not None and used > self.max_memory and pid not in self.memory_kills:
                self.memory_kills[pid] = used
                kill_worker(pid)

    def _restart_for_main(self) -> None:
        """Replace the workers (started without ``__main__``) by ones that have it.

        We kill them and run break recovery ourselves (the pool may have no pending future to
        report the deaths): the chunks in flight, this unsent one included, run again on a new
        pool; ``restarting`` tells recovery that the deaths were ours, so no item is blamed.
        """
        self.restarting = True
        for pid in {row[0] for row in self._rows()} | set(self.procs):
            kill_worker(pid)
        self._broken(self.generation)

    def _broken(self, generation: int) -> None:
        if generation != self.generation or self.recovering is not None or self.closing:
            return
        assert self.loop is not None
        self.recovering = self.loop.create_task(self._recover())

    async def _recover(self) -> None:
        assert self.pool is not None
        pool, procs = self.pool, dict(self.procs)
        broken = dict(self.inflight)
        kills = dict(self.timeout_kills)
        memory = dict(self.memory_kills)
        killed_by_us = await asyncio.to_thread(_reap, pool, procs)
        if self.restarting:  # we killed them all, to start workers with __main__
            killed_by_us |= set(procs) | {row[0] for row in self._rows()}
            self.restarting = False
        rows = self._rows()  # re-read: rows are final once every worker is gone
        kill_leftovers({*procs, *(row[0] for row in rows)})
        exited = any(p.exitcode is not None and p.exitcode > 0 for p in procs.values())
        # Workers that died in the user's initializer, of their own doing (os._exit, a crash).
        init_deaths = [
            procs[pid].exitcode
            for pid, chunk, _, _ in rows
            if chunk == INITIALIZING
            and pid in procs
            and pid not in killed_by_us
            and procs[pid].exitcode not in (None, -signal.SIGTERM)
        ]
        if (not rows and not kills and not memory and exited) or init_deaths:
            # Workers fail while starting up (a signal from outside is another story), and a
            # fresh pool will too. Stop with what we know instead of restarting pools forever.
            self.startup_failures += 1
            if self.startup_failures >= STARTUP_FAILURES:
                self._fail_all(broken, self._startup_error(procs, init_deaths))
                return
        else:
            self.startup_failures = 0
        blame: dict[int, tuple[int, ItemFailure, float]] = {}
        suspects: set[int] = set()
        isolated: set[int] = set()
        now = time.monotonic()
        for pid, chunk, index, started in rows:
            if chunk < 0 or chunk not in broken:
                continue  # idle, or never started: its death is no item's doing
            if pid in kills:
                assert self.timeout is not None
                blame[chunk] = (index, ItemFailure.timeout(self.timeout), kills[pid])
                continue
            if pid in memory:
                assert self.max_memory is not None
                if index >= 0:
                    failure = ItemFailure.memory(memory[pid], self.max_memory)
                    blame[chunk] = (index, failure, now - started)
                elif len(broken[chunk][0]) == 1:  # loading or sending its only item
                    stage = "load" if index == LOADING else "return"
                    failure = ItemFailure.memory(memory[pid], self.max_memory, stage)
                    blame[chunk] = (0, failure, 0.0)
                else:
                    isolated.add(chunk)  # one of its items, we know not which
                continue
            proc = procs.get(pid)
            code = proc.exitcode if proc is not None else None
            if pid in killed_by_us or code is None or code == -signal.SIGTERM:
                continue  # a bystander the pool (or we) terminated
            if index >= 0:
                blame[chunk] = (index, ItemFailure.crash(code), now - started)
            elif len(broken[chunk][0]) == 1:  # loading or sending its only position
                stage = "load" if index == LOADING else "return"
                blame[chunk] = (0, ItemFailure.crash(code, stage), 0.0)
            else:
                suspects.add(chunk)  # one of its items, being (un)pickled: isolate them
        self.timeout_kills.clear()
        self.memory_kills.clear()
        if self.closing:
            blame.clear()
        else:
            self._open_pool()
        for chunk_id, (unit, _attempts, future) in broken.items():
            self.inflight.pop(chunk_id, None)
            if future.done():
                continue
            if chunk_id in blame:
                index, failure, seconds = blame[chunk_id]
                rerun = [i for i in range(len(unit)) if i != index]
                future.set_result(Lost(rerun=rerun, blamed={index: (failure, seconds)}))
            else:
                lost = Lost(
                    rerun=range(len(unit)),
                    suspect=chunk_id in suspects,
                    isolate=chunk_id in isolated,
                )
                future.set_result(lost)
        self.recovering = None
        if not self.closing:
            for chunk_id in list(self.inflight):  # submitted while we were recovering
                self._send(chunk_id)

    def _startup_error(self, procs: dict[int, Any], init_deaths: list[int]) -> WorkerStartError:
        if init_deaths:
            how = ItemFailure.crash(init_deaths[0]).message
            return WorkerStartError(
                f"the init function {callable_name(self.init)} ended its worker process "
                f"before any item ran: {how}; every worker runs it, so nothing can run"
            )
        codes = sorted({p.exitcode for p in procs.values() if p.exitcode is not None})
        return WorkerStartError(
            f"worker processes died while starting, before running any item (exit codes "
            f"{codes}). Look above for their traceback. A script that starts crunch at import "
            "time must guard it with `if __name__ == '__main__':`, because workers import "
            "the main module."
        )

    def _fail_all(self, broken: dict[int, Any], error: WorkerStartError) -> None:
        self.closing = True
        if self.health is not None:
            self.health.cancel()
        for _unit, _attempts, future in [*broken.values(), *self.inflight.values()]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # the scheduler raises the first; the rest are not news
        self.inflight.clear()
        self.pool = None
        self.recovering = None

    def halt(self) -> None:
        self.halted = True
        if self.table is not None:
            self.table[HALT] = 1.0

    async def close(self, *, kill: bool) -> None:
        if self.closing:
            return
        self.closing = True
        if self.health is not None:
            self.health.cancel()
        if self.recovering is not None:
            await self.recovering
        if self.pool is None:
            return
        pool, procs = self.pool, dict(self.procs)
        pids = [row[0] for row in self._rows()]
        if kill:
            self.halt()
            for pid in pids:
                kill_worker(pid)
            await asyncio.to_thread(_reap, pool, procs)
        else:
            await asyncio.to_thread(pool.shutdown, wait=True)
        kill_leftovers({*pids, *procs})  # what the tasks started and left running
        for unit, _attempts, future in self.inflight.values():
            if not future.done():
                future.set_result(Lost(rerun=range(len(unit))))
        self.inflight.clear()


def _reap(pool: ProcessPoolExecutor, procs: dict[int, Any]) -> set[int]:
    """Shut a (broken or killed) pool down for good; SIGKILL workers that ignore SIGTERM.

    Returns the pids we had to kill. Once this returns, every worker has an exit code.
    """
    done = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    done.start()
    done.join(REAP_GRACE)
    killed: set[int] = set()
    if done.is_alive():
        for pid, proc in procs.items():
            if proc.exitcode is None:
                killed.add(pid)
                kill_worker(pid)
        done.join(REAP_GRACE)
    if done.is_alive():
        unstick_result_pipe(pool)
        done.join(REAP_GRACE)
    return killed


def callable_name(fn: Any) -> str:
    """``module:function`` (or ``path/file.py:function``), as ``--task`` and ``--init`` take it."""
    path, name = getattr(fn, "path", None), getattr(fn, "name", None)
    if isinstance(path, str) and isinstance(name, str):  # a function from a file
        return f"{path}:{name}"
    inner = getattr(fn, "func", fn)
    qualname = getattr(inner, "__qualname__", None) or repr(inner)
    module = getattr(inner, "__module__", None)
    return f"{module}:{qualname}" if module else qualname
