"""A real dask cluster for the tests: a ``dask scheduler`` and worker processes on 127.0.0.1.

Each is started from the venv's ``dask`` command in a session of its own, so teardown can stop
it with every process it started (a worker's nanny and the worker under it), and nothing is
left running whatever happened in the tests.

The scheduler runs with ``allowed-failures: 0`` and ``worker-saturation: 1.0``, the settings
docs/cluster.md recommends for exact crash attribution (and the ones crunch gives its own local
cluster). The workers run outside the repository with a clean ``PYTHONPATH``: the test task
module (tests/dask_tasks.py) is not importable there until crunch uploads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

SCHEDULER_CONFIG = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
}
START_TIMEOUT = 90.0  # seconds; a loaded 2-core machine imports distributed slowly


class DaskCluster:
    """A running scheduler and its workers, and a client to inspect them."""

    def __init__(self, address: str, client: Any, workers: int) -> None:
        self.address = address
        self.client = client
        self.workers = workers

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the worker process (not its nanny)."""
        return self.client.run(os.getpid)

    def wait_ready(self) -> None:
        """Block until every worker is registered again (after a test killed one)."""
        self.client.wait_for_workers(self.workers, timeout=START_TIMEOUT)


@contextlib.contextmanager
def dask_cluster(
    base: Path, workers: int = 2, tls: tuple[Path, Path] | None = None
) -> Generator[DaskCluster]:
    """Start a scheduler and ``workers`` single-threaded workers; stop them all on exit.

    ``tls``: (certificate, key) files; the cluster then speaks only ``tls://``, with that
    self-signed certificate as the CA of every side.
    """
    from distributed import Client
    from distributed.security import Security

    dask = Path(sys.executable).with_name("dask")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SCHEDULER_CONFIG)
    scheduler_file = base / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    client = None
    try:
        scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0"]
        scheduler += ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
        scheduler += ["--scheduler-file", scheduler_file]
        security = None
        if tls is not None:
            cert, key = tls
            flags = ["--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key]
            scheduler += ["--protocol", "tls", *flags]
            security = Security(
                tls_ca_file=str(cert),
                tls_client_cert=str(cert),
                tls_client_key=str(key),
                require_encryption=True,
            )
        procs.append(_spawn(scheduler, base / "scheduler.log", base, env))
        _wait_for_file(scheduler_file, procs[0])
        for n in range(workers):
            local = base / f"worker-{n}"
            local.mkdir()
            worker = [dask, "worker", "--scheduler-file", scheduler_file, "--host", "127.0.0.1"]
            worker += ["--nworkers", "1", "--nthreads", "1", "--name", f"worker-{n}"]
            worker += ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
            worker += ["--local-directory", local]
            if tls is not None:
                worker += flags
            procs.append(_spawn(worker, base / f"worker-{n}.log", local, env))
        client = Client(
            scheduler_file=str(scheduler_file), timeout=START_TIMEOUT, security=security
        )
        address = json.loads(scheduler_file.read_text())["address"]
        cluster = DaskCluster(address, client, workers)
        cluster.wait_ready()
        yield cluster
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        _stop(procs[1:])  # the workers first, then the scheduler
        _stop(procs[:1])


def _spawn(argv: list[Any], log: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not (path.exists() and path.stat().st_size):
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("dask scheduler did not start")
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process's session (a nanny stops its worker); SIGKILL what is left."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_group_alive(p.pid) for p in procs) and time.monotonic() < deadline:
        for proc in procs:
            proc.poll()  # reap the session leader, so its group can empty
        time.sleep(0.1)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
