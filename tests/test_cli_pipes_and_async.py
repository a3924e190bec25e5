"""The command on inputs that only it can read (pipes, its own descriptors, standard input) and
with ``async def`` tasks, in real subprocesses and in every local mode (README, "The command")."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import orjson
import pytest
from conftest import LOCAL_MODES
from helpers import crunch_cmd, env

ASYNC_TASKS = """\
import asyncio


async def asleep(path):
    await asyncio.sleep(0.01)
    return path.read_text().upper()


async def ainit():
    pass
"""

WHERE = """\
def where(path):
    return [str(path), path.read_text()]
"""


def run(*args: str, cwd: Path, stdin: bytes | None = None, pass_fds: tuple[int, ...] = ()):
    return subprocess.run(
        crunch_cmd(*args),
        cwd=cwd,
        env=env(PYTHONPATH=os.pathsep.join([str(cwd), env()["PYTHONPATH"]])),
        input=stdin,
        capture_output=True,
        pass_fds=pass_fds,
        timeout=120,
        check=False,
    )


def records(out: subprocess.CompletedProcess[bytes]) -> list[dict]:
    return [orjson.loads(line) for line in out.stdout.splitlines()]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "atasks.py").write_text(ASYNC_TASKS)
    (tmp_path / "where.py").write_text(WHERE)
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "b.txt").write_text("two\n")
    return tmp_path


@pytest.mark.parametrize("spec", ["atasks.py:asleep", "atasks:asleep"])
def test_async_def_task_from_a_file_or_a_module_runs_in_async_mode(work: Path, spec: str) -> None:
    """`--task file.py:f` and `--task module:f` for an async def f are awaited in async mode."""
    out = run("process", "a.txt", "b.txt", "--task", spec, "--mode", "async", cwd=work)
    assert out.returncode == 0, out.stderr.decode()
    assert {r["item"]: r["value"] for r in records(out)} == {"a.txt": "ONE\n", "b.txt": "TWO\n"}


@pytest.mark.parametrize("mode", ["sync", "thread", "process", "dask"])
def test_async_def_task_in_another_mode_is_a_usage_error(work: Path, mode: str) -> None:
    """Outside async mode an async def task is refused before any item runs: exit 2."""
    out = run("process", "a.txt", "--task", "atasks.py:asleep", "--mode", mode, cwd=work)
    assert out.returncode == 2
    assert out.stdout == b""
    message = out.stderr.decode()
    assert "'atasks.py:asleep' is an async def function: run it with --mode async" in message
    assert "Traceback" not in message


def test_async_def_init_is_a_usage_error(work: Path) -> None:
    """--init runs once per worker as a plain call: an async def --init is refused."""
    args = ("process", "a.txt", "--mode", "async", "--task", "atasks:asleep")
    out = run(*args, "--init", "atasks:ainit", cwd=work)
    assert out.returncode == 2
    assert "--init 'atasks:ainit' is an async def function" in out.stderr.decode()


def _pipe_with(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` and is then closed for writing."""
    read, write = os.pipe()
    threading.Thread(target=lambda: (os.write(write, data), os.close(write)), daemon=True).start()
    return read


@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_process_substitution_is_read_in_every_mode(work: Path, mode: str) -> None:
    """`crunch process <(cmd)` names /dev/fd/N of crunch's own process: the task gets a copy it
    can open (workers are other processes), the key stays /dev/fd/N, the copy is removed."""
    data = b"abc\n" * 1000
    fd = _pipe_with(data)
    try:
        name = f"/dev/fd/{fd}"
        out = run("process", name, "a.txt", "--mode", mode, cwd=work, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert out.returncode == 0, out.stderr.decode()
    got = {r["item"]: r["value"] for r in records(out)}
    assert got[name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["a.txt"]["bytes"] == 4
    copy = run("process", name, "--task", "where.py:where", "--mode", mode, cwd=work,
               pass_fds=(fd := _pipe_with(b"xyz"),))  # fmt: skip
    os.close(fd)
    (record,) = records(copy)
    path, text = record["value"]
    assert record["item"] == name
    assert text == "xyz"
    assert not Path(path).exists(), "the temporary copy outlived the run"


def test_named_fifo_and_stdin_as_paths(work: Path) -> None:
    """A named FIFO is read once into a copy; /dev/stdin fed by a pipe, too; /dev/stdin
    redirected from a file is read by its real path."""
    fifo = work / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(b"from a fifo\n")

    threading.Thread(target=feed, daemon=True).start()
    out = run("process", "fifo", "/dev/stdin", cwd=work, stdin=b"piped\n")
    assert out.returncode == 0, out.stderr.decode()
    got = {r["item"]: r["value"]["bytes"] for r in records(out)}
    assert got == {"fifo": 12, "/dev/stdin": 6}
    with open(work / "b.txt", "rb") as source:
        redirected = subprocess.run(
            crunch_cmd("process", "/dev/stdin", "--task", "where.py:where"),
            cwd=work,
            env=env(),
            stdin=source,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert redirected.returncode == 0, redirected.stderr.decode()
    (record,) = records(redirected)
    assert record["item"] == "/dev/stdin"
    assert record["value"] == [str((work / "b.txt").resolve()), "two\n"]


@pytest.mark.parametrize("mode", ["sync", "process"])
def test_jsonl_from_standard_input(work: Path, mode: str) -> None:
    """`--jsonl -` reads JSON Lines from standard input, keys and broken lines as for a file."""
    lines = b'{"id": "x", "n": 1}\n{"id": "y", "n": 2}\nnot json\n'
    out = run(
        "process", "--jsonl", "-", "--key", "id", "--task", "faults:add_offset", "--mode", mode,
        cwd=work, stdin=lines,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr.decode()
    got = {r["item"]: r for r in records(out)}
    assert set(got) == {"x", "y", 3}
    assert got["x"]["value"]["value"]["n"] == 1
    assert got["y"]["ok"]
    assert got[3]["error"]["type"] == "JSONDecodeError"
