"""Dask mode on a real cluster: a ``dask scheduler`` and two ``dask worker`` processes.

Everything goes through the public API (``crunch.run``, ``crunch.imap``). The cluster is
shared by the module (see tests/dask_cluster.py); a test that kills workers waits for the
nannies to bring them back before the next one starts.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dask
import dask_tasks
import pytest
from dask_cluster import DaskCluster, dask_cluster

import crunch

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """One scheduler and two single-threaded workers for the whole module."""
    with dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


@pytest.fixture
def cluster(shared_cluster: DaskCluster) -> DaskCluster:
    """The shared cluster, with both workers registered."""
    shared_cluster.wait_ready()
    return shared_cluster


@pytest.mark.timeout(120)
def test_records_equal_process_mode(cluster: DaskCluster) -> None:
    """Dask mode gives the same values, keys and failures as process mode."""
    items = list(range(40))
    local = crunch.run(dask_tasks.square_or_fail, items, mode="process", workers=2)
    remote = crunch.run(
        dask_tasks.square_or_fail, items, mode="dask", scheduler=cluster.address, workers=2
    )
    assert remote.succeeded == local.succeeded
    assert remote.failed.keys() == local.failed.keys()
    for key, failure in remote.failed.items():
        assert (failure.kind, failure.type, failure.message) == (
            local.failed[key].kind,
            local.failed[key].type,
            local.failed[key].message,
        )
    assert remote.not_run == 0


@pytest.mark.timeout(120)
def test_exception_is_an_error_record(cluster: DaskCluster) -> None:
    """An exception in one item becomes that item's error record; the others are ok."""
    batch = crunch.run(dask_tasks.square_or_fail, range(10), mode="dask", scheduler=cluster.address)
    assert set(batch.failed) == {3}
    failure = batch.failed[3]
    assert (failure.kind, failure.type, failure.message) == ("error", "ValueError", "bad item 3")
    assert "square_or_fail" in failure.traceback
    assert batch.succeeded == {i: i * i for i in range(10) if i != 3}


@pytest.mark.timeout(120)
def test_ordered_output(cluster: DaskCluster) -> None:
    """``ordered=True`` yields results in input order although later items finish first."""
    items = [0.3, 0.2, 0.1, 0.0, 0.25, 0.0, 0.15, 0.05, 0.0, 0.1]
    results = list(
        crunch.imap(
            dask_tasks.sleep_for,
            items,
            mode="dask",
            scheduler=cluster.address,
            workers=2,
            chunk_size=1,
            ordered=True,
        )
    )
    assert [r.key for r in results] == list(range(len(items)))
    assert [r.value for r in results] == items


@pytest.mark.timeout(120)
def test_max_failures_halts_the_workers(cluster: DaskCluster) -> None:
    """``max_failures`` stops the workers starting items; the rest are counted as not run."""
    batch = crunch.run(
        dask_tasks.slow_square_or_fail,
        range(100),
        mode="dask",
        scheduler=cluster.address,
        max_failures=2,
    )
    assert len(batch.failed) >= 2
    assert batch.not_run > 0
    assert len(batch.succeeded) + len(batch.failed) + batch.not_run == 100


@pytest.mark.timeout(120)
def test_worker_killed_mid_run_loses_nothing(cluster: DaskCluster) -> None:
    """A worker SIGKILLed mid-run: every item still gets exactly one record, all ok."""
    before = cluster.worker_pids()
    victim = next(iter(before.values()))
    keys = []
    stream = crunch.imap(
        dask_tasks.slow_square, range(60), mode="dask", scheduler=cluster.address, workers=2
    )
    for result in stream:
        keys.append(result.key)
        assert result.ok, result.error
        assert result.value == result.key**2
        if len(keys) == 5:
            os.kill(victim, signal.SIGKILL)
    assert sorted(keys) == list(range(60))
    cluster.wait_ready()
    assert victim not in cluster.worker_pids().values()  # the worker did die (and came back)


@pytest.mark.timeout(120)
def test_item_that_exits_is_a_crash_record(cluster: DaskCluster) -> None:
    """An item calling ``os._exit`` ends as a crash record; the items beside it are ok."""
    items = [*range(10), -1, *range(10, 20)]
    batch = crunch.run(
        dask_tasks.exit_on_negative,
        items,
        mode="dask",
        scheduler=cluster.address,
        workers=2,
        chunk_size=3,  # the poison item shares chunks until it is isolated
    )
    assert set(batch.failed) == {10}
    assert batch.failed[10].kind == "crash"
    assert batch.succeeded == {k: x * x for k, x in enumerate(items) if x >= 0}
    # Dask does not say how a worker of its own cluster died: the record says so, and names
    # the last worker that died, whose nanny's log has the exit code.
    message = batch.failed[10].message
    assert "dask does not report how its workers die: that worker's nanny log says" in message
    assert "the last to die was tcp://127.0.0.1:" in message
    assert " (pid " in message


@pytest.mark.timeout(120)
def test_timeout_is_reported(cluster: DaskCluster) -> None:
    """An item past ``timeout`` is a timeout record; the items after it in its chunk still run."""
    items = [0, 1, 2, -1, 4, 5, 6, 7]
    batch = crunch.run(
        dask_tasks.hang_on_negative,
        items,
        mode="dask",
        scheduler=cluster.address,
        workers=2,
        chunk_size=4,
        timeout=1,
    )
    assert set(batch.failed) == {3}
    assert (batch.failed[3].kind, batch.failed[3].type) == ("timeout", "TimeoutError")
    assert batch.succeeded == {k: x * x for k, x in enumerate(items) if x >= 0}


@pytest.mark.timeout(120)
def test_init_runs_once_per_worker_before_items(cluster: DaskCluster) -> None:
    """``init`` runs once in each worker process, before that worker's first item."""
    batch = crunch.run(
        dask_tasks.init_state,
        range(30),
        init=dask_tasks.remember_pid,
        mode="dask",
        scheduler=cluster.address,
    )
    assert batch.ok
    assert set(batch.succeeded.values()) == {(1, 1)}


@pytest.mark.timeout(120)
def test_failing_init_stops_the_run(cluster: DaskCluster) -> None:
    """An ``init`` that raises stops the run with its error before any record."""
    stream = crunch.imap(
        dask_tasks.square,
        range(5),
        init=dask_tasks.broken_init,
        mode="dask",
        scheduler=cluster.address,
    )
    with pytest.raises(crunch.UsageError, match="the model file is missing"):
        next(stream)


@pytest.mark.timeout(120)
def test_init_that_ends_its_worker_stops_the_run(cluster: DaskCluster) -> None:
    """An ``init`` that ends its worker process is a start-up error, as in process mode, not a
    crash record per item; the message says which nanny's log tells how the worker died."""
    try:
        with pytest.raises(crunch.WorkerStartError) as raised:
            crunch.run(
                dask_tasks.square,
                range(5),
                init=dask_tasks.exiting_init,
                mode="dask",
                scheduler=cluster.address,
            )
        message = str(raised.value)
        assert "the init function dask_tasks:exiting_init ended its dask worker" in message
        assert "nanny log" in message
    finally:
        cluster.wait_ready()  # the nannies bring the killed workers back


@pytest.mark.timeout(120)
@pytest.mark.parametrize("module_name", ["stem", "own"])
def test_task_file_reaches_the_workers(
    cluster: DaskCluster, tmp_path: Path, module_name: str
) -> None:
    """A task from a .py file only the client has runs on the workers, whatever its module name."""
    stem = f"crunch_file_task_{os.getpid()}_{module_name}"
    path = tmp_path / f"{stem}.py"
    path.write_text(
        textwrap.dedent(
            """
            OFFSET = 1000

            def shift(x):
                return x + OFFSET
            """
        )
    )
    name = stem if module_name == "stem" else f"crunch_task_{stem}_loaded"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        batch = crunch.run(module.shift, range(6), mode="dask", scheduler=cluster.address)
    finally:
        del sys.modules[name]
    assert batch.succeeded == {i: i + 1000 for i in range(6)}


@pytest.mark.timeout(120)
def test_cli_file_task_on_the_cluster(cluster: DaskCluster, tmp_path: Path) -> None:
    """``crunch process --task file.py:fn -O ... --mode dask --scheduler`` runs on the workers."""
    task = tmp_path / "sizes.py"
    task.write_text("def size(path, factor=1):\n    return path.stat().st_size * factor\n")
    data = tmp_path / "data"
    data.mkdir()
    for n in range(5):
        (data / f"{n}.txt").write_text("x" * n)
    out = tmp_path / "out.jsonl"
    crunch_cli = Path(sys.executable).with_name("crunch")
    argv = [crunch_cli, "process", data, "--task", f"{task}:size", "-O", "factor=3"]
    argv += ["--mode", "dask", "--scheduler", cluster.address, "-o", out, "--no-progress"]
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        check=False,  # the assertion shows stderr
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["item"]: r["value"] for r in records} == {
        str(data / f"{n}.txt"): 3 * n for n in range(5)
    }


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_scheduler_uses_dask_security_config(tmp_path: Path) -> None:
    """A ``tls://`` scheduler is reached with the certificates set in Dask's own config."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    settings = {
        "distributed.comm.tls.ca-file": str(cert),
        "distributed.comm.tls.client.cert": str(cert),
        "distributed.comm.tls.client.key": str(key),
    }
    with dask_cluster(tmp_path, workers=1, tls=(cert, key)) as cluster:
        assert cluster.address.startswith("tls://")
        with dask.config.set(settings):
            batch = crunch.run(dask_tasks.square, range(8), mode="dask", scheduler=cluster.address)
    assert batch.succeeded == {i: i * i for i in range(8)}


@pytest.mark.timeout(120)
def test_local_cluster() -> None:
    """Without a scheduler address crunch starts a local cluster and stops it afterwards."""
    before = set(multiprocessing.active_children())
    batch = crunch.run(dask_tasks.square_or_fail, range(20), mode="dask", workers=2)
    assert batch.succeeded == {i: i * i for i in range(20) if i % 7 != 3}
    assert set(batch.failed) == {3, 10, 17}
    assert set(multiprocessing.active_children()) <= before  # its workers are gone


@pytest.mark.timeout(120)
def test_local_cluster_crash_records_name_the_exit_code() -> None:
    """A local cluster's nannies run in crunch's process: the crash record of an item that
    kills its worker names the exit code, as in process mode."""
    items = [1, -1, 2]
    batch = crunch.run(dask_tasks.exit_on_negative, items, mode="dask", workers=2, chunk_size=1)
    assert set(batch.failed) == {1}
    assert batch.failed[1].kind == "crash"
    assert batch.failed[1].message.endswith("; the last: worker exited with code 3")
    assert batch.succeeded == {0: 1, 2: 4}


@pytest.mark.timeout(60)
def test_missing_extra_says_how_to_install() -> None:
    """Without ``distributed`` installed, dask mode fails before any item with the install line."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["distributed"] = None  # as if the extra were not installed
        import crunch
        try:
            crunch.run(abs, [1, -2], mode="dask", workers=1)
        except crunch.MissingExtraError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    )
    assert "pip install 'crunch[dask]'" in done.stdout
    assert "uv add 'crunch[dask]'" in done.stdout
