"""What the command says besides the records: the summary (text, or a JSON event), the progress
bar written to a file, the workers it reports, and the words of its messages. Real
subprocesses, as a user or a log collector meets them (README, "The command": Output)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest
from helpers import crunch_cmd, env

FAILING = "def f(path):\n    raise ValueError('never works')\n"


def crunch(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        crunch_cmd(*args), cwd=cwd, env=env(), capture_output=True, timeout=120, check=False
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for i in range(30):
        (tmp_path / f"f{i:02}.txt").write_text(f"line {i}\n")
    (tmp_path / "failing.py").write_text(FAILING)
    return tmp_path


def test_json_logs_make_the_summary_a_json_event(work: Path) -> None:
    """With --log-format json every line on standard error is a JSON event, the summary too."""
    out = crunch("process", "f00.txt", "f01.txt", "--task", "failing.py:f", "--log-format",
                 "json", cwd=work)  # fmt: skip
    assert out.returncode == 1
    events = [orjson.loads(line) for line in out.stderr.splitlines()]  # each line is JSON
    (summary,) = [e for e in events if e["event"] == "run.summary"]
    assert summary["items"] == 2
    assert summary["ok"] == 0
    assert summary["failed_by_kind"] == {"error": 2}
    assert summary["not_run"] == 0
    assert summary["workers"] == 2
    assert summary["run_id"] == events[0]["run_id"]
    assert {f["item"] for f in summary["first_failures"]} == {"f00.txt", "f01.txt"}
    assert summary["first_failures"][0]["message"] == "never works"


def test_json_logs_make_a_run_error_a_json_event(work: Path) -> None:
    """An error that ends a run is a JSON event as well (here: records that cannot be written)."""
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("no /dev/full here")
    out = crunch("process", "f00.txt", "-o", "/dev/full", "--log-format", "json", cwd=work)
    assert out.returncode == 2
    events = [orjson.loads(line) for line in out.stderr.splitlines()]
    (error,) = [e for e in events if e["event"] == "run.error"]
    assert error["exit_code"] == 2
    assert error["message"].startswith("writing the records to /dev/full failed")


def test_progress_bar_in_a_file_shows_the_final_state_once(work: Path) -> None:
    """--progress with standard error in a file: one line per redraw, the final one once, even
    with log lines printed above the bar."""
    out = crunch("process", ".", "--glob", "*.txt", "--task", "failing.py:f", "--progress",
                 "-o", "out.jsonl", cwd=work)  # fmt: skip
    text = out.stderr.decode()
    assert out.returncode == 1
    assert text.count("30/30 ") == 1, text
    assert "\r" not in text
    bar_lines = [line for line in text.splitlines() if "item/s" in line]
    assert len(bar_lines) == len(set(bar_lines))  # no redraw repeats the one before


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_summary_counts_the_workers_that_ran(work: Path, mode: str) -> None:
    """-j 64 with two items starts two workers, and the summary says two, not 64."""
    two = crunch("process", "f00.txt", "f01.txt", "-j", "64", "--mode", mode, cwd=work)
    assert two.returncode == 0
    assert f"mode {mode}, 2 workers\n" in two.stderr.decode()
    one = crunch("process", "f00.txt", "-j", "64", "--mode", mode, cwd=work)
    assert f"mode {mode}, 1 worker\n" in one.stderr.decode()


def test_key_messages_say_what_the_key_is(work: Path) -> None:
    """A --key value that cannot be a key is named as a person would name it."""
    lines = ['{"id": {"a": 1}}', '{"id": 123456789012345678901234567890}', '{"id": 1e20}']
    (work / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = crunch("process", "--jsonl", "in.jsonl", "--key", "id", "--task", "faults:square",
                 cwd=work)  # fmt: skip
    messages = {
        r["item"]: r["error"]["message"] for r in map(orjson.loads, out.stdout.splitlines())
    }
    assert messages[1] == "line 1: field 'id' is an object; a key must be a string or an integer"
    assert messages[2].startswith(
        "line 2: field 'id' is an integer too large for 64 bits (write it as a string)"
    )
    assert messages[3].startswith("line 3: field 'id' is a float;")
