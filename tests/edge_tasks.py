"""Tasks that misbehave towards the process around them, importable by worker processes.

They write to standard output every way a program can, start child processes that outlive
them, hang, or end their worker from ``--init``. ``$EDGE_TASKS_IMPORT_SECONDS`` makes importing
this module slow (a task module that loads a model, say), so a signal can land during start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

time.sleep(float(os.environ.get("EDGE_TASKS_IMPORT_SECONDS", "0")))
if os.environ.get("EDGE_TASKS_IMPORT_PRINTS"):
    print("edge_tasks imported")  # a task module that talks at import time


def square(x: int) -> int:
    return x * x


def talk(item: object) -> str:
    """Writes to standard output through print, the file descriptor and a child process."""
    print(f"print from the task for {item}")
    sys.stdout.flush()
    os.write(1, f"os.write(1) from the task for {item}\n".encode())
    subprocess.run(["echo", f"a child process of the task for {item}"], check=True)
    return f"done {item}"


def init_talk() -> None:
    print("print from --init")
    os.write(1, b"os.write(1) from --init\n")


def init_exits() -> None:
    os._exit(4)


def _mark(item: object) -> None:
    """Note that ``item`` started, in the directory ``$EDGE_TASKS_MARKS`` when it is set."""
    marks = os.environ.get("EDGE_TASKS_MARKS")
    if marks:
        with open(os.path.join(marks, f"{item}-{os.getpid()}"), "w"):
            pass


def hang(item: object) -> object:
    _mark(item)
    time.sleep(100)
    return item


def nap(item: object) -> object:
    """One second of sleep, marked as it starts."""
    _mark(item)
    time.sleep(1.0)
    return item


def exit_worker(item: object) -> object:
    """Ends the process it runs in (a worker, in process mode) at once."""
    _mark(item)
    os._exit(3)


def sleep_then_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


def start_sleeper(item: object) -> int:
    """Starts ``sleep 100`` and returns without waiting for it (a leftover child process)."""
    return subprocess.Popen(["sleep", "100"]).pid


def start_sleeper_or_exit(item: object) -> int:
    """Starts ``sleep 100``; item 1 then ends the process it runs in (its worker)."""
    pid = subprocess.Popen(["sleep", "100"]).pid
    if item == 1:
        os._exit(3)
    return pid


def start_sleeper_and_hang(item: object) -> int:
    """Starts ``sleep 100``, then hangs itself."""
    subprocess.Popen(["sleep", "100"])
    time.sleep(100)
    return 0


def fork_sleeper(item: object) -> int:
    """Forks a copy of the worker that sleeps, holding every descriptor the worker has."""
    pid = os.fork()
    if pid == 0:
        time.sleep(100)
        os._exit(0)
    return pid
