"""The real command in a subprocess: what CliRunner cannot show (streams, a terminal, env)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path

import orjson
from helpers import crunch_cmd, env

DATA = Path(__file__).resolve().parent.parent / "data"


def test_stdout_is_only_records_and_stderr_the_rest(tmp_path: Path) -> None:
    """Records alone on stdout (machine-readable); summary and logs on stderr."""
    out = subprocess.run(
        crunch_cmd("process", str(DATA), "--workers", "2", "--log-level", "info"),
        capture_output=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.splitlines()
    assert len(lines) > 20
    assert all(orjson.loads(line)["ok"] for line in lines)
    assert b"run.start" in out.stderr
    assert b"items in" in out.stderr


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the command with standard error on a terminal: its exit status and what it drew."""
    primary, secondary = pty.openpty()
    # A terminal of 100 columns, as a real one reports its size.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        crunch_cmd(*args),
        stderr=secondary,
        stdout=subprocess.DEVNULL,
        env=env(),
        close_fds=True,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(primary)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_real_terminal(tmp_path: Path) -> None:
    """With stderr on a terminal the progress bar is on by default; piped, it is off."""
    status, shown = _on_a_terminal(
        "process", str(DATA), "--workers", "2", "-o", str(tmp_path / "o.jsonl")
    )
    assert status == 0
    assert "item/s" in shown
    assert "100%" in shown or "it]" in shown or "item" in shown
    piped = subprocess.run(
        crunch_cmd("process", str(DATA), "--workers", "2"),
        capture_output=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert b"item/s" not in piped.stderr


def test_no_progress_on_a_terminal_draws_no_bar(tmp_path: Path) -> None:
    """--no-progress wins over the terminal; the summary is still said."""
    (tmp_path / "a.txt").write_text("a\n")
    status, shown = _on_a_terminal(
        "process", str(tmp_path / "a.txt"), "--mode", "sync", "--no-progress",
        "-o", str(tmp_path / "o.jsonl"),
    )  # fmt: skip
    assert status == 0
    assert "item/s" not in shown
    assert "crunch: 1 item in" in shown


def test_environment_variables_reach_the_real_command(tmp_path: Path) -> None:
    """CRUNCH_WORKERS, CRUNCH_LOG_FORMAT and CRUNCH_LOG_LEVEL configure a real run."""
    out = subprocess.run(
        crunch_cmd("process", str(DATA / "text")),
        capture_output=True,
        timeout=120,
        check=False,
        env=env(CRUNCH_WORKERS="1", CRUNCH_LOG_FORMAT="json", CRUNCH_LOG_LEVEL="info"),
    )
    assert out.returncode == 0, out.stderr.decode()
    events = [orjson.loads(x) for x in out.stderr.splitlines() if x.startswith(b"{")]
    start = next(e for e in events if e["event"] == "run.start")
    assert start["workers"] == 1
