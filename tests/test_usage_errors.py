"""A user's mistakes, and what the command says about them: one line naming the problem, exit
status 2, no traceback, nothing written to standard output (README, "The command": exit status).

``MISTAKES`` is the table: the command line (with the files of ``FILES`` in the working
directory) and words the message must hold. A new case is one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from helpers import crunch_cmd, env, read_records

from crunch._cli import main

FILES = {
    "a.txt": "one two\n",
    "bad_syntax.py": "def f(x):\n    return (\n",
    "bad_import.py": "raise RuntimeError('boom at import')\n",
    "exits_at_import.py": "import sys\nsys.exit(3)\n",
    "good.py": "def f(x):\n    return 1\n",
    "failing.py": "def f(path):\n    raise ValueError('never works')\n",
    "empty/.keep": "",
}

MISTAKES = [
    # -o where no file can be written
    ("process a.txt -o /nonexistent/dir/x", "-o /nonexistent/dir/x: no such directory"),
    ("process a.txt -o a.txt/x", "-o a.txt/x: 'a.txt' is not a directory"),
    ("process a.txt -o empty", "is a directory"),
    # a task or --init whose module cannot be imported, or raises while imported
    (
        "process a.txt --task bad_syntax:f",
        "importing module 'bad_syntax' failed: SyntaxError: "
        "'(' was never closed (bad_syntax.py, line 2)",
    ),
    ("process a.txt --task bad_syntax.py:f", "'bad_syntax.py:f': loading"),
    ("process a.txt --task bad_import:f", "RuntimeError: boom at import (bad_import.py, line 1)"),
    (
        "process a.txt --task bad_import.py:f",
        "RuntimeError: boom at import (bad_import.py, line 1)",
    ),
    (
        "process a.txt --task exits_at_import:f",
        "failed: SystemExit: 3 (exits_at_import.py, line 2)",
    ),
    ("process a.txt --init bad_import:f", "--init 'bad_import:f': importing module 'bad_import'"),
    ("process a.txt --init bad_syntax.py:f", "--init 'bad_syntax.py:f': loading"),
    ("process a.txt --task no_such_module:f", "cannot import module 'no_such_module'"),
    ("process a.txt --task good:nope", "module 'good' has no 'nope'"),
    ("process a.txt --task wordfrq", "unknown task 'wordfrq' (did you mean 'wordfreq'?). Known"),
    # --timeout: a finite number of seconds, from 0.01 to 1e6
    ("process a.txt --timeout inf", "--timeout: must be a finite number of seconds"),
    ("process a.txt --timeout nan", "--timeout: must be a finite number of seconds"),
    ("process a.txt --timeout 1e10", "--timeout: must be at most 1,000,000 seconds"),
    ("process a.txt --timeout 1e-6", "--timeout: must be at least 0.01 seconds"),
    ("process a.txt --timeout 0", "--timeout: must be at least 0.01 seconds"),
    # --retry-on: real exception classes, never a validation error
    ("process a.txt --retry-on NotAnException", "'NotAnException' is not a builtin exception"),
    ("process a.txt --retry-on ValueError", "ValueError is never retried"),
    ("process a.txt --retry-on json.JSONDecodeError", "never retried (it is a ValueError)"),
    ("process a.txt --retry-on no_such_module.Error", "cannot import module 'no_such_module'"),
    # crunch bench and crunch gen
    ("bench empty", "no input files under empty\nTry 'crunch bench --help'"),
    ("bench a.txt --plot /nonexistent/x.png", "--plot /nonexistent/x.png: no such directory"),
    ("gen /proc/nope", "/proc/nope: No such file or directory"),
    ("gen a.txt/sub", "a.txt/sub: Not a directory"),
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("bad_syntax", "bad_import", "exits_at_import", "good"):
        sys.modules.pop(name, None)
    return tmp_path


@pytest.mark.parametrize(("command", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_clear_line_and_exit_2(work: Path, command: str, message: str) -> None:
    result = CliRunner().invoke(main, command.split())
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # click's own checks (a directory for a file) say "Error:", crunch's "crunch: error:"
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith(("crunch:", "Error:"))
    ]
    assert len(error_lines) == 1, result.stderr


def crunch(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        crunch_cmd(*args), cwd=cwd, env=env(**extra), capture_output=True, timeout=120, check=False
    )


@pytest.mark.parametrize("target", ["/dev/full", "/proc/version"])
def test_an_output_that_refuses_writes_is_exit_2(work: Path, target: str) -> None:
    """-o naming a device that fails every write: a one-line message, exit 2; the same for
    standard output redirected there."""
    if not os.access(target, os.W_OK):
        pytest.skip(f"{target} cannot be opened for writing here")
    out = crunch("process", "a.txt", "-o", target, cwd=work)
    assert out.returncode == 2, out.stderr.decode()
    assert f"crunch: error: writing the records to {target} failed" in out.stderr.decode()
    assert b"Traceback" not in out.stderr
    with open(target, "wb") as device:
        redirected = subprocess.run(
            crunch_cmd("process", "a.txt"),
            cwd=work,
            env=env(),
            stdout=device,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    assert redirected.returncode == 2
    assert b"writing the records to standard output failed" in redirected.stderr
    assert b"Traceback" not in redirected.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 64 KiB file system, mounted for the test (needs root; skipped where not allowed)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_disk_that_fills_mid_run_keeps_the_records_whole(tmp_path: Path, tiny_disk: Path) -> None:
    """The disk fills after some hundreds of records: the file holds only whole records, the
    message says how many and why, exit 2; once there is room, --resume runs exactly the rest."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(800):
        (inputs / f"f{i:04}.txt").write_text(f"line {i}\n")
    out = tiny_disk / "out.jsonl"
    first = crunch("process", str(inputs), "-o", str(out), "--workers", "2", cwd=tmp_path)
    message = first.stderr.decode()
    assert first.returncode == 2, message
    written = read_records(out)  # whole lines only, each a record
    assert 0 < len(written) < 800
    assert f"No space left on device; the {len(written)} records written before are whole" in (
        message
    )
    assert "Traceback" not in message
    assert f"not run {800 - len(written)}" in message
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_disk)], check=True)
    again = crunch("process", str(inputs), "-o", str(out), "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    keys = [r["item"] for r in read_records(out)]
    assert sorted(keys) == sorted(str(p) for p in inputs.iterdir())  # one record per item


def test_a_broken_plugin_is_named_and_the_others_still_work(work: Path) -> None:
    """A plugin whose entry point fails to load: `crunch tasks` lists every other task and names
    it (exit 2); `--task` naming it is a one-line usage error; other tasks run as usual."""
    plugins = work / "plugins"
    info = plugins / "brokenplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[crunch.tasks]\nmissing = no_such_plugin_module:TASK\nexploding = explodes:TASK\n"
    )
    (plugins / "explodes.py").write_text("raise RuntimeError('plugin boom')\n")
    path = os.pathsep.join([str(plugins), env()["PYTHONPATH"]])
    listed = crunch("tasks", cwd=work, PYTHONPATH=path)
    assert listed.returncode == 2
    assert b"stats" in listed.stdout
    assert b"wordfreq" in listed.stdout
    errors = listed.stderr.decode().splitlines()
    assert len(errors) == 2, errors
    assert "task 'exploding': its plugin (entry point 'explodes:TASK' of 'brokenplug')" in errors[0]
    assert "RuntimeError: plugin boom (explodes.py, line 1)" in errors[0]
    assert "task 'missing'" in errors[1]
    assert "No module named 'no_such_plugin_module'" in errors[1]
    chosen = crunch("process", "a.txt", "--task", "exploding", cwd=work, PYTHONPATH=path)
    assert chosen.returncode == 2
    assert chosen.stderr.decode().startswith("crunch: error: task 'exploding': its plugin")
    assert b"Traceback" not in chosen.stderr
    other = crunch("process", "a.txt", "--task", "stats", cwd=work, PYTHONPATH=path)
    assert other.returncode == 0, other.stderr.decode()
    assert orjson.loads(other.stdout)["value"]["words"] == 2


def test_bench_names_no_fastest_mode_when_every_item_failed(work: Path) -> None:
    """Failing fast is no speed: with every item failed, no mode is named fastest; exit 1."""
    out = crunch("bench", "a.txt", "--task", "failing.py:f", "-j", "1", "--sample", "1", cwd=work)
    assert out.returncode == 1, out.stderr.decode()
    last = out.stdout.decode().splitlines()[-1]
    assert (
        last == "fastest: none (every item failed in every mode; crunch process on them shows why)"
    )


def test_bench_plot_that_cannot_be_written_is_exit_2(work: Path) -> None:
    """A --plot file that opens but cannot be written fails in one line after the table."""
    if not os.access("/proc/version", os.W_OK):
        pytest.skip("/proc/version cannot be opened for writing here")
    out = crunch("bench", "a.txt", "--plot", "/proc/version", "-j", "1", "--sample", "1", cwd=work)
    assert out.returncode == 2
    assert (
        out.stderr.decode()
        .strip()
        .endswith("crunch: error: --plot /proc/version: Input/output error")
    )
