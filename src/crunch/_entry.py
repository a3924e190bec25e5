"""The ``crunch`` executable (and ``python -m crunch``): its first steps, then the Click command.

Before anything heavy is imported:

1. SIGINT, SIGTERM and SIGHUP end crunch quietly, with the status the README gives (130, or
   143), until a run starts: never a traceback or click's "Aborted!", and the ``-o`` file is
   not touched. A run installs its own handlers (grace, then the summary) in their place.
2. Closed standard descriptors are opened on ``/dev/null`` (see ``_streams``), so a command
   started with ``>&-`` or ``2>&-`` still works, or says what it cannot do.

A stop signal raises ``EarlyStop`` where the program is, except inside an import: an exception
raised into the initialisation of a compiled module can crash the interpreter (it did, in
orjson's), so there crunch exits at once instead (nothing is open yet that needs closing).
Once the command is over, a stop signal during the interpreter's teardown exits at once too, and
that teardown skips its garbage collections (``gc.freeze``), which cost more than a one-file run.
"""

from __future__ import annotations

import gc
import os
import sys

# The C module under ``signal`` (a private one; tests/test_pool_reach.py checks it): it is
# loaded already, while ``signal`` itself (with enum) costs milliseconds in which a Ctrl-C
# would still end in a KeyboardInterrupt traceback.
try:
    import _signal  # ty: ignore[import-not-found] - no stub; the same functions as signal's
except ImportError:  # pragma: no cover - a Python without it: the same, a little later
    import signal as _signal

TYPE_CHECKING = False  # typing costs milliseconds too
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType


class EarlyStop(BaseException):
    """A stop signal outside a run: crunch exits with ``status``, saying nothing.

    A ``BaseException``, so that no ``except Exception`` on the way can swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = 130 if signum == _signal.SIGINT else 143  # as crunch._exceptions.stop_status


def _early_stop(signum: int, frame: FrameType | None) -> None:
    if _inside_import(frame):
        _exit_now(signum, frame)
    raise EarlyStop(signum)


def _inside_import(frame: FrameType | None) -> bool:
    # The import system's frames are CPython's frozen importlib (tests/test_pool_reach.py).
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    os._exit(EarlyStop(signum).status)


def _install(handler: Callable[[int, FrameType | None], None]) -> None:
    for signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(signum, handler)


def main() -> None:
    _install(_early_stop)
    try:
        from crunch import _streams

        _streams.guard_standard_fds()
        from crunch._cli import main as command

        command()
    except EarlyStop as stop:
        sys.exit(stop.status)
    finally:
        # The command is over and its output complete; what is left is the interpreter's
        # teardown. A stop signal now ends it at once, still with the stop's status.
        _install(_exit_now)
        # The teardown's garbage collections would walk every object of every module loaded,
        # several times over (most of a one-file run's exit); what the process holds is
        # given back when it ends, so they are spared: nothing created until now is collected.
        gc.freeze()
