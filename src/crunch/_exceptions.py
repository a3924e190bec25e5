"""The errors crunch raises, and why there are so few.

Item failures are *data*: an exception inside one item becomes a ``Failure`` in that item's
record and never escapes the run. What remains are problems with the run as a whole, all
rooted at ``CrunchError`` so a caller can catch crunch's own errors in one place::

    CrunchError                      exit_code 1
    +-- UsageError                   exit_code 2   bad options, unknown task, bad input paths
    |   +-- ConfigError                            RunConfig validation (lists every problem)
    |   +-- TaskNotImportableError                 process/dask workers could not import fn
    |   +-- MissingExtraError                      an optional extra (dask, plot) is not installed
    |   +-- WorkerStartError                       workers could not load the task, or --init
    |                                              failed or killed them
    |   +-- DuplicateKeyError                      two items have one key (``partial``: the
    |                                              results crunch.run collected before it)
    +-- OutputError                  exit_code 2   the records cannot be written: a bad -o path,
    |                                              a full disk (the records before stay whole)
    +-- SourceError                  exit_code 1   the input iterable itself raised mid-run
    |                                              (``partial``: the results crunch.run got)
    +-- ItemFailedError              exit_code 1   one item's Failure, raised on request
    |                                              (BatchResult.raise_for_failures groups them)
    +-- RunInterrupted               exit_code 130 SIGINT (143 for SIGTERM, SIGHUP) stopped the run

The command exits with the ``exit_code`` of the error that ended it (click's habit), so each
exit status is written once, here.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crunch._results import BatchResult


class CrunchError(Exception):
    """Root of every error crunch raises for the run as a whole."""

    exit_code = 1


class UsageError(CrunchError):
    """The run cannot start: an option, a task name or an input path is wrong."""

    exit_code = 2


class ConfigError(UsageError):
    """One or more run options are invalid; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid run configuration ({len(self.problems)} {noun}):\n{lines}")


class TaskNotImportableError(UsageError):
    """The task function cannot be sent to worker processes (a lambda, a nested function...)."""


class MissingExtraError(UsageError):
    """A feature needs an optional extra that is not installed."""


class WorkerStartError(UsageError):
    """Workers could not load the task, or its initializer failed: the run cannot go on."""


class OutputError(CrunchError):
    """The command cannot write its records (the ``-o`` path, or the disk is full)."""

    exit_code = 2


class SourceError(CrunchError):
    """The input iterable raised while crunch was reading it; results so far were delivered.

    The iterable's own exception is ``__cause__``. ``crunch.imap`` and ``amap`` yield every
    result before raising this; ``crunch.run`` attaches them, as a ``BatchResult`` of every
    item the iterable produced before it raised, as ``partial``.
    """

    partial: BatchResult | None = None


class DuplicateKeyError(UsageError):
    """Two items have the same key, which must name one item; ``key`` is that key.

    ``crunch.run`` raises it at the first repeated key (``run`` maps each key to one result),
    with the results collected before it as ``partial`` (a ``BatchResult``; the key holds its
    first item's result). A ``crunch.jsonl(path, key=...)`` source and the command's ``--key``
    raise it for a repeated key value; over a file, before any item runs.
    """

    def __init__(self, message: str, *, key: object, partial: BatchResult | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.partial = partial


class ItemFailedError(CrunchError):
    """One failed item, as an exception: ``key`` and ``failure`` say which and why."""

    def __init__(self, key: object, failure: object) -> None:
        self.key = key
        self.failure = failure
        super().__init__(f"item {key!r} failed: {failure}")


# The signals that stop a run the same way: grace for the items in flight, then the summary.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_status(signum: int) -> int:
    """The exit status after a stop signal: 130 for SIGINT, 143 for SIGTERM and SIGHUP."""
    return 130 if signum == signal.SIGINT else 128 + signal.SIGTERM


class RunInterrupted(CrunchError):  # noqa: N818 - reads as what happened to the run
    """A signal stopped the run; the records of finished items were delivered."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = stop_status(signum)
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
