"""Standard output carries records and nothing else; closed or broken streams (README, "Output").

Through the real command in a subprocess, in every local mode: whatever a task, its ``--init``
or their child processes write to standard output lands on standard error; a reader that goes
away (``| head -1``, of stdout or stderr) ends crunch quietly with 141; ``>&-`` and ``2>&-``
are handled.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
from conftest import LOCAL_MODES
from helpers import TESTS, crunch_cmd, env, processes_with_session, read_records

DATA = TESTS.parent / "data"


def ints(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "ints.jsonl"
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def records(stdout: bytes) -> list[dict]:
    """Every line of standard output, each of which must be a record."""
    return [orjson.loads(line) for line in stdout.splitlines()]


def assert_session_gone(sid: int, timeout: float = 10.0) -> None:
    """No process of the run is left (the forkserver ends a moment after crunch does)."""
    deadline = time.monotonic() + timeout
    while processes_with_session(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with_session(sid), "a process of the run survives"


def shell(script: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``script`` run by sh with ``$@`` = the crunch command line and ``args``."""
    return subprocess.run(
        ["sh", "-c", script, "sh", *crunch_cmd(*args)],
        capture_output=True,
        env=env(),
        timeout=90,
        check=False,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [*LOCAL_MODES, pytest.param("dask", marks=pytest.mark.dask)])
def test_task_and_init_output_goes_to_stderr(tmp_path: Path, mode: str) -> None:
    """print, os.write(1), a child's output and --init's: all on stderr, records alone on stdout.

    In dask mode, on a local cluster: its worker processes start with crunch's descriptors.
    """
    items = ints(tmp_path, 6)
    out = subprocess.run(
        crunch_cmd(
            "process",
            "--jsonl",
            str(items),
            "--task",
            "edge_tasks:talk",
            "--init",
            "edge_tasks:init_talk",
            "--mode",
            mode,
            "--workers",
            "2",
        ),
        capture_output=True,
        env=env(EDGE_TASKS_IMPORT_PRINTS="1"),
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    got = records(out.stdout)
    assert sorted(r["item"] for r in got) == list(range(1, 7))
    assert all(r["ok"] for r in got)
    stderr = out.stderr.decode()
    for line in (
        "edge_tasks imported",
        "print from --init",
        "os.write(1) from --init",
        "print from the task for 3",
        "os.write(1) from the task for 3",
        "a child process of the task for 3",
    ):
        assert line in stderr


def test_reduce_value_alone_on_stdout(tmp_path: Path) -> None:
    """With --reduce, standard output is the one JSON value, whatever --init prints."""
    out = subprocess.run(
        crunch_cmd(
            "process",
            str(DATA / "text"),
            "--task",
            "wordfreq",
            "--reduce",
            "-O",
            "top=2",
            "--init",
            "edge_tasks:init_talk",
            "--workers",
            "2",
        ),
        capture_output=True,
        env=env(),
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    value = orjson.loads(out.stdout)
    assert len(value["top"]) == 2
    assert "print from --init" in out.stderr.decode()


def test_library_leaves_the_callers_stdout_alone(tmp_path: Path) -> None:
    """The library redirects nothing: a task's print reaches the calling program's stdout."""
    script = tmp_path / "lib.py"
    script.write_text(
        textwrap.dedent(
            """
            import crunch, edge_tasks
            for mode in ("process", "thread", "async", "sync"):
                batch = crunch.run(edge_tasks.talk, [mode], mode=mode, workers=1)
                assert batch.ok, batch.failed
            print("the caller's own line")
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=env(), timeout=90, check=False
    )
    assert out.returncode == 0, out.stderr.decode()
    for mode in ("process", "thread", "async", "sync"):
        assert f"print from the task for {mode}" in out.stdout.decode()
    assert "the caller's own line" in out.stdout.decode()


def test_command_called_in_process_gives_stdout_back(tmp_path: Path) -> None:
    """`crunch._cli.main` called from a program: records on stdout, and stdout is its own after."""
    script = tmp_path / "inproc.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from crunch._cli import main
            try:
                main(["process", "--jsonl", {str(ints(tmp_path, 3))!r},
                      "--task", "edge_tasks:talk", "--workers", "1"])
            except SystemExit as exit:
                assert exit.code == 0, exit.code
            print("the caller's own line", flush=True)
            os.write(1, b"and its own fd 1\\n")
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=env(), timeout=90, check=False
    )
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.splitlines()
    assert lines[-2:] == [b"the caller's own line", b"and its own fd 1"]
    assert [orjson.loads(line)["item"] for line in lines[:-2]] == [1, 2, 3]
    assert b"print from the task" in out.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_reader_going_away_ends_quietly(tmp_path: Path, mode: str) -> None:
    """`crunch process ... | head -1`: exit 141 soon after, nothing on stderr, nothing left."""
    items = ints(tmp_path, 100_000)
    proc = subprocess.Popen(
        crunch_cmd(
            "process",
            "--jsonl",
            str(items),
            "--task",
            "edge_tasks:sleep_then_square",
            "--mode",
            mode,
            "--workers",
            "2",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        start_new_session=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert orjson.loads(first)["ok"]
    proc.stdout.close()  # as head does after its line
    began = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGPIPE, err.decode()
    assert err == b""
    assert time.monotonic() - began < 30
    assert_session_gone(proc.pid)


@pytest.mark.timeout(120)
def test_stderr_reader_going_away_ends_quietly(tmp_path: Path) -> None:
    """`crunch ... -o FILE 2>&1 | head -1`: 141, and FILE holds whole records."""
    target = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        crunch_cmd(
            "process",
            "--jsonl",
            str(ints(tmp_path, 100_000)),
            "--task",
            "faults:square_or_fail",  # a warning on stderr for every tenth item
            "--workers",
            "2",
            "-o",
            str(target),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env(),
        start_new_session=True,
    )
    assert proc.stderr is not None
    assert b"item.failed" in proc.stderr.readline()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert_session_gone(proc.pid)
    got = read_records(target)  # whole lines only
    assert len({r["item"] for r in got}) == len(got)


def test_stdout_closed_without_output_file_is_a_usage_error(tmp_path: Path) -> None:
    """`>&-` and no -o: there is nowhere for the records; say so, exit 2, run nothing."""
    out = shell('exec "$@" >&-', "process", str(DATA / "text"))
    assert out.returncode == 2
    message = out.stderr.decode()
    assert "standard output is closed" in message
    assert "Traceback" not in message
    reduce_ = shell(
        'exec "$@" >&-', "process", str(DATA / "text"), "--task", "wordfreq", "--reduce"
    )
    assert reduce_.returncode == 2
    assert "standard output is closed: --reduce" in reduce_.stderr.decode()


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_closed_streams_with_output_file(tmp_path: Path, mode: str, closed: str) -> None:
    """With -o, closed stdout and/or stderr change nothing: every record, and only records."""
    target = tmp_path / "out.jsonl"
    items = ints(tmp_path, 8)
    out = shell(
        f'exec "$@" {closed}',
        "process",
        "--jsonl",
        str(items),
        "--task",
        "edge_tasks:talk",
        "--init",
        "edge_tasks:init_talk",
        "--mode",
        mode,
        "--workers",
        "2",
        "-o",
        str(target),
    )
    assert out.returncode == 0, out.stderr.decode()
    got = read_records(target)
    assert sorted(r["item"] for r in got) == list(range(1, 9))
    assert all(r["ok"] for r in got), got


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_stderr_closed_records_still_on_stdout(tmp_path: Path, mode: str) -> None:
    """`2>&-` without -o: the records still reach stdout, and a chatty task still succeeds."""
    out = shell(
        'exec "$@" 2>&-',
        "process",
        "--jsonl",
        str(ints(tmp_path, 5)),
        "--task",
        "edge_tasks:talk",
        "--mode",
        mode,
        "--workers",
        "2",
    )
    assert out.returncode == 0
    got = records(out.stdout)
    assert sorted(r["item"] for r in got) == list(range(1, 6))
    assert all(r["ok"] for r in got), got


def test_closed_stdin_with_dash_reads_no_paths(tmp_path: Path) -> None:
    """`<&-` with '-': standard input holds no paths; nothing runs, exit 0, no traceback."""
    out = shell('exec "$@" <&-', "process", "-")
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b""
    assert "Traceback" not in out.stderr.decode()
