"""Dask mode: chunks run as tasks on a ``dask.distributed`` cluster, one task per chunk.

    scheduler --submit(chunk)--> DaskBackend --client.submit(dask_chunk, run id, job, unit)
        ^                             |                                 |
        |                             |             dask scheduler --> a dask worker thread:
        |                             |                                 run_unit(job, unit)
        +---- UnitOutcome / Lost -----+<-- pickled outcome (bytes), or KilledWorker --+

Actors
- the client: an *asynchronous* ``distributed.Client`` on the engine's own event loop, so no
  dask call ever blocks the loop and no extra thread is needed. It connects to the scheduler
  at ``address`` (``tcp://`` or ``tls://``; TLS uses Dask's own security settings from
  ``dask.config``), or else to a ``LocalCluster`` of ``workers`` single-threaded worker
  processes on 127.0.0.1, which this backend starts and shuts down.
- the task (``dask_chunk``, in the worker): runs ``run_unit`` over the chunk, like a process
  worker, and returns its outcome pickled, having checked that it pickles (a value that does
  not is failed alone). The task function and ``init`` travel as one pickled payload, loaded
  and initialised once per worker process and run (a module-level table keyed by the run id),
  so ``init`` runs before that worker's first item and a failing one stops the run. With an
  ``init``, the run starts with one ``dask_init`` task per worker thread, which loads the run
  there before any chunk: an ``init`` that raises, or that ends its worker process (the task
  comes back as ``KilledWorker``, which a chunk's death could not be told apart from), stops
  the run as a start-up error, as in process mode.
- a collector per chunk: awaits the dask future and resolves the scheduler's future.

Process groups. The local cluster's worker processes are started by nannies inside crunch's
process; they leave crunch's process group as they start (``_local_cluster``, and the preload
``crunch._backends._dask_worker_preload``), as process-mode workers do, so a signal to the
whole group reaches crunch alone and the items in flight get their grace period. Each leads a
group of its own, which the child processes its tasks start join: when the cluster is closed,
and when a worker dies (``_dask_deaths``), what is left of its group is killed.

Crash attribution. A worker that dies (``os._exit``, a signal, the OOM killer) makes Dask
reschedule the tasks it was processing; a task that was on ``allowed-failures + 1`` dying
workers fails with ``KilledWorker``. That says which *chunk* was on the dead worker, never which
item, so the chunk comes back as ``Lost(rerun=all, suspect=True)``: the scheduler re-runs each
item alone and fails, as a ``crash``, one whose own single-item task keeps killing workers
(``SUSPECT_LIMIT`` times). This is exact when every worker has one thread
(``--nthreads 1``) and the scheduler sends a worker only the task it runs
(``distributed.scheduler.worker-saturation: 1.0``): then the only task lost with a worker is
the one that was running on it. The local cluster is set up that way, with
``allowed-failures: 0`` so that every death is reported at once instead of retried by Dask
first (a poison item then costs three worker restarts, not twelve). On a cluster of your own
these are the scheduler's settings; see docs/cluster.md.

Timeouts. A task running in a dask worker thread cannot be killed, and signal-based timers only
work in a main thread. With a ``timeout`` the task runs its items in a helper thread and
watches the item in hand: at the timeout that item is failed as a ``timeout``, the items before
it are kept, the rest go back to the scheduler to run again, and the helper thread is
abandoned inside the worker (as in thread mode: a sleeping item costs nothing, a spinning one
keeps a CPU busy there until it returns). The watch needs the GIL: an item stuck in C code that
holds it also stalls the worker itself, which Dask then drops after
``distributed.scheduler.worker-ttl``.

Tasks given by file (``path/to/task.py:function``). When the task (or ``init``) comes from a
loose ``.py`` file, not from an installed module, the file is uploaded to the workers at the
start of every run with Dask's ``UploadFile`` worker plugin (what ``Client.upload_file`` does),
under the module name it has in this process (the CLI gives a file task's module a name of its
own): the workers then import this version of the file, workers that join or restart later
get it too, and the plugin is removed when the run ends. Then, before the first chunk, the task
is loaded on every worker (``Client.run``): another loose module it imports that the workers
lack is uploaded the same way; any other failure (a package missing there) stops the run
before any item, with the worker's error.

Halting is best effort: ``halt`` tells every worker (``Client.run``) to start no new item of
this run; chunks already sent then come back short, and their unstarted items count as not
run. ``close(kill=True)`` also cancels every task; on a cluster of your own a task already
running finishes the item in hand (a thread cannot be stopped), then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from crunch import _runner
from crunch._backends import Backend, Lost, one_at_fault, undecodable, unsendable
from crunch._backends._dask_deaths import death_reason, watch_local_nannies
from crunch._backends._groups import hold_stop_signals, kill_leftovers
from crunch._exceptions import MissingExtraError, UsageError, WorkerStartError
from crunch._failures import ItemFailure, startup_error_text
from crunch._memory import set_backstop
from crunch._runner import UnitOutcome, run_unit
from crunch._transit import decode_outcome, encode_outcome, load_items
from crunch._units import Job

INSTALL_HINT = "pip install 'crunch[dask]'   (or, in a uv project: uv add 'crunch[dask]')"

# Settings of the local cluster's scheduler (see the module docstring): report every worker
# death at once, and send a worker only the task it is about to run.
LOCAL_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
# With --max-memory, each worker of the local cluster gets Dask's own memory limit at the cap:
# its nanny restarts a worker past it (checked every 50 ms, as crunch checks process-mode
# workers), and the item it was running fails with kind memory. Pausing and spilling are off:
# a paused worker that leaks would never run again, and crunch holds no Dask data to spill.
LOCAL_MEMORY_CONFIG = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": 1.0,
    "distributed.worker.memory.monitor-interval": "50ms",
}
# The event a nanny logs when it restarts its worker for going past the memory limit.
MEMORY_EVENT = "worker-restart-memory"
# Seconds for each best-effort step of closing: tidying an existing cluster (halt, cancel,
# forget the run, remove uploads), closing the client. Bounded so that a scheduler that went
# away cannot hold the end of a run; crunch's caller waits 30 s for the engine at most.
CLEANUP_TIMEOUT = 5.0
CLUSTER_CLOSE_TIMEOUT = 20.0  # seconds for the local cluster to stop its worker processes
# Imported by each worker process of the local cluster as it starts: out of crunch's group.
WORKER_PRELOAD = "crunch._backends._dask_worker_preload"
MAX_UPLOADS = 8  # loose modules uploaded for one task before giving up (import chains)


class DaskBackend(Backend):
    """Chunks as dask tasks on an existing scheduler (``address``) or a local cluster."""

    def __init__(
        self,
        job: Job,
        *,
        workers: int,
        timeout: float | None,
        init: Callable[[], Any] | None,
        address: str | None = None,
        max_memory: int | None = None,
    ) -> None:
        try:
            import distributed  # noqa: F401 - fail here, before any item, when missing
        except ImportError as exc:
            raise MissingExtraError(
                "mode 'dask' needs the optional dask extra (dask.distributed), which is not "
                f"installed: {INSTALL_HINT}"
            ) from exc
        self.timeout = timeout
        self.address = address
        self.workers = workers
        # Exact for a cluster of our own; for an existing one ``start`` sets it to the
        # cluster's thread count (one lane per worker thread).
        self.lanes = workers
        self.max_memory = max_memory  # only for a local cluster (RunConfig says so)
        self.run_id = uuid.uuid4().hex
        fn, init = _plain(job.fn), None if init is None else _plain(init)
        # The task's own modules when they come from loose .py files (a task given by path):
        # uploaded at every start, so that the workers run this version of the file, also
        # after a restart.
        self.uploads: list[tuple[str, Path]] = []
        for module in {_module_of(f) for f in (fn, init) if f is not None}:
            path = _loose_file(module)
            if path is not None:
                self.uploads.append((module.__name__, path))
        self.fn = fn
        self.init = init
        plain = Job(fn, records=job.records, key_field=job.key_field, skip=job.skip)
        self.payload = _pickle_task(plain, init)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None
        self.cluster: Any = None
        self.plugins: list[str] = []  # UploadFile plugins registered for this run
        # chunk id -> (unit, the scheduler's future, the dask future, its collector)
        self.pending: dict[int, tuple[Any, asyncio.Future[Any], Any, asyncio.Task[Any]]]
        self.pending = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.halted = False
        self.closing: asyncio.Task[None] | None = None
        self.signals_held: set[int] | None = None  # see _local_cluster

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await self._connect()
            for name, path in self.uploads:
                await self._upload(name, path)
            await self._check_task()
            await self._check_init()
        except Exception:
            if self.closing is None:
                raise
        if self.closing is not None:  # closed while starting (Ctrl-C): nothing to report
            await self._release()  # what was still starting when close() ran
        elif self.halted:
            self._send_halt()

    async def _connect(self) -> None:
        from distributed import Client

        if self.address is None:
            self.cluster = await self._local_cluster()
            target: Any = self.cluster
        else:
            target = self.address
        client = Client(target, asynchronous=True, set_as_default=False)
        try:
            await client
        except Exception as exc:
            await _quietly(client.close())
            hint = ""
            if str(self.address).startswith("tls://"):
                hint = (
                    " (tls:// takes its certificates from Dask's config: "
                    "distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
                    "distributed.comm.tls.client.key)"
                )
            raise UsageError(
                f"cannot connect to the dask scheduler at {target}: {exc}{hint}"
            ) from exc
        self.client = client
        if self.address is not None:
            threads = await self.client.nthreads()
            self.lanes = max(1, sum(threads.values()))

    async def _local_cluster(self) -> Any:
        import dask
        from distributed import LocalCluster

        config: dict[str, Any] = dict(LOCAL_SCHEDULER_CONFIG)
        memory: dict[str, Any] = {}
        if self.max_memory is not None:
            config.update(LOCAL_MEMORY_CONFIG)
            memory["memory_limit"] = self.max_memory
        watch_local_nannies()  # their death messages name the signal (see _dask_deaths)
        # The nannies start their worker processes from threads of this one: with the stop
        # signals blocked here, each is born holding them, and leaves crunch's process group
        # as it starts (its preload), so that a signal to crunch's whole group reaches crunch
        # alone. This thread is the engine's, never the main one: crunch's own handlers still
        # get the signals, in the main thread. Restored when the cluster is closed.
        self.signals_held = hold_stop_signals()
        preload = [WORKER_PRELOAD, *(dask.config.get("distributed.worker.preload", None) or ())]
        with dask.config.set(config):
            return await LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                **memory,
                preload=preload,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # The scheduler serves /health and /metrics over HTTP even without a
                # dashboard, by default on :8787; a random local port never collides.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                asynchronous=True,
            )

    async def _check_task(self) -> None:
        """Load the task on every worker now; upload loose modules they lack (see top)."""
        tried: set[str] = set()
        while True:
            replies = await self.client.run(dask_probe, self.payload, on_error="return")
            missing, error = None, None
            for reply in replies.values():
                if isinstance(reply, (OSError, TimeoutError)):
                    continue  # that worker went away meanwhile (a restart, say)
                if isinstance(reply, BaseException):  # crunch itself does not load there
                    error = f"{type(reply).__name__}: {reply}"
                elif reply is not None:
                    missing, error = reply
                    break
            if error is None:
                return
            if missing is None or missing in tried or len(tried) >= MAX_UPLOADS:
                break
            tried.add(missing)
            if not await self._ship_module(missing):
                break
        raise WorkerStartError(
            f"the dask workers cannot load the task {_qualname(self.fn)}: its module and "
            "everything it imports must be importable on every worker (install them in the "
            f"workers' environment).\n{error}"
        )

    async def _check_init(self) -> None:
        """Run ``init`` now, one task per worker thread (see top): an ``init`` that raises, or
        that ends its worker process, stops the run before any item, as in process mode."""
        from distributed import KilledWorker

        if self.init is None or self.client is None:
            return
        futures = [
            self.client.submit(
                dask_init, self.run_id, self.payload, key=f"crunch-init-{self.run_id}-{n}"
            )
            for n in range(self.lanes)
        ]
        try:
            for future in futures:
                try:
                    error = await future.result()
                except KilledWorker as exc:
                    used = await self._memory_restart(exc)
                    if used is not None:
                        how = ItemFailure.dask_memory(used, self.max_memory).message
                        how = how.replace("the item's worker", "its worker")
                    else:
                        how = await death_reason(exc, local=self.cluster is not None)
                        how = how.removeprefix("the last: ")
                    raise WorkerStartError(
                        f"the init function {_qualname(self.init)} ended its dask worker process "
                        f"before any item ran: {how}; every worker runs it, so "
                        "nothing can run"
                    ) from None
                if error is not None:
                    raise WorkerStartError(f"the dask workers could not start the task:\n{error}")
        finally:
            await _quietly(self.client.cancel(futures, force=True))

    async def _ship_module(self, name: str) -> bool:
        """Make the loose module ``name`` of this process reach the workers, if it is one."""
        path = _loose_file(sys.modules.get(name))
        if path is None:
            return False
        await self._upload(name, path)
        return True

    async def _upload(self, name: str, path: Path) -> None:
        """Send module ``name`` (from ``path``) to every worker, present and future, and
        import it there, under the name it has here (a file task's module has its own)."""
        from distributed.diagnostics.plugin import UploadFile

        with tempfile.TemporaryDirectory() as tmp:
            if path.stem != name:
                path = Path(shutil.copyfile(path, Path(tmp, f"{name}.py")))
            plugin = UploadFile(str(path))  # reads the file now
        key = f"crunch-upload-{self.run_id}-{name}"
        await self.client.register_plugin(plugin, name=key)
        self.plugins.append(key)

    async def close(self, *, kill: bool) -> None:
        if self.closing is None:
            self.closing = asyncio.ensure_future(self._close(kill))
        await asyncio.shield(self.closing)

    async def _close(self, kill: bool) -> None:
        self.halted = True
        pending = list(self.pending.values())
        self.pending.clear()
        for items, future, _sent, collector in pending:
            collector.cancel()
            if not future.done():
                future.set_result(Lost(rerun=range(len(items))))
        if self.client is not None and self.cluster is None:
            # A cluster of someone else's outlives the run: leave nothing of it running there,
            # and nothing of the run's state (a halt still on its way would recreate it).
            if self.background:
                await asyncio.wait(self.background, timeout=CLEANUP_TIMEOUT)
            sent = [p[2] for p in pending]
            await _quietly(self._tidy(self.client, sent, stop=kill or bool(sent)))
        for task in list(self.background):
            task.cancel()
        await self._release()

    async def _tidy(self, client: Any, sent: list[Any], *, stop: bool) -> None:
        if stop:
            await client.run(_halt_run, self.run_id, on_error="ignore")
            if sent:
                await client.cancel(sent, force=True)
        await client.run(_forget_run, self.run_id, on_error="ignore")
        for name in self.plugins:
            await client.unregister_worker_plugin(name)

    async def _release(self) -> None:
        """Close the client, then the local cluster (stopping its worker processes)."""
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        if client is not None:
            await _quietly(client.close())
        if cluster is not None:
            nannies = list(cluster.workers.values())
            pids = {pid for nanny in nannies if (pid := _pid_of(nanny))}
            await _quietly(cluster.close(), CLUSTER_CLOSE_TIMEOUT)
            # A nanny may have restarted its worker meanwhile (one that died in an --init), and
            # a close that timed out leaves it running: its new process goes too.
            pids.update(pid for nanny in nannies if (pid := _pid_of(nanny)))
            # Each worker led a process group of its own (see top): what its tasks left running
            # (subprocess.Popen, os.fork) is killed with it, and holds no output open.
            kill_leftovers(pids)
        held, self.signals_held = self.signals_held, None
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    # ------------------------------------------------------------------ dispatch
    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[UnitOutcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[UnitOutcome | Lost] = self.loop.create_future()
        items = unit  # what the helpers below need of it: its length (and items to test)
        if self.closing is not None:
            future.set_result(Lost(rerun=range(len(items))))
            return future
        try:
            blob = _dump_items((unit, attempts))
        except BaseException as exc:  # noqa: BLE001 - the item's own, see crunch._transit
            future.set_result(unsendable(items, exc, _dump_items))
            return future
        try:
            sent = self._submit_task(chunk_id, blob, split=False)
        except Exception as exc:  # noqa: BLE001 - the chunk could not be sent
            future.set_result(unsendable(items, exc))
            return future
        collector = self.loop.create_task(self._collect(chunk_id, items, blob, future, sent))
        self.pending[chunk_id] = (items, future, sent, collector)
        return future

    def _submit_task(self, chunk_id: int, blob: bytes, *, split: bool) -> Any:
        return self.client.submit(
            dask_chunk,
            self.run_id,
            self.payload,
            blob,
            self.timeout,
            split,
            self.max_memory,
            key=f"crunch-chunk-{self.run_id}-{chunk_id}{'-split' if split else ''}",
            pure=False,
        )

    async def _collect(
        self,
        chunk_id: int,
        items: list[Any],
        blob: bytes,
        future: asyncio.Future[Any],
        sent: Any,
    ) -> None:
        """Wait for one chunk's dask future and resolve the scheduler's future from it."""
        try:
            outcome = await self._outcome(items, sent, split=False)
            if outcome is _RUN_SPLIT and not future.done():
                # Run it again with the values sent one by one (see crunch._transit).
                sent = self._submit_task(chunk_id, blob, split=True)
                self.pending[chunk_id] = (items, future, sent, self.pending[chunk_id][3])
                outcome = await self._outcome(items, sent, split=True)
        except Exception as exc:  # noqa: BLE001 - the split run could not be sent
            outcome = undecodable(items, exc)
        finally:
            self.pending.pop(chunk_id, None)
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def _outcome(
        self, items: list[Any], sent: Any, *, split: bool
    ) -> UnitOutcome | Lost | BaseException:
        """The chunk's outcome; ``_RUN_SPLIT`` when it did not unpickle whole here."""
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        try:
            result = await sent.result()
        except KilledWorker as exc:
            used = await self._memory_restart(exc)
            if used is None:
                reason = await death_reason(exc, local=self.cluster is not None)
                return Lost(rerun=range(len(items)), suspect=True, reason=reason)
            return one_at_fault(items, ItemFailure.dask_memory(used, self.max_memory))
        except FutureCancelledError as exc:
            if self.client is None or self.client.status not in ("running", "connecting"):
                return WorkerStartError(f"lost the dask scheduler: {exc}")
            return Lost(rerun=range(len(items)))  # cancelled by a cluster restart: run again
        except Exception as exc:  # noqa: BLE001 - the task failed, or its result cannot load here
            return _task_failed(items, exc)
        if isinstance(result, str):
            return WorkerStartError(f"the dask workers could not start the task:\n{result}")
        if isinstance(result, ItemFailure):  # the items did not unpickle on the worker
            return one_at_fault(items, result)
        try:
            if isinstance(result, Abandoned):
                lost = result.lost
                lost.partial = decode_outcome(result.partial)
                return lost
            return decode_outcome(result)
        except BaseException as exc:  # noqa: BLE001 - a value's own, see crunch._transit
            return undecodable(items, exc) if split else _RUN_SPLIT

    async def _memory_restart(self, exc: Any) -> int | None:
        """The memory of the worker of ``exc`` (a ``KilledWorker``) when its nanny restarted it
        for going past Dask's memory limit; None if that is not why it died."""
        address = getattr(getattr(exc, "last_worker", None), "address", None)
        if address is None or self.client is None:
            return None
        try:
            events = await asyncio.wait_for(self.client.get_events(MEMORY_EVENT), CLEANUP_TIMEOUT)
        except Exception:  # noqa: BLE001 - no answer: not known to be memory
            return None
        for _when, event in reversed(tuple(events)):
            if isinstance(event, dict) and event.get("worker") == address:
                return int(event.get("rss") or 0)
        return None

    # ------------------------------------------------------------------ supervision
    # No check_timeouts: each task watches its own items (see the module docstring).

    def halt(self) -> None:
        if self.halted:
            return
        self.halted = True
        if self.client is not None:
            self._send_halt()

    def _send_halt(self) -> None:
        assert self.loop is not None
        task = self.loop.create_task(
            _quietly(self.client.run(_halt_run, self.run_id, on_error="ignore"))
        )
        self.background.add(task)
        task.add_done_callback(self.background.discard)


# --------------------------------------------------------------------------- parent helpers
def _qualname(fn: Callable[..., Any]) -> str:
    inner = _unwrap(fn)
    return f"{getattr(inner, '__module__', '?')}:{getattr(inner, '__qualname__', repr(inner))}"


def _unwrap(fn: Any) -> Any:
    while hasattr(fn, "func"):  # functools.partial, as the CLI builds for -O options
        fn = fn.func
    return fn


def _plain(fn: Any) -> Any:
    """``fn`` with a task given by file (the CLI's ``FileFunction``, which pickles as its path
    and is loaded from that path where it runs) replaced by the function it loads: a worker on
    another machine has no such path, but gets the module uploaded."""
    from crunch._taskspec import FileFunction

    if isinstance(fn, functools.partial):
        inner = _plain(fn.func)
        return fn if inner is fn.func else functools.partial(inner, *fn.args, **fn.keywords)
    return fn.load() if isinstance(fn, FileFunction) else fn


def _pickle_task(job: Job, init: Callable[[], Any] | None) -> bytes:
    """The job and the task's initializer, pickled together; a function of ``__main__`` (a
    script) travels by value, as Dask sends it."""
    import cloudpickle

    return cloudpickle.dumps((job, init), protocol=pickle.HIGHEST_PROTOCOL)


def _module_of(fn: Callable[..., Any]) -> Any:
    return sys.modules.get(getattr(_unwrap(fn), "__module__", None) or "")


def _loose_file(module: Any) -> Path | None:
    """The ``.py`` file of a top-level, non-package module that is not installed, else None."""
    file = getattr(module, "__file__", None)
    name = getattr(module, "__name__", "")
    if not file or "." in name or name == "__main__" or hasattr(module, "__path__"):
        return None
    path = Path(file).resolve()
    if path.suffix != ".py" or not path.is_file():
        return None
    return None if any(path.is_relative_to(d) for d in _library_dirs()) else path


def _library_dirs() -> set[Path]:
    """Where installed modules live (the standard library, site-packages)."""
    import site
    import sysconfig

    dirs = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks these
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    return {Path(d).resolve() for d in dirs if d}


def _pid_of(nanny: Any) -> int | None:
    """The pid of a local nanny's worker process (None when it has none now)."""
    with contextlib.suppress(Exception):
        pid = getattr(nanny, "pid", None)
        return pid if isinstance(pid, int) else None
    return None


_RUN_SPLIT: Any = object()  # _outcome: run the chunk again, its values sent one by one


def _dump_items(items: Any) -> bytes:
    """The chunk's items pickled as Dask would send them: by value when they come from
    ``__main__`` (a script), which the workers do not have."""
    import cloudpickle

    return cloudpickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)


def _task_failed(items: list[Any], exc: BaseException) -> Lost:
    """The dask task raised (an item that does not unpickle on the worker, say): isolate the
    items so the one at fault fails alone, then fail it with the error."""
    if len(items) > 1:
        return Lost(rerun=range(len(items)), suspect=True)
    return Lost(rerun=(), blamed={0: (ItemFailure.dask_task_failed(exc), 0.0)})


async def _quietly(awaitable: Any, timeout: float = CLEANUP_TIMEOUT) -> None:
    """Await a best-effort cleanup step: bounded in time, its errors ignored."""
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(awaitable, timeout)


# --------------------------------------------------------------------------- in the worker
# The state of each run in this worker process, loaded by the run's first chunk here.


class _Run:
    __slots__ = ("error", "halted", "job", "lock", "ready")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = False
        self.halted = False
        self.job: Job | None = None
        self.error: str | None = None

    def is_halted(self) -> bool:
        return self.halted

    # The lane of a chunk run directly in the dask worker thread.
    def begin(self, index: int, start: float) -> bool:
        return not self.halted

    def end(self) -> None:
        return None


_RUNS: dict[str, _Run] = {}
_RUNS_LOCK = threading.Lock()


def _run_state(run_id: str) -> _Run:
    with _RUNS_LOCK:
        run = _RUNS.get(run_id)
        if run is None:
            run = _RUNS[run_id] = _Run()
        return run


def _load(run: _Run, payload: bytes) -> None:
    """Load the task and run ``init``, once per worker process and run."""
    with run.lock:
        if run.ready:
            return
        try:
            job, init = pickle.loads(payload)
            if init is not None:
                init()
            run.job = job
        except BaseException as exc:  # noqa: BLE001 - reported to the parent by every chunk
            run.error = startup_error_text(exc)
        run.ready = True


class Abandoned(NamedTuple):
    """What a task sends back when it gave up on an item at the timeout: the ``Lost`` (without
    its partial outcome) and the outcome of the items before the hung one, encoded."""

    lost: Lost
    partial: bytes


def dask_chunk(
    run_id: str,
    payload: bytes,
    blob: bytes,
    timeout: float | None,
    split: bool = False,
    max_memory: int | None = None,
) -> bytes | str | ItemFailure | Abandoned:
    """The dask task: one pickled ``(unit, attempts)`` in, its encoded ``UnitOutcome``
    (crunch._transit) out, or ``Abandoned`` at a timeout (``split``: the values pickled one by
    one). With ``max_memory`` (a local cluster), this worker's data segment gets crunch's backstop
    (crunch._memory) and an allocation it refuses fails its item with kind ``memory``.

    Returns ``str`` (the error text) instead when the task could not be loaded here or its
    initializer failed: the parent then stops the run with that message; and the
    ``ItemFailure`` of unpickling the items when they could not be (the parent then runs them
    one by one to find the one at fault).
    """
    run = _run_state(run_id)
    if not run.ready:
        _load(run, payload)
    if run.error is not None:
        return run.error
    assert run.job is not None
    chunk = load_items(blob)
    if isinstance(chunk, ItemFailure):
        return chunk
    unit, attempts = chunk
    if max_memory is not None:
        _backstop(max_memory)
    if timeout is None:
        return encode_outcome(run_unit(run.job, unit, run, attempts=attempts), split=split)
    result = _watched(run, run.job, unit, attempts, timeout)
    if isinstance(result, Lost):
        partial = result.partial or UnitOutcome(0, 0.0, None, None, None, [], [], None)
        result.partial = None
        return Abandoned(result, encode_outcome(partial, split=split))
    return encode_outcome(result, split=split)


_BACKSTOP_SET = False


def _backstop(cap: int) -> None:
    """Once per worker process: the data-segment limit of crunch._memory."""
    global _BACKSTOP_SET
    if not _BACKSTOP_SET:
        _BACKSTOP_SET = True
        set_backstop(cap)
        _runner.refine = functools.partial(_refine_memory, cap=cap)


def _refine_memory(failure: ItemFailure, *, cap: int) -> ItemFailure:
    """An allocation the backstop refused (``MemoryError``) is a ``memory`` failure."""
    if "MemoryError" not in failure.names:
        return failure
    from crunch._memory import peak_rss

    return ItemFailure.memory_refused(peak_rss() or 0, cap)


def _watched(
    run: _Run, job: Job, unit: Any, attempts: list[int] | None, timeout: float
) -> UnitOutcome | Lost:
    """Run the chunk in a helper thread; abandon it at an item past ``timeout``."""
    from crunch._backends._lanes import LaneJob

    # Thread mode's job does the bookkeeping (which item since when, salvage at abandon);
    # here nothing waits on its future.
    lane = LaneJob(0, unit, attempts, None)
    lane.halted = run.is_halted
    done = threading.Event()
    result: list[UnitOutcome] = []

    def main() -> None:
        try:
            result.append(lane.run(job, timeout))
        finally:
            done.set()

    threading.Thread(target=main, name="crunch-dask-item", daemon=True).start()
    tick = min(0.1, timeout / 4)
    while not done.wait(tick):
        started = lane.started
        if started and time.monotonic() - started > timeout:
            return lane.abandon(timeout)
    return result[0] if result else lane.salvage()


def dask_init(run_id: str, payload: bytes) -> str | None:
    """The dask task that loads the run here and runs ``init`` before the first chunk: None,
    or the error text (as ``dask_chunk`` returns it)."""
    run = _run_state(run_id)
    if not run.ready:
        _load(run, payload)
    return run.error


def dask_probe(payload: bytes) -> tuple[str | None, str] | None:
    """Run on every worker by ``Client.run`` before the first chunk: can the task load here?

    None when it can; else the name of the missing module (if that is the reason) and the
    error text.
    """
    try:
        pickle.loads(payload)
    except ModuleNotFoundError as exc:
        return exc.name, startup_error_text(exc)
    except BaseException as exc:  # noqa: BLE001
        return None, startup_error_text(exc)
    return None


def _halt_run(run_id: str) -> None:
    _run_state(run_id).halted = True


def _forget_run(run_id: str) -> None:
    with _RUNS_LOCK:
        run = _RUNS.pop(run_id, None)
    if run is not None:
        run.halted = True  # a straggler of the run stops before its next item
