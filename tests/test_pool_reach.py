"""What crunch relies on in ``concurrent.futures`` and ``multiprocessing`` beyond their
documented API (crunch._pool_reach), and the private ``_signal`` module (crunch._entry).

Each test checks that a private name is still there and still behaves as crunch uses it, on a
real pool, so that a Python release that changes one fails here, by name, rather than a run
that hangs or blames the wrong item.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import process as cf
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import popen_forkserver, spawn
from pathlib import Path

import memtasks
import pytest
import reach_tasks
from helpers import env

from crunch import _pool_reach
from crunch._backends._groups import STOP_SIGNALS


def _pool(workers: int = 1) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def _until(condition: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --------------------------------------------------------------------------- names
def test_the_pool_internals_crunch_reaches_are_there() -> None:
    """Every private name of concurrent.futures.process that crunch._pool_reach uses exists
    and means what it did (Python 3.11 to 3.13)."""
    assert _pool_reach.can_leave()
    loop = cf._process_worker
    assert loop.__name__ == _pool_reach.WORKER_LOOP
    assert set(_pool_reach.WORKER_LOCALS) <= set(loop.__code__.co_varnames)
    assert list(inspect.signature(loop).parameters)[:2] == ["call_queue", "result_queue"]
    assert "exit_pid" in inspect.signature(cf._sendback_result).parameters
    assert "exit_pid" in inspect.signature(cf._ResultItem).parameters
    assert "work_id" in inspect.signature(cf._CallItem).parameters
    source = inspect.getsource(cf._ExecutorManagerThread.run)
    assert "exit_pid" in source  # the manager joins a worker that leaves with its result
    assert callable(cf.ProcessPoolExecutor._spawn_process)
    pool = _pool()
    try:
        assert isinstance(pool._processes, dict)
        assert hasattr(pool._shutdown_lock, "acquire")
        assert pool._broken is False
        assert pool._shutdown_thread is False
        assert isinstance(pool._result_queue._writer.fileno(), int)
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- worker_processes
def test_worker_processes_tell_how_a_killed_worker_ended() -> None:
    """worker_processes gives each worker's Process by pid, and its exit code after a kill is
    the signal (what crunch blames a crash with), though the worker is the forkserver's child."""
    pool = _pool()
    try:
        pid = pool.submit(os.getpid).result(timeout=30)
        procs = dict(_pool_reach.worker_processes(pool))
        assert list(procs) == [pid]
        assert procs[pid].pid == pid
        assert procs[pid].exitcode is None
        waiting = pool.submit(time.sleep, 30)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            waiting.result(timeout=30)
        procs[pid].join(10)
        assert procs[pid].exitcode == -signal.SIGKILL
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- unstick_result_pipe
def test_a_truncated_result_hangs_the_pool_until_unstuck() -> None:
    """A result message cut short (its worker killed while writing it) leaves the pool's
    manager thread waiting for the rest, the death unreported; unstick_result_pipe completes
    the message and the pool breaks the ordinary way. If the first assertion fails, this
    Python's pool no longer hangs there and unstick_result_pipe may not be needed."""
    pool = _pool()
    try:
        pid = pool.submit(os.getpid).result(timeout=30)
        waiting = pool.submit(time.sleep, 30)
        # A length header that promises 1 MiB, then three bytes, and the writer dies.
        os.write(pool._result_queue._writer.fileno(), struct.pack("!i", 1 << 20) + b"cut")
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        assert not waiting.done(), "the pool noticed the death by itself"
        assert not pool._broken
        _pool_reach.unstick_result_pipe(pool, seconds=10)
        assert pool._broken
        with pytest.raises(BrokenProcessPool):
            waiting.result(timeout=10)
    finally:
        pool.shutdown()


def test_unstick_leaves_a_broken_pool_alone() -> None:
    """On a pool that is broken already it returns at once and writes nothing."""
    pool = _pool()
    try:
        pid = pool.submit(os.getpid).result(timeout=30)
        os.kill(pid, signal.SIGKILL)
        _until(lambda: pool._broken)
        started = time.monotonic()
        _pool_reach.unstick_result_pipe(pool, seconds=10)
        assert time.monotonic() - started < 1.0
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- leaving the pool
def test_a_worker_leaves_without_breaking_the_pool() -> None:
    """leave_pool in a worker: its result arrives, the pool is not broken, a replacement
    starts, and the next tasks run, on both Python's own path and crunch's."""
    pool = _pool(2)
    try:
        first = {pool.submit(os.getpid).result() for _ in range(6)}
        leaver = pool.submit(memtasks.leave_with, 41).result(timeout=30)
        assert leaver[0] == 41
        assert not pool._broken
        deadline = time.monotonic() + 10
        while not _pool_reach.replace_leavers(pool, 2, leaver[1]):
            assert time.monotonic() < deadline, "the pool never let the worker go"
            time.sleep(0.01)
        assert len(pool._processes) == 2
        assert leaver[1] not in pool._processes
        after = [pool.submit(os.getpid).result(timeout=30) for _ in range(6)]
        assert leaver[1] not in after
        assert first  # the pool ran tasks before and after
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- without_main
def test_preparation_data_skips_main_only_inside_the_block() -> None:
    """Inside without_main(True), this thread's preparation data has neither key that makes a
    new process import __main__; outside (and with False) it is what multiprocessing gives."""
    with _pool_reach.without_main(False):
        plain = spawn.get_preparation_data("x")
    with _pool_reach.without_main(True):
        bare = spawn.get_preparation_data("x")
    after = spawn.get_preparation_data("x")
    assert not set(_pool_reach.MAIN_KEYS) & set(bare)
    assert plain == after
    assert {k: v for k, v in plain.items() if k not in _pool_reach.MAIN_KEYS} == bare
    # The forkserver looks the function up when it launches each process, so the filter
    # installed on the module applies.
    assert "spawn.get_preparation_data(" in inspect.getsource(popen_forkserver.Popen._launch)


def test_a_worker_started_without_main_does_not_import_it() -> None:
    """A worker the pool starts inside without_main(True) has not imported the caller's
    __main__ (here pytest's own script, when pytest was started by it)."""
    pool = _pool()
    try:
        with _pool_reach.without_main(True):
            main = pool.submit(reach_tasks.main_file)
        assert main.result(timeout=30) is None
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- start_forkserver
def test_the_forkserver_starts_with_the_stop_signals_blocked(tmp_path: Path) -> None:
    """start_forkserver: the server inherits the stop signals blocked (its first preload sees
    them blocked), though the resource tracker started first unblocks some in the caller; the
    caller's mask is as it was after."""
    mask_file = tmp_path / "mask"
    code = (
        "import multiprocessing, signal\n"
        "from crunch._pool_reach import start_forkserver\n"
        "from crunch._backends._groups import STOP_SIGNALS\n"
        "ctx = multiprocessing.get_context('forkserver')\n"
        # reach_tasks notes the mask the server started with, then crunch's preload goes on
        "ctx.set_forkserver_preload(['reach_tasks', 'crunch._backends._forkserver_preload'])\n"
        "before = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "start_forkserver(STOP_SIGNALS)\n"
        "assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "with ProcessPoolExecutor(1, mp_context=ctx) as pool:\n"  # the preload ran by then
        "    assert pool.submit(abs, -3).result(timeout=30) == 3\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env(CRUNCH_TEST_MASK_FILE=str(mask_file)),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ok\n"
    assert set(STOP_SIGNALS) <= reach_tasks.blocked_signals(mask_file.read_text())


# --------------------------------------------------------------------------- _signal
def test_the_entry_point_signal_module_is_the_one_signal_wraps() -> None:
    """crunch._entry installs its first handlers with ``_signal`` (loaded at interpreter
    start, unlike ``signal``): a handler set there is what ``signal`` reports and replaces,
    as the command does when a run takes over."""
    import _signal

    from crunch import _entry

    assert _entry._signal is _signal
    assert (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP) == (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
    )

    def handler(signum: int, frame: object) -> None:
        raise AssertionError("not to be called")

    previous = signal.getsignal(signal.SIGHUP)
    try:
        _signal.signal(signal.SIGHUP, handler)
        assert signal.getsignal(signal.SIGHUP) is handler
        assert signal.signal(signal.SIGHUP, previous) is handler
    finally:
        signal.signal(signal.SIGHUP, previous)
    started = subprocess.run(
        [sys.executable, "-c", "import sys; print('_signal' in sys.modules)"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert started.stdout == b"True\n"


def test_the_entry_point_can_tell_a_signal_inside_an_import(tmp_path: Path) -> None:
    """crunch._entry exits at once on a stop signal raised inside an import, which it tells by
    the import system's frames (CPython's frozen importlib, ``<frozen importlib._bootstrap>``);
    elsewhere it is False."""
    from crunch import _entry

    (tmp_path / "reach_probe.py").write_text(
        "import sys\nfrom crunch import _entry\nINSIDE = _entry._inside_import(sys._getframe())\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import reach_probe  # ty: ignore[unresolved-import]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("reach_probe", None)
    assert reach_probe.INSIDE is True
    assert _entry._inside_import(sys._getframe()) is False
