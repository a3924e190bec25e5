"""Helpers for tests that drive the real command in a subprocess and inspect processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def crunch_cmd(*args: str) -> list[str]:
    """The command line of ``python -m crunch ARGS``, with this interpreter."""
    return [sys.executable, "-m", "crunch", *args]


def env(**extra: str) -> dict[str, str]:
    """An environment where workers can import the tests' task modules."""
    base = dict(os.environ)
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), base.get("PYTHONPATH", "")]))
    base.update(extra)
    return base


def start(*args: str, cwd: Path | None = None, **extra: str) -> subprocess.Popen[bytes]:
    """Start the command in its own session (so a group signal reaches it and its workers)."""
    return subprocess.Popen(
        crunch_cmd(*args),
        cwd=cwd,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _proc_stats() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, session id) of every process, from /proc."""
    rows = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        rows.append((int(entry.name), fields[0], int(fields[1]), int(fields[3])))
    return rows


def processes_with_session(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (a run's workers stay in its session)."""
    return [pid for pid, state, _, session in _proc_stats() if session == sid and state != "Z"]


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for child, state, parent, _ in _proc_stats():
        if state != "Z":
            children.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def worker_pids(pid: int) -> list[int]:
    """Pids of the process-mode workers of ``pid``: the children of its forkserver."""
    pids = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in cmdline:
            pids.extend(descendants(child))
    return pids


def read_records(path: Path) -> list[dict]:
    """Every line of a records file, each of which must be whole JSON."""
    import orjson

    data = path.read_bytes() if path.exists() else b""
    assert not data or data.endswith(b"\n"), "torn last line"
    return [orjson.loads(line) for line in data.splitlines()]
