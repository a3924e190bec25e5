"""Process-mode workers re-run the caller's main script only when something needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import env

SCRIPT = """import faulthandler; faulthandler.dump_traceback_later(60, exit=True)
import os, sys
with open(os.environ["MARKS"], "a") as f:
    f.write(f"{os.getpid()}\\n")  # one line each time this script is imported

import crunch, faults

class Box:
    def __init__(self, v):
        self.v = v

def local_square(x):
    return x * x

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "module-task":
        batch = crunch.run(faults.square, range(200), workers=2)
    elif mode == "main-task":
        batch = crunch.run(local_square, range(200), workers=2)
    else:  # items of a __main__ class, first seen after workers started without __main__
        batch = crunch.run(repr, [1] * 400 + [Box(1)] * 20, workers=2, chunk_size=20)
    print(len(batch.succeeded), len(batch.failed))
"""


def run_script(tmp_path: Path, mode: str) -> tuple[str, int]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    marks = tmp_path / f"marks-{mode}"
    out = subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(MARKS=str(marks)),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), len(marks.read_text().split())


def test_workers_skip_main_when_the_task_lives_elsewhere(tmp_path: Path) -> None:
    """A task from an importable module: the main script runs once, in the parent only."""
    printed, imports = run_script(tmp_path, "module-task")
    assert printed == "200 0"
    assert imports == 1


def test_workers_import_main_for_a_task_defined_there(tmp_path: Path) -> None:
    """A task defined in the main script still works: workers import the script."""
    printed, imports = run_script(tmp_path, "main-task")
    assert printed == "200 0"
    assert imports > 1


def test_items_that_need_main_restart_the_workers(tmp_path: Path) -> None:
    """Items of a __main__ class met mid-run: workers restart with __main__, none fails."""
    printed, imports = run_script(tmp_path, "main-items")
    assert printed == "420 0"
    assert imports > 1
