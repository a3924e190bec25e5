"""Why an item failed, as the engine carries it: ``ItemFailure``, and one constructor per cause.

An ``ItemFailure`` is built where the failure happens (in a worker, in a backend, in the
scheduler) from strings only, so nothing the task raised or returned ever has to pickle. It
becomes the public ``crunch.Failure`` of the item's record (``public``) once the scheduler
knows how many attempts the item had.

Every constructor below is the one place where its message is worded; the README's record
format describes the kinds. The stages of an item's trip, and the words each failure at a
stage carries in its message:

    pickled in the parent     "the item could not be pickled in the parent: ..."
    unpickled in the worker   "the item could not be unpickled in the worker: ..."
    run                       the task's own exception (no prefix)
    value pickled (worker)    "the value could not be pickled in the worker: ..."
    value unpickled (parent)  "the value could not be unpickled in the parent: ..."

A worker that dies at a stage other than *run* says so too ("... while the item was being
unpickled in the worker").
"""

from __future__ import annotations

import signal
import traceback as _traceback
from typing import Literal, NamedTuple

from crunch._results import Failure, FailureKind, InvalidItem
from crunch._retry import class_names

Stage = Literal["send", "load", "run", "return", "receive"]

# What a failure at each stage of an item's trip says first (``run`` is the task's own error).
STAGE_PREFIX: dict[Stage, str] = {
    "send": "the item could not be pickled in the parent",
    "load": "the item could not be unpickled in the worker",
    "run": "",
    "return": "the value could not be pickled in the worker",
    "receive": "the value could not be unpickled in the parent",
}
# How a worker death at a stage other than ``run`` is told.
STAGE_DURING: dict[Stage, str] = {
    "send": "",
    "load": "while the item was being unpickled in the worker",
    "run": "",
    "return": "while the value was being pickled in the worker",
    "receive": "",
}

# Modules whose frames start a traceback: dropped, so the traceback starts in the task.
_CRUNCH_FRAMES = frozenset(
    {
        "crunch._worker",
        "crunch._runner",
        "crunch._units",
        "crunch._combine",
        "crunch._taskspec",
        "crunch._failures",
    }
)


class ItemFailure(NamedTuple):
    """One item's failure inside the engine (see the module docstring)."""

    kind: FailureKind
    type: str
    message: str
    traceback: str = ""
    # The exception's class names along its MRO: what ``--retry-on`` matches (crunch._retry).
    names: tuple[str, ...] = ()

    def public(self, attempts: int) -> Failure:
        """The record's ``crunch.Failure``."""
        return Failure(self.kind, self.type, self.message, self.traceback, attempts)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_exception(cls, exc: BaseException, stage: Stage = "run") -> ItemFailure:
        """Kind ``error``: ``exc`` raised at ``stage`` (by default: the task raised it)."""
        try:
            message = str(exc)
        except BaseException as inner:  # noqa: BLE001 - a broken __str__ must not break us
            message = f"<str() of the exception failed: {type(inner).__name__}>"
        prefix = STAGE_PREFIX[stage]
        if prefix:
            message = f"{prefix}: {message}" if message else prefix
        names = class_names(type(exc))
        return cls("error", type(exc).__name__, message, _traceback_text(exc), names)

    @classmethod
    def unsendable_item(cls, exc: BaseException) -> ItemFailure:
        """The item could not be pickled in the parent to send it to a worker."""
        return cls.from_exception(exc, "send")

    @classmethod
    def unloadable_item(cls, exc: BaseException) -> ItemFailure:
        """The item reached its worker but could not be unpickled there."""
        return cls.from_exception(exc, "load")

    @classmethod
    def unpicklable_value(cls, exc: BaseException) -> ItemFailure:
        """The task returned, but its value could not be pickled in the worker."""
        return cls.from_exception(exc, "return")

    @classmethod
    def unloadable_value(cls, exc: BaseException) -> ItemFailure:
        """The value came back from the worker but could not be unpickled in the parent."""
        return cls.from_exception(exc, "receive")

    @classmethod
    def dask_task_failed(cls, exc: BaseException) -> ItemFailure:
        """A single-item dask task raised outside the task (its item or value, in transit)."""
        failure = cls.from_exception(exc)
        return failure._replace(message=f"the dask task failed: {failure.message}")

    @classmethod
    def unencodable_value(cls, exc: BaseException) -> ItemFailure:
        """The value reached the parent but cannot be written as JSON."""
        return cls(
            "error",
            "TypeError",
            f"the task's value is not JSON-serialisable: {exc}",
            "",
            ("TypeError",),
        )

    @classmethod
    def non_finite_value(cls, where: str) -> ItemFailure:
        """The value holds NaN or an infinity (``where``: "NaN at value['a']"): JSON has none."""
        return cls(
            "error",
            "ValueError",
            f"the task's value holds {where}, which JSON cannot represent "
            "(JSON has no NaN or infinity)",
            "",
            ("ValueError",),
        )

    @classmethod
    def invalid(cls, item: InvalidItem) -> ItemFailure:
        """An input broken before any task saw it (a malformed ``--jsonl`` line): never retried,
        since the same input would fail the same way."""
        return cls("error", item.type, item.message)

    @classmethod
    def timeout(cls, seconds: float) -> ItemFailure:
        return cls("timeout", "TimeoutError", f"item exceeded the {seconds:g} s timeout")

    @classmethod
    def crash(cls, exitcode: int | None, stage: Stage = "run") -> ItemFailure:
        """Kind ``crash``: the item's worker died with ``exitcode`` (negative: a signal)."""
        if exitcode is None:
            message = "worker process died (exit status unknown)"
        elif exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            message = f"worker killed by {name}"
            if -exitcode == signal.SIGSEGV:
                message += " (segmentation fault)"
            elif -exitcode == signal.SIGKILL:
                message += " (kill -9, or the out-of-memory killer)"
        else:
            message = f"worker exited with code {exitcode}"
        during = STAGE_DURING[stage]
        return cls("crash", "WorkerDied", f"{message} {during}" if during else message)

    @classmethod
    def repeated_crash(cls, times: int, reason: str = "") -> ItemFailure:
        """Kind ``crash``: workers kept dying while this item ran alone (``reason``: what is
        known of how, e.g. "the last: worker killed by SIGSEGV (segmentation fault)")."""
        message = f"a worker died {times} times while this item, alone, was running"
        return cls("crash", "WorkerDied", f"{message}; {reason}" if reason else message)

    @classmethod
    def worker_lost(cls, reason: str) -> ItemFailure:
        """Kind ``crash``: a cluster reported the item's worker lost (``reason`` says why)."""
        return cls("crash", "WorkerDied", reason)

    @classmethod
    def memory(cls, used: int, limit: int, stage: Stage = "run") -> ItemFailure:
        """Kind ``memory``: the item took its worker to ``used`` bytes, past the cap."""
        message = (
            f"the item took its worker to {format_size(used)} of memory, past the "
            f"--max-memory cap of {format_size(limit)}"
        )
        during = STAGE_DURING[stage]
        message = f"{message} {during}" if during else message
        return cls("memory", "MemoryError", message, "", ("MemoryError",))

    @classmethod
    def memory_refused(cls, peak: int, limit: int) -> ItemFailure:
        """Kind ``memory``: an allocation of the item was refused, far past the cap."""
        message = (
            f"an allocation of the item was refused, far past the --max-memory cap of "
            f"{format_size(limit)} (its worker held {format_size(peak)} at most)"
        )
        return cls("memory", "MemoryError", message, "", ("MemoryError",))

    @classmethod
    def dask_memory(cls, used: int | None, limit: int | None) -> ItemFailure:
        """Kind ``memory``: Dask restarted the item's worker for going past its memory limit."""
        used_text = f" at {format_size(used)}" if used else ""
        limit_text = f" of {format_size(limit)}" if limit else ""
        message = (
            f"dask restarted the item's worker{used_text} for going past its memory "
            f"limit{limit_text}"
        )
        return cls("memory", "MemoryError", message, "", ("MemoryError",))


def startup_error_text(exc: BaseException) -> str:
    """What a worker tells the parent when it cannot load the task or its ``--init`` fails."""
    return _traceback_text(exc) or f"{type(exc).__name__}: {exc}"


def format_size(size: float) -> str:
    """``314572800`` -> ``"300 MiB"``: bytes in the largest binary unit that keeps them >= 1."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value = float(size)
    unit = units[0]
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            break
        value /= 1024
    return f"{f'{value:.1f}'.removesuffix('.0')} {unit}"


def _traceback_text(exc: BaseException) -> str:
    try:
        tb = exc.__traceback__
        # Drop crunch's own frames so the traceback starts in the task.
        while tb is not None and tb.tb_frame.f_globals.get("__name__") in _CRUNCH_FRAMES:
            tb = tb.tb_next
        return "".join(_traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # noqa: BLE001 - a traceback that cannot be formatted is left out
        return ""
