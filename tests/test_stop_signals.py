"""Stop signals at every moment of a run, to crunch alone or to its whole process group.

One test per case of ``hostile.STOPS`` and mode, through the real command in a session of its
own. What each moment must give (README, "Exit status" and "What crunch guarantees"):

- ``start-up`` (the task module is still being imported): crunch ends at once with 130 or
  143, says nothing (no traceback, no "Aborted!", no summary) and leaves the ``-o`` file as
  it was.
- ``first-half-second`` (0.2 to 0.5 s after an ordinary start): the same, or, if the run had
  begun, a stopped run whose ``-o`` file holds this run's whole records.
- ``in-flight`` (items of one second are running): the items in flight finish within the
  grace period and are recorded ok; nothing is recorded ``crash``; the rest is *not run*;
  the summary says which signal stopped the run.
- ``hung`` (items that never return, ``--grace 1``): the signal is acted on at once, also when
  it reaches a thread other than the main one while that waits for results; the items are
  stopped after the grace period, never recorded, counted as not run; crunch exits soon
  after, in every mode.
- ``no-input`` (reading paths from a pipe where nothing comes): crunch stops at once.
- ``crash-storm`` (every item kills its worker): the signal is acted on within a second or
  two while the engine replaces pools.

In every case: the exit status is 130 for SIGINT and 143 for SIGTERM and SIGHUP, the records
file is whole JSON Lines, and no process of the run is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import crunch_cmd, env, processes_with_session, read_records
from hostile import STOPS, Stop


def stop_status(signum: int) -> int:
    """The README's exit statuses: 130 after SIGINT, 143 after SIGTERM or SIGHUP."""
    return 130 if signum == signal.SIGINT else 143


CASES = [
    pytest.param(case, mode, id=f"{case.id}-{mode}", marks=[pytest.mark.dask] * (mode == "dask"))
    for case in STOPS
    for mode in case.modes
]
PREVIOUS = b'{"item":"earlier","ok":true,"value":1,"seconds":0.1,"attempts":1}\n'


class Crunch:
    """The command in a session of its own; its standard error read as it comes."""

    def __init__(self, args: list[str], *, stdin: bool = False, **extra: str) -> None:
        self.proc = subprocess.Popen(
            crunch_cmd(*args),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env(**extra),
            start_new_session=True,
        )
        self.began = time.monotonic()
        self.err: list[str] = []
        self.out = b""
        self.readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.decode(errors="replace"))

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"no {what}: exit {self.proc.poll()}\n{self.stderr}")
            time.sleep(0.02)

    def send(self, case: Stop) -> float:
        pid = self.proc.pid
        if case.to == "group":
            os.killpg(pid, case.signum)
        elif case.to == "crunch":
            os.kill(pid, case.signum)
        else:
            # kill() with the id of one of its threads: the signal is still the process's, but
            # that thread gets the first chance to take it (Linux); the main thread does not.
            threads = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
            assert threads, "crunch runs no thread besides its main one"
            os.kill(threads[0], case.signum)
        return time.monotonic()

    def finish(self, within: float) -> float:
        """Wait for the exit (at most ``within`` seconds); returns when it happened."""
        try:
            self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
            message = f"still running {within} s after the signal:\n{self.stderr}"
            raise AssertionError(message) from None
        ended = time.monotonic()
        for reader in self.readers:
            reader.join(10)
        return ended


def marks(directory: Path) -> list[str]:
    """The items that started (edge_tasks marks each as it starts)."""
    return [name.split("-")[0] for name in os.listdir(directory)]


def not_run(crunch: Crunch) -> int:
    """The summary's count of items not run."""
    found = re.search(r"not run (\d+)", crunch.stderr)
    assert found, crunch.stderr
    return int(found.group(1))


def jsonl(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def common(mode: str, out: Path, *more: str) -> list[str]:
    return ["--mode", mode, "--workers", "2", "-o", str(out), "--log-level", "info", *more]


def check_stopped(crunch: Crunch, case: Stop, out: Path) -> list[dict]:
    """What every case must give: the status, whole records, nothing left running."""
    stderr = crunch.stderr
    assert crunch.proc.returncode == stop_status(case.signum), stderr
    assert "Traceback" not in stderr
    assert "Aborted" not in stderr
    assert crunch.out == b""  # the records went to -o
    deadline = time.monotonic() + 10
    while processes_with_session(crunch.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with_session(crunch.proc.pid), "a process of the run survives"
    return read_records(out)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("case", "mode"), CASES)
def test_stop_signal(tmp_path: Path, case: Stop, mode: str) -> None:
    out = tmp_path / "out.jsonl"
    marked = tmp_path / "marks"
    marked.mkdir()
    name = signal.Signals(case.signum).name

    if case.moment == "start-up":
        out.write_bytes(PREVIOUS)
        args = ["process", "--jsonl", str(jsonl(tmp_path, 5)), "--task", "edge_tasks:square"]
        crunch = Crunch([*args, *common(mode, out)], EDGE_TASKS_IMPORT_SECONDS="30")
        time.sleep(1.0)
        sent = crunch.send(case)
        assert crunch.finish(within=10) - sent < 5
        check_stopped(crunch, case, out)
        assert out.read_bytes() == PREVIOUS, "the -o file was touched"
        assert "items in" not in crunch.stderr  # no summary: no run started
        return

    if case.moment == "first-half-second":
        # At any moment of an ordinary start: still importing, or the run just begun.
        args = ["process", "--jsonl", str(jsonl(tmp_path, 5000)), "--task", "edge_tasks:nap"]
        for delay in (0.2, 0.3, 0.4, 0.5):  # earlier, Python itself may still be starting
            out.write_bytes(PREVIOUS)
            crunch = Crunch([*args, *common(mode, out, "--grace", "0")])
            time.sleep(delay)
            crunch.send(case)
            crunch.finish(within=30)
            records = check_stopped(crunch, case, out)
            if "items in" in crunch.stderr:  # the run had started: this run's records, whole
                assert all(r["item"] != "earlier" for r in records)
            else:
                assert out.read_bytes() == PREVIOUS, f"-o touched at {delay} s"
        return

    if case.moment == "in-flight":
        args = ["process", "--jsonl", str(jsonl(tmp_path, 12)), "--task", "edge_tasks:nap"]
        crunch = Crunch([*args, *common(mode, out, "--grace", "30")], EDGE_TASKS_MARKS=str(marked))
        crunch.wait_until("item started", lambda: len(marks(marked)) >= 1)
        crunch.send(case)
        crunch.finish(within=60)
        records = check_stopped(crunch, case, out)
        started = sorted(int(m) + 1 for m in marks(marked))  # --jsonl keys are line numbers
        assert all(r["ok"] for r in records), records  # never a crash: they had their grace
        assert sorted(r["item"] for r in records) == started
        assert len(records) < 12
        assert f"ok {len(records)}," in crunch.stderr
        assert not_run(crunch) >= 1  # what was read and never started (the rest never read)
        assert f"stopped by {name}" in crunch.stderr
        return

    if case.moment == "hung":
        args = ["process", "--jsonl", str(jsonl(tmp_path, 6)), "--task", "edge_tasks:hang"]
        crunch = Crunch([*args, *common(mode, out, "--grace", "1")], EDGE_TASKS_MARKS=str(marked))
        crunch.wait_until("item started", lambda: len(marks(marked)) >= 1)
        sent = crunch.send(case)
        crunch.wait_until("run.stopping", lambda: "run.stopping" in crunch.stderr, timeout=10)
        assert time.monotonic() - sent < 3, "the signal waited"
        assert crunch.finish(within=30) - sent < 15
        records = check_stopped(crunch, case, out)
        assert records == []  # a stopped item is not run, never a crash or a timeout
        assert not_run(crunch) >= len(marks(marked))
        return

    if case.moment == "no-input":
        crunch = Crunch(["process", "-", *common(mode, out)], stdin=True)
        crunch.wait_until("run.start", lambda: "run.start" in crunch.stderr)
        time.sleep(0.5)
        sent = crunch.send(case)
        assert crunch.finish(within=30) - sent < 5
        assert check_stopped(crunch, case, out) == []
        assert f"stopped by {name}" in crunch.stderr
        return

    assert case.moment == "crash-storm", case.moment
    args = ["process", "--jsonl", str(jsonl(tmp_path, 200)), "--task", "edge_tasks:exit_worker"]
    crunch = Crunch([*args, *common(mode, out, "--grace", "1")])
    crunch.wait_until("crash record", lambda: "item.failed" in crunch.stderr)
    sent = crunch.send(case)
    crunch.wait_until("run.stopping", lambda: "run.stopping" in crunch.stderr, timeout=10)
    assert time.monotonic() - sent < 3, "the signal waited for the engine"
    assert crunch.finish(within=30) - sent < 15
    records = check_stopped(crunch, case, out)
    assert records
    assert all(r["error"]["kind"] == "crash" for r in records)
