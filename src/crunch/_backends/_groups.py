"""Process groups around process-mode workers: signals meant for crunch, and leftover children.

    crunch's process group          forkserver's group          one group per worker
    crunch (the parent)  --starts-> forkserver  --forks------> worker --starts--> child, ...

- The forkserver is started with the stop signals blocked (``start_workers_server``, through
  ``start_forkserver`` in crunch._pool_reach) and moves into a process group of its own as it
  starts (``leave_crunch_group``, run by its preload ``crunch._backends._forkserver_preload``),
  so every worker is born outside crunch's group:
  a signal sent to the whole group (``timeout``, systemd, a supervisor, a terminal's Ctrl-C)
  reaches crunch alone, which stops the run its own way (grace, then *not run*), instead of
  killing the workers under it.
- Each worker then leads a group of its own (``own_group``), which the child processes its
  task starts join. Killing a worker kills its group (``kill_worker``), and when the pool is
  shut down the groups of its workers are killed (``kill_leftovers``): a child process a task
  left running (``subprocess.Popen``, ``os.fork``) never outlives the run, and so never holds
  crunch's output, the forkserver or the resource tracker open after crunch ends. A worker whose
  parent died kills its own group (``end_own_group``).

A child that starts a session of its own (``start_new_session=True``, ``setsid``) leaves the
group on purpose, and is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def hold_stop_signals() -> set[int]:
    """Block the stop signals in this thread (and so in the threads and processes it starts
    from now on) after starting the resource tracker with them blocked; returns the mask to
    restore. A process started so leaves crunch's group with ``leave_crunch_group`` (dask mode's
    local cluster; process mode starts its forkserver with ``crunch._pool_reach``)."""
    from multiprocessing import resource_tracker

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    resource_tracker.ensure_running()
    # Starting the tracker unblocks SIGINT and SIGTERM in this thread: block them again.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    return blocked


PRELOAD = "crunch._backends._forkserver_preload"


def start_workers_server() -> None:
    """Start the forkserver that process-mode workers fork from, unless it runs: with its
    preload (``PRELOAD``), and the stop signals held as it starts (``start_forkserver`` in
    crunch._pool_reach says why).

    The command calls this as soon as its checks pass, so that the server boots (a Python
    process of its own) while the command loads the engine; the pool calls it again as it
    opens, which starts nothing when the server runs.
    """
    from multiprocessing import forkserver

    from crunch._pool_reach import start_forkserver

    forkserver.set_forkserver_preload([PRELOAD])
    start_forkserver(STOP_SIGNALS)


def leave_crunch_group() -> None:
    """In the forkserver (or a worker of dask's local cluster), first thing: a process group
    of its own; drop the signals held."""
    try:
        os.setpgid(0, 0)
        moved = True
    except OSError:
        moved = False
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # discards a pending one
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if moved:  # out of crunch's group: the pool's SIGTERM must work on the workers again
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # SIGINT stays ignored, in the server and in every worker: the parent decides.


def own_group() -> None:
    """In a new worker: lead a process group of its own; a background group writes freely."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    # In a group that is not the terminal's foreground one, writing to the terminal stops the
    # process when `stty tostop` is set, unless SIGTTOU is ignored.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)


def leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def kill_worker(pid: int) -> None:
    """SIGKILL the worker ``pid`` and every process of its group."""
    with contextlib.suppress(OSError):
        if leads_group(pid):
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def kill_leftovers(pids: Iterable[int]) -> None:
    """SIGKILL what remains of the groups of these workers, which have exited.

    A group outlives its leader while a member lives, and its id is not given to a new process
    until then: the signal reaches exactly the processes the worker's task left behind.
    """
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def end_own_group() -> None:
    """In a worker whose parent is gone: SIGKILL its group, itself included."""
    if os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(1)
