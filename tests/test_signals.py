"""Signals and kills of the crunch process itself, in real subprocesses.

What the README promises under "What crunch guarantees": nothing is lost, clean exits.

Each test starts `python -m crunch process` in its own session, interrupts it, then checks the
exit status, that the records file is whole JSON Lines, that no process of the run survives,
and that `--resume` completes the set with exactly one record per item.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import processes_with_session, read_records, start, worker_pids

ITEMS = 300


def make_items(tmp_path: Path, seconds: float, count: int = ITEMS) -> Path:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f'{{"n": {i}, "s": {seconds}}}\n' for i in range(count)))
    return source


def wait_for_records(path: Path, at_least: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} records in {path} after {timeout} s")


def wait_for_workers(pid: int, count: int, timeout: float = 60.0) -> None:
    """Until ``pid`` has ``count`` process-mode workers (start-up is slow on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while len(worker_pids(pid)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} workers after {timeout} s"
        time.sleep(0.05)


def assert_session_gone(sid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes_with_session(sid):
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the run survive: {processes_with_session(sid)}")


def resume_and_check(
    tmp_path: Path, source: Path, out: Path, count: int = ITEMS, before: list | None = None
) -> None:
    earlier = {r["item"]: r for r in (read_records(out) if before is None else before) if r["ok"]}
    proc = start(
        "process",
        "--jsonl",
        str(source),
        "--key",
        "n",
        "--task",
        "faults:sleep_item",
        "-o",
        str(out),
        "--resume",
        "--workers",
        "2",
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    final = read_records(out)
    keys = [r["item"] for r in final]
    assert sorted(keys) == list(range(count)), "not exactly one record per item"
    # Nothing already done was redone: the earlier ok records are still there, unchanged.
    now = {r["item"]: r for r in final}
    assert all(now[k] == r for k, r in earlier.items())


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_gracefully_then_resume_completes(
    tmp_path: Path, signum: int, status: int
) -> None:
    """SIGINT/SIGTERM: in-flight items finish, exit 130/143, no worker left, resume completes."""
    source = make_items(tmp_path, 0.02)
    out = tmp_path / "out.jsonl"
    proc = start(
        "process",
        "--jsonl",
        str(source),
        "--key",
        "n",
        "--task",
        "faults:sleep_item",
        "-o",
        str(out),
        "--workers",
        "2",
    )
    wait_for_records(out, 20)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C: the whole process group
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    stderr = err.decode()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "not run" in stderr
    assert_session_gone(proc.pid)
    records = read_records(out)
    assert 0 < len(records) < ITEMS
    assert len({r["item"] for r in records}) == len(records)
    resume_and_check(tmp_path, source, out)


@pytest.mark.timeout(60)
def test_second_sigint_stops_at_once(tmp_path: Path) -> None:
    """A second Ctrl-C does not wait for the grace period: it kills the workers now."""
    source = make_items(tmp_path, 20, count=4)
    out = tmp_path / "out.jsonl"
    proc = start(
        "process",
        "--jsonl",
        str(source),
        "--key",
        "n",
        "--task",
        "faults:sleep_item",
        "-o",
        str(out),
        "--workers",
        "2",
        "--grace",
        "60",
    )
    wait_for_workers(proc.pid, 2)
    time.sleep(1.0)  # let the workers start their 20 s items
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    began = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - began < 10
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert_session_gone(proc.pid)
    assert read_records(out) == []


@pytest.mark.timeout(120)
def test_sigkill_of_crunch_loses_no_flushed_record(tmp_path: Path) -> None:
    """kill -9 of crunch itself: its workers die too, and --resume keeps every flushed record."""
    source = make_items(tmp_path, 0.02)
    out = tmp_path / "out.jsonl"
    proc = start(
        "process",
        "--jsonl",
        str(source),
        "--key",
        "n",
        "--task",
        "faults:sleep_item",
        "-o",
        str(out),
        "--workers",
        "2",
    )
    wait_for_records(out, 30)
    proc.kill()
    proc.communicate(timeout=30)
    assert_session_gone(proc.pid)
    data = out.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    out.write_bytes(whole)
    flushed = read_records(out)
    assert flushed
    out.write_bytes(whole + b'{"item": 9999, "ok": tr')  # and a torn line, as a kill can leave
    resume_and_check(tmp_path, source, out, before=flushed)
