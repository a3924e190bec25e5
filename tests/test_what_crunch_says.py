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
    assert summary["skipped"] == 0
    assert summary["first_skipped"] == []
    assert summary["resumed"] is None  # no --resume


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


# A task that fails on the items whose name holds a 2 until the file "fixed" exists.
FAILS_UNTIL_FIXED = (
    "import os\n"
    "def f(item):\n"
    "    if '2' in str(item) and not os.path.exists('fixed'):\n"
    "        raise ValueError('not yet')\n"
    "    return {'n': 1}\n"
)


def _summary_event(stderr: bytes) -> dict:
    events = [orjson.loads(line) for line in stderr.splitlines()]
    (summary,) = [e for e in events if e["event"] == "run.summary"]
    return summary


def test_resume_says_what_it_found_and_did(tmp_path: Path) -> None:
    """--resume: the summary counts the inputs done before (not run again), those that failed
    before (run again) and the records of items no longer among the inputs (removed)."""
    (tmp_path / "task.py").write_text(FAILS_UNTIL_FIXED)
    (tmp_path / "t").mkdir()
    for name in ("f1", "f2", "f3", "f4"):
        (tmp_path / "t" / f"{name}.txt").write_text(f"{name}\n")
    args = ("process", "t", "--task", "task.py:f", "--mode", "sync", "-o", "out.jsonl")
    first = crunch(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr.decode()
    assert b"resumed" not in first.stderr  # no --resume, nothing said about it
    (tmp_path / "fixed").touch()
    (tmp_path / "t" / "f4.txt").unlink()  # its ok record is no longer an input's
    (tmp_path / "t" / "f5.txt").write_text("new\n")

    resumed = crunch(*args, "--resume", cwd=tmp_path)
    text = resumed.stderr.decode()
    assert resumed.returncode == 0, text
    assert "crunch: 2 items in" in text  # f2 again, and the new f5
    assert "  resumed: 2 items done before, not run again; 1 failed before, run again\n" in text
    assert "  removed 1 record of items no longer among the inputs\n" in text
    records = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert sorted(r["item"] for r in records) == ["t/f1.txt", "t/f2.txt", "t/f3.txt", "t/f5.txt"]

    again = crunch(*args, "--resume", "--log-format", "json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    summary = _summary_event(again.stderr)
    assert summary["resumed"] == {"done": 4, "rerun": 0, "removed": 0}
    assert summary["items"] == 0


def test_resume_counts_over_json_lines_in_the_json_summary(tmp_path: Path) -> None:
    """The same counts for --jsonl items (keyed by line number), in the run.summary event."""
    (tmp_path / "task.py").write_text(FAILS_UNTIL_FIXED)
    (tmp_path / "in.jsonl").write_text('"a1"\n"a2"\n"a3"\n"b3"\n')
    args = ("process", "--jsonl", "in.jsonl", "--task", "task.py:f", "--mode", "thread",
            "-j", "2", "-o", "out.jsonl", "--log-format", "json")  # fmt: skip
    first = crunch(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr.decode()
    assert _summary_event(first.stderr)["resumed"] is None
    (tmp_path / "fixed").touch()
    (tmp_path / "in.jsonl").write_text('"a1"\n"a2"\n"a3"\n')  # line 4 (ok) is gone

    resumed = crunch(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode()
    summary = _summary_event(resumed.stderr)
    assert summary["resumed"] == {"done": 2, "rerun": 1, "removed": 1}
    assert (summary["items"], summary["ok"]) == (1, 1)


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_the_walks_skips_are_in_the_summary(tmp_path: Path, log_format: str) -> None:
    """What the walk skipped is counted in the summary with the first five reasons, also when
    --log-level error hides the warnings."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("a\n")
    for i in range(6):
        os.mkfifo(tmp_path / "t" / f"fifo{i}")
    (tmp_path / "t" / "loop").symlink_to(".")
    out = crunch("process", "t", "--follow-symlinks", "--mode", "sync", "--log-level", "error",
                 "--log-format", log_format, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    assert b"input.skipped" not in out.stderr  # the warnings are below the level
    if log_format == "json":
        summary = _summary_event(out.stderr)
        assert summary["skipped"] == 7
        assert summary["first_skipped"] == [
            f"t/fifo{i}: skipped, not a regular file (FIFO, socket or device)" for i in range(5)
        ]
        return
    text = out.stderr.decode()
    lines = text.splitlines()
    at = lines.index("  skipped 7 entries of the walk (not regular files, or link loops):")
    assert lines[at + 1 : at + 7] == [
        *(f"    t/fifo{i}: skipped, not a regular file (FIFO, socket or device)" for i in range(5)),
        "    and 2 more",
    ]
