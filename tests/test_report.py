"""``crunch report`` and the summary it shares with ``crunch process`` (README: "crunch report")."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import crunch_cmd, env


def write_inputs(root: Path, behaviours: dict[str, str]) -> Path:
    """One input file per item for ``report_tasks:act``: its name and its behaviour."""
    root.mkdir(parents=True, exist_ok=True)
    for name, behaviour in behaviours.items():
        (root / name).write_text(behaviour + "\n")
    return root


def crunch(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        crunch_cmd(*args),
        cwd=cwd,
        env=env(),
        input=stdin,
        capture_output=True,
        timeout=100,
        check=False,
    )


def test_process_summary_counts_retried_items(tmp_path: Path) -> None:
    """The end-of-run summary says how many items took more than one attempt."""
    write_inputs(tmp_path / "in", {"a.txt": "ok", "b.txt": "flaky 1", "c.txt": "flaky 9"})
    done = crunch(
        "process", "in", "--task", "report_tasks:act", "--mode", "thread", "--retries", "2",
        "--no-progress", "-o", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "  ok 2, failed 1 (error 1), retried 2, not run 0\n" in done.stderr.decode()
    assert "c.txt: error: ConnectionError: connection reset on attempt 3" in done.stderr.decode()
