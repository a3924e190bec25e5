"""What starts must end: workers, threads, child processes, the program itself.

- an ``--init`` that ends its worker is a clean usage error, like one that raises (README,
  "Exit status"), never a storm of new workers;
- a plain function hung past ``--timeout`` lets the program exit once the run is over, in
  every mode (threads that cannot be killed are abandoned, never waited for);
- leaving ``crunch.amap`` early stops the run: no worker process and no engine thread remain;
- a task's leftover child processes (``subprocess.Popen``, ``os.fork``) die with its worker
  in process mode, so nothing of the run outlives crunch or holds its output open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import edge_tasks
import orjson
import pytest
from conftest import LOCAL_MODES
from helpers import crunch_cmd, descendants, env, processes_with_session, worker_pids

import crunch


def jsonl(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def wait_gone(check: Callable[[], list[int]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = check()
        if not left:
            return
        assert time.monotonic() < deadline, f"{what} remain: {left}"
        time.sleep(0.05)


# ------------------------------------------------------------------------ --init ends its worker
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["process", pytest.param("dask", marks=pytest.mark.dask)])
def test_init_that_exits_its_worker_is_a_usage_error(tmp_path: Path, mode: str) -> None:
    """os._exit(4) in --init: exit 2 with one line naming the init and the code, at once (in
    dask mode, on a local cluster); the other modes run it in crunch's own process."""
    began = time.monotonic()
    out = subprocess.run(
        crunch_cmd(
            "process",
            "--jsonl",
            str(jsonl(tmp_path, 20)),
            "--init",
            "edge_tasks:init_exits",
            "--workers",
            "2",
            "--mode",
            mode,
        ),
        capture_output=True,
        env=env(),
        timeout=50,
        check=False,
        start_new_session=True,
    )
    assert time.monotonic() - began < 30
    assert out.returncode == 2, out.stderr.decode()
    errors = [line for line in out.stderr.decode().splitlines() if "error" in line]
    assert len(errors) == 1, out.stderr.decode()
    assert "edge_tasks:init_exits" in errors[0]
    assert "exited with code 4" in errors[0]
    assert "Traceback" not in out.stderr.decode()
    assert out.stdout == b""


def test_init_that_exits_fails_the_library_run_too() -> None:
    """The same through crunch.run: a WorkerStartError (a usage error) naming the init."""
    with pytest.raises(crunch.WorkerStartError, match=r"init_exits.*exited with code 4"):
        crunch.run(edge_tasks.square, range(10), init=edge_tasks.init_exits, workers=2)


# ------------------------------------------------------------------------ hung past --timeout
@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_command_exits_after_items_hung_past_the_timeout(tmp_path: Path, mode: str) -> None:
    """Every item hangs: each is a timeout record, the summary prints, and crunch exits."""
    began = time.monotonic()
    out = subprocess.run(
        crunch_cmd(
            "process",
            "--jsonl",
            str(jsonl(tmp_path, 3)),
            "--task",
            "edge_tasks:hang",
            "--timeout",
            "0.5",
            "--mode",
            mode,
            "--workers",
            "3",
        ),
        capture_output=True,
        env=env(),
        timeout=60,
        check=False,
        start_new_session=True,
    )
    assert out.returncode == 1, out.stderr.decode()
    records = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["item"] for r in records) == [1, 2, 3]
    assert {r["error"]["kind"] for r in records} == {"timeout"}
    assert time.monotonic() - began < 40


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_program_exits_after_library_items_hung_past_the_timeout(tmp_path: Path, mode: str) -> None:
    """A script whose crunch.run met hung items ends when its own code does."""
    script = tmp_path / "hung.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import crunch, edge_tasks
            if __name__ == "__main__":
                batch = crunch.run(edge_tasks.hang, [1, 2], mode={mode!r}, timeout=0.5)
                print(sorted(f.kind for f in batch.failed.values()))
            """
        )
    )
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        env=env(),
        timeout=60,
        check=False,
        start_new_session=True,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"['timeout', 'timeout']\n"
    assert time.monotonic() - began < 40


# ------------------------------------------------------------------------ leaving amap early
def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("crunch-")]


def run_workers() -> list[int]:
    return worker_pids(os.getpid())


async def first_then_break(mode: str, closing: str) -> int:
    stream = crunch.amap(edge_tasks.sleep_then_square, range(100_000), mode=mode, workers=2)
    if closing == "async-with":
        async with stream as results:
            async for result in results:
                return result.key
    if closing == "aclosing":
        async with contextlib.aclosing(stream) as results:
            async for result in results:
                return result.key
    async for result in stream:  # a bare break: the stream is dropped
        key = result.key
        break
    del stream
    return key


@pytest.mark.timeout(60)
@pytest.mark.parametrize("closing", ["break", "async-with", "aclosing"])
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_leaving_amap_early_stops_the_run(mode: str, closing: str) -> None:
    """After the loop: no worker process, no engine thread, while the caller's loop goes on."""

    async def main() -> None:
        await first_then_break(mode, closing)
        if closing != "break":  # the block has ended: the workers are gone already
            assert not run_workers()
        for _ in range(300):  # the caller's loop keeps running meanwhile
            if not run_workers() and not engine_threads():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"left running: workers {run_workers()}, {engine_threads()}")

    asyncio.run(main())


# ------------------------------------------------------------------------ leftover children
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("mode", "task"),
    [
        ("process", "start_sleeper"),
        ("process", "fork_sleeper"),
        # A local cluster: the children of a worker that died mid-run go too.
        pytest.param("dask", "start_sleeper_or_exit", marks=pytest.mark.dask),
    ],
)
def test_leftover_children_end_with_the_run(tmp_path: Path, mode: str, task: str) -> None:
    """A task's `sleep 100` (Popen or fork) dies with the run, or with its worker when that
    dies; `crunch | cat` ends with crunch."""
    proc = subprocess.Popen(
        crunch_cmd(
            "process",
            "--jsonl",
            str(jsonl(tmp_path, 4)),
            "--task",
            f"edge_tasks:{task}",
            "-j",
            "2",
            "--mode",
            mode,
            "--chunk-size",
            "1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        start_new_session=True,
    )
    try:
        # communicate() reads both pipes to their end: it returns only once no process holds
        # them open, as `| cat` would.
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    records = [orjson.loads(line) for line in out.splitlines()]
    assert len(records) == 4
    crashed = [r["item"] for r in records if not r["ok"]]
    assert crashed == ([2] if task.endswith("_or_exit") else []), records  # the line of 1
    assert proc.returncode == (1 if crashed else 0), err.decode()
    children = [r["value"] for r in records if r["ok"]]
    wait_gone(lambda: [pid for pid in children if _alive(pid)], "task children")
    wait_gone(lambda: processes_with_session(proc.pid), "processes of the run")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(90)
def test_leftover_children_end_when_crunch_is_killed(tmp_path: Path) -> None:
    """kill -9 of crunch: its workers go, and with them what their tasks left running."""
    proc = subprocess.Popen(
        crunch_cmd(
            "process",
            "--jsonl",
            str(jsonl(tmp_path, 2)),
            "--task",
            "edge_tasks:start_sleeper_and_hang",
            "-j",
            "1",
            "-o",
            str(tmp_path / "out.jsonl"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not [p for p in descendants(proc.pid) if _cmdline(p).startswith(b"sleep")]:
        assert time.monotonic() < deadline, "no sleeper started"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    wait_gone(lambda: processes_with_session(proc.pid), "processes of the run")


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
