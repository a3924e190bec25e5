"""Dask mode: chunks run as tasks on a ``dask.distributed`` cluster, one task per chunk.

    scheduler --submit(chunk)--> DaskBackend --client.submit(dask_chunk, run, task, items)-->
        ^                             |                 dask scheduler --> dask worker thread
        |                             |                                          |
        +------ Outcome / Lost -------+<--- pickled outcome (bytes) or KilledWorker -+

Actors
- the client: an *asynchronous* ``distributed.Client`` on the engine's own event loop, so no
  dask call ever blocks the loop and no extra thread is needed. It connects to the scheduler
  at ``address`` (``tcp://`` or ``tls://``; TLS uses Dask's own security settings from
  ``dask.config``), or else to a ``LocalCluster`` of ``workers`` single-threaded worker
  processes on 127.0.0.1, which this backend starts and shuts down.
- the task (``dask_chunk``, in the worker): runs ``run_chunk`` over the chunk, like a process
  worker, and returns its outcome pickled, having checked that it pickles (a value that does
  not is failed alone). The task function and ``init`` travel as one pickled payload, loaded
  and initialised once per worker process and run (a module-level table keyed by the run id),
  so ``init`` runs before that worker's first item and a failing one stops the run.
- a collector per chunk: awaits the dask future and resolves the scheduler's future.

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

Tasks given by file (``path/to/task.py:function``). Before the first chunk the task is loaded
on every worker (``Client.run``). When that fails because a module the parent loaded from a
loose ``.py`` file is missing there, the file is uploaded to the workers with Dask's
``UploadFile`` worker plugin (``Client.upload_file`` does the same), which also reaches workers
that join or restart later, and is removed when the run ends. A module whose name is not its
file's stem cannot be imported from an upload; it is sent by value instead (cloudpickle). Any
other missing module stops the run before any item, with the worker's error.

Halting is best effort: ``halt`` tells every worker (``Client.run``) to start no new item of
this run; chunks already sent then come back short, and their unstarted items count as not
run. ``close(kill=True)`` also cancels every task; on a cluster of your own a task already
running finishes the item in hand (a thread cannot be stopped), then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from crunch._worker import FailureTuple, Outcome, _drop_unpicklable, describe, run_chunk
from crunch.backends import Backend, Lost, WorkerStartError
from crunch.exceptions import MissingExtraError, UsageError

INSTALL_HINT = "pip install 'crunch[dask]'   (or, in a uv project: uv add 'crunch[dask]')"

# Settings of the local cluster's scheduler (see the module docstring): report every worker
# death at once, and send a worker only the task it is about to run.
LOCAL_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
CLEANUP_TIMEOUT = 10.0  # seconds for each best-effort step of closing (forget, unregister)
CLUSTER_CLOSE_TIMEOUT = 30.0  # seconds for the local cluster to stop its worker processes
MAX_UPLOADS = 8  # loose modules uploaded for one task before giving up (import chains)


class DaskBackend(Backend):
    """Chunks as dask tasks on an existing scheduler (``address``) or a local cluster."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int,
        timeout: float | None,
        init: Callable[[], Any] | None,
        address: str | None = None,
    ) -> None:
        try:
            import distributed  # noqa: F401 - fail here, before any item, when missing
        except ImportError as exc:
            raise MissingExtraError(
                "mode 'dask' needs the optional dask extra (dask.distributed), which is not "
                f"installed: {INSTALL_HINT}"
            ) from exc
        self.fn = fn
        self.init = init
        self.timeout = timeout
        self.address = address
        self.workers = workers
        # The scheduler sizes its window from ``lanes`` before ``start``; for a cluster of
        # our own that is exact, for an existing one ``start`` corrects it to the cluster's
        # thread count.
        self.lanes = workers
        self.run_id = uuid.uuid4().hex
        # The task's own modules when they come from loose .py files (a task given by path):
        # uploaded at every start, so the workers run this version of the file, also after a
        # restart; one whose name is not its file's stem cannot be imported there, and travels
        # by value instead.
        self.uploads: list[Path] = []
        self.by_value: list[Any] = []
        for module in {_module_of(f) for f in (fn, init) if f is not None}:
            path = _loose_file(module)
            if path is not None:
                if path.stem == module.__name__:
                    self.uploads.append(path)
                else:
                    self.by_value.append(module)
        self.payload = _pickle_task(fn, init, self.by_value)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None
        self.cluster: Any = None
        self.plugins: list[str] = []  # UploadFile plugins registered for this run
        # chunk id -> (items, the scheduler's future, the dask future, its collector)
        self.pending: dict[int, tuple[list[Any], asyncio.Future[Any], Any, asyncio.Task[Any]]]
        self.pending = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.halted = False
        self.closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await self._connect()
            for path in self.uploads:
                await self._upload(path)
            await self._check_task()
        except Exception:
            if self.closing is not None:
                return  # closed while starting (Ctrl-C): nothing to report
            raise
        finally:
            if self.closing is not None:
                await self._release()  # what was still starting when close() ran
        if self.halted:
            self._send_halt()

    async def _connect(self) -> None:
        from distributed import Client

        if self.address is None:
            self.cluster = await self._local_cluster()
            target: Any = self.cluster
        else:
            target = self.address
        try:
            self.client = await Client(target, asynchronous=True, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"cannot connect to the dask scheduler at {self.address}: {exc}"
            ) from exc
        if self.address is not None:
            threads = await self.client.nthreads()
            self.lanes = max(1, sum(threads.values()))

    async def _local_cluster(self) -> Any:
        import dask
        from distributed import LocalCluster

        with dask.config.set(LOCAL_SCHEDULER_CONFIG):
            return await LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
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
                if isinstance(reply, BaseException):
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

    async def _ship_module(self, name: str) -> bool:
        """Make the loose module ``name`` of this process reach the workers, if it is one."""
        module = sys.modules.get(name)
        path = _loose_file(module)
        if module is None or path is None:
            return False
        if path.stem == name:
            await self._upload(path)
        else:
            self.by_value.append(module)
            self.payload = _pickle_task(self.fn, self.init, self.by_value)
        return True

    async def _upload(self, path: Path) -> None:
        """Send ``path`` to every worker, present and future, and import it there."""
        from distributed.diagnostics.plugin import UploadFile

        plugin = f"crunch-upload-{self.run_id}-{path.stem}"
        await self.client.register_plugin(UploadFile(str(path)), name=plugin)
        self.plugins.append(plugin)

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
        client = self.client
        if client is not None:
            if kill or pending:
                await _quietly(client.run(_halt_run, self.run_id, on_error="ignore"))
                if pending:
                    await _quietly(client.cancel([p[2] for p in pending], force=True))
            await _quietly(client.run(_forget_run, self.run_id, on_error="ignore"))
            for name in self.plugins:
                await _quietly(client.unregister_worker_plugin(name))
        for task in list(self.background):
            task.cancel()
        await self._release()

    async def _release(self) -> None:
        """Close the client, then the local cluster (stopping its worker processes)."""
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        if client is not None:
            await _quietly(client.close())
        if cluster is not None:
            await _quietly(cluster.close(), CLUSTER_CLOSE_TIMEOUT)

    # ------------------------------------------------------------------ dispatch
    def submit(self, chunk_id: int, items: list[Any]) -> asyncio.Future[Outcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[Outcome | Lost] = self.loop.create_future()
        if self.closing is not None:
            future.set_result(Lost(rerun=range(len(items))))
            return future
        try:
            sent = self.client.submit(
                dask_chunk,
                self.run_id,
                self.payload,
                items,
                self.timeout,
                key=f"crunch-chunk-{self.run_id}-{chunk_id}",
                pure=False,
            )
        except Exception as exc:  # noqa: BLE001 - the chunk could not be sent
            from crunch.backends.process import _unsendable

            future.set_result(_unsendable(items, exc))
            return future
        collector = self.loop.create_task(self._collect(chunk_id, items, future, sent))
        self.pending[chunk_id] = (items, future, sent, collector)
        return future

    async def _collect(
        self, chunk_id: int, items: list[Any], future: asyncio.Future[Any], sent: Any
    ) -> None:
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        try:
            result = await sent.result()
        except KilledWorker:
            outcome: Any = Lost(rerun=range(len(items)), suspect=True)
        except FutureCancelledError as exc:
            if self.client is None or self.client.status not in ("running", "connecting"):
                outcome = WorkerStartError(f"lost the dask scheduler: {exc}")
            else:  # cancelled by someone else (a cluster restart): run it again
                outcome = Lost(rerun=range(len(items)))
        except Exception as exc:  # noqa: BLE001 - the task itself failed, not an item
            outcome = _task_failed(items, exc)
        else:
            outcome = pickle.loads(result) if isinstance(result, bytes) else result
            if isinstance(outcome, str):
                outcome = WorkerStartError(f"the dask workers could not start the task:\n{result}")
        self.pending.pop(chunk_id, None)
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    # ------------------------------------------------------------------ supervision
    def check_timeouts(self, now: float) -> None:
        # Nothing to do here: the task watches its own items (see the module docstring).
        return None

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


def _pickle_task(
    fn: Callable[[Any], Any], init: Callable[[], Any] | None, by_value: Sequence[Any] = ()
) -> bytes:
    """The task and its initializer, pickled together (so they share module state when sent
    by value); functions of ``__main__`` and of ``by_value`` modules travel by value."""
    import cloudpickle

    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps((fn, init), protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)


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


def _task_failed(items: list[Any], exc: BaseException) -> Lost:
    """The dask task raised (an item that does not unpickle on the worker, say): isolate the
    items so the one at fault fails alone, then fail it with the error."""
    if len(items) > 1:
        return Lost(rerun=range(len(items)), suspect=True)
    kind, type_, message, text, names = describe(exc)
    failure: FailureTuple = (kind, type_, f"the dask task failed: {message}", text, names)
    return Lost(rerun=(), blamed={0: (failure, 0.0)})


async def _quietly(awaitable: Any, timeout: float = CLEANUP_TIMEOUT) -> None:
    """Await a best-effort cleanup step: bounded in time, its errors ignored."""
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(awaitable, timeout)


# --------------------------------------------------------------------------- in the worker
# The state of each run in this worker process, loaded by the run's first chunk here.


class _Run:
    __slots__ = ("error", "fn", "halted", "lock", "ready")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = False
        self.halted = False
        self.fn: Callable[[Any], Any] | None = None
        self.error: str | None = None

    def is_halted(self) -> bool:
        return self.halted

    # The lane of a chunk run directly in the dask worker thread.
    def begin(self, index: int) -> bool:
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
            fn, init = pickle.loads(payload)
            if init is not None:
                init()
            run.fn = fn
        except BaseException as exc:  # noqa: BLE001 - reported to the parent by every chunk
            run.error = describe(exc)[3] or f"{type(exc).__name__}: {exc}"
        run.ready = True


def dask_chunk(run_id: str, payload: bytes, items: Sequence[Any], timeout: float | None) -> Any:
    """The dask task: one chunk in, its pickled ``Outcome`` (or ``Lost``, at a timeout) out.

    Returns ``str`` (the error text) instead when the task could not be loaded here or its
    initializer failed: the parent then stops the run with that message.
    """
    run = _run_state(run_id)
    if not run.ready:
        _load(run, payload)
    if run.error is not None:
        return run.error
    assert run.fn is not None
    result: Outcome | Lost
    if timeout is None:
        result = run_chunk(run.fn, items, run)
    else:
        result = _watched(run, run.fn, items, timeout)
    try:
        return pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except BaseException:  # noqa: BLE001 - find the values that do not pickle, fail just those
        if isinstance(result, Lost):
            if result.partial is not None:
                result.partial = _drop_unpicklable(result.partial)
        else:
            result = _drop_unpicklable(result)
        return pickle.dumps(result, pickle.HIGHEST_PROTOCOL)


def _watched(run: _Run, fn: Callable[[Any], Any], items: Sequence[Any], timeout: float) -> Any:
    """Run the chunk in a helper thread; abandon it at an item past ``timeout``."""
    from crunch.backends.thread import Job

    # Thread mode's job does the bookkeeping (which item since when, salvage at abandon);
    # here nothing waits on its future.
    job = Job(0, list(items), cast("asyncio.Future[Any]", None))
    job.halted = run.is_halted
    done = threading.Event()

    def main() -> None:
        try:
            run_chunk(fn, job.items, job, job.out)
        finally:
            done.set()

    threading.Thread(target=main, name="crunch-dask-item", daemon=True).start()
    tick = min(0.1, timeout / 4)
    while not done.wait(tick):
        started = job.started
        if started and time.monotonic() - started > timeout:
            return job.abandon(timeout)
    return job.out


def dask_probe(payload: bytes) -> tuple[str | None, str] | None:
    """Run on every worker by ``Client.run`` before the first chunk: can the task load here?

    None when it can; else the name of the missing module (if that is the reason) and the
    error text.
    """
    try:
        pickle.loads(payload)
    except ModuleNotFoundError as exc:
        return exc.name, describe(exc)[3] or str(exc)
    except BaseException as exc:  # noqa: BLE001
        return None, describe(exc)[3] or f"{type(exc).__name__}: {exc}"
    return None


def _halt_run(run_id: str) -> None:
    _run_state(run_id).halted = True


def _forget_run(run_id: str) -> None:
    with _RUNS_LOCK:
        run = _RUNS.pop(run_id, None)
    if run is not None:
        run.halted = True  # a straggler of the run stops before its next item
