"""Edges of the command's inputs (README "The command", "Output"), through CliRunner or a real
subprocess: what the walk skips and says, byte order marks, output placed among the inputs,
overlapping PATHs and repeated keys."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import LOCAL_MODES

from crunch._cli import main


def invoke(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def records(data: str | bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()] if data else []


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ point: walk warnings
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_what_the_walk_skips_is_logged_and_counted(here: Path, mode: str) -> None:
    """A FIFO, a socket and a link loop are skipped with a warning each, and summed up."""
    t = here / "t"
    (t / "sub").mkdir(parents=True)
    (t / "a.txt").write_text("a\n")
    os.mkfifo(t / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(t / "sock"))
    (t / "sub" / "loop").symlink_to("..")
    try:
        result = invoke("process", "t", "--follow-symlinks", "--mode", mode, "--workers", "2")
    finally:
        sock.close()
    assert result.exit_code == 0, result.stderr
    assert [r["item"] for r in records(result.stdout)] == ["t/a.txt"]
    warnings = [line for line in result.stderr.splitlines() if "input.skipped" in line]
    assert len(warnings) == 3, result.stderr
    for name in ("t/fifo", "t/sock", "t/sub/loop"):
        assert any(name in w for w in warnings), (name, warnings)
    assert "skipped 3 entries of the walk" in result.stderr


def test_nothing_skipped_says_nothing(here: Path) -> None:
    (here / "t").mkdir()
    (here / "t" / "a.txt").write_text("a\n")
    result = invoke("process", "t", "--mode", "sync")
    assert "skipped" not in result.stderr
    assert "input.skipped" not in result.stderr


# ------------------------------------------------------------------ point: byte order mark
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("mode", ["sync", "process"])
def test_task_jsonl_skips_a_leading_bom_as_jsonl_input_does(
    here: Path, mode: str, split: bool
) -> None:
    """--task jsonl and --jsonl agree: a BOM at the start of a file is not part of line 1."""
    data = BOM + b'{"a": 1}\n' + b'{"a": 2}\n' * 40 + BOM + b'{"a": 3}\n'
    (here / "f.jsonl").write_bytes(data)
    extra = ["--split-size", "64"] if split else []
    result = invoke("process", "f.jsonl", "--task", "jsonl", "--mode", mode, *extra)
    assert result.exit_code == 0, result.stderr
    (record,) = records(result.stdout)
    # Line 42's BOM is not at the start of the file: it stays an invalid line, for both.
    assert record["value"]["records"] == 41
    assert record["value"]["invalid"] == [42]
    as_input = invoke(
        "process", "--jsonl", "f.jsonl", "--task", "faults:add_offset", "--mode", mode
    )
    bad = [r["item"] for r in records(as_input.stdout) if not r["ok"]]
    assert bad == [42]
