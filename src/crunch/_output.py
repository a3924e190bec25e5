"""What the command writes: JSON Lines records, structured logs, and the end-of-run summary.

- ``RecordWriter`` serialises each result (``crunch._jsonline``: orjson, escapes for names
  that are not UTF-8) and writes a batch with one ``write`` and a flush, so a killed run leaves
  at most its last line torn (``--resume`` repairs it). A value that is not JSON-serialisable,
  or holds NaN or an infinity, turns that item's record into a failure.
- ``setup_logging`` configures structlog on standard error (console or JSON), every event
  bound to the run's ``run_id``; with a progress bar, lines go through ``tqdm.write`` so the
  bar and the logs never garble each other. structlog is loaded by the first event logged.
- ``Summary`` counts what was written (with ``_tally.Tally``, the counting ``crunch report``
  uses too) and prints the closing report, with what the walk skipped and what ``--resume``
  found and did.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, TextIO

from crunch._exceptions import OutputError
from crunch._failures import ItemFailure
from crunch._jsonline import dumps, non_finite
from crunch._results import ItemResult
from crunch._tally import Tally, printable

if TYPE_CHECKING:
    from crunch._resume import ResumeCounts


def encode_record(record: dict[str, Any]) -> tuple[bytes, ItemFailure | None]:
    """One record line built in a worker, carefully: ``(line, None)``, or the line of the item
    failed instead and the failure that says why (the rules of ``encode``)."""
    try:
        line = dumps(record)
    except (TypeError, ValueError) as exc:
        where = non_finite(record["value"]) if record["ok"] else None
        failure = ItemFailure.non_finite_value(where) if where else None
        failure = failure or ItemFailure.unencodable_value(exc)
    else:
        if not record["ok"] or b"null" not in line:
            return line + b"\n", None
        where = non_finite(record["value"])
        if where is None:
            return line + b"\n", None
        failure = ItemFailure.non_finite_value(where)
    bad = {
        "item": record["item"],
        "ok": False,
        "error": failure.public(record["attempts"]).as_record(),
        "seconds": record["seconds"],
        "attempts": record["attempts"],
    }
    return dumps(bad) + b"\n", failure


def encode_result(result: ItemResult) -> bytes:
    """The record line of a result made in the parent (a crash, a timeout)."""
    return encode(result)[0]


def encode(result: ItemResult) -> tuple[bytes, ItemResult]:
    """The record line for ``result`` (and the result, replaced when its value won't encode).

    A value that is not JSON-serialisable, or that holds NaN or an infinity (which JSON cannot
    represent, and which orjson would write as ``null``), fails that item instead: a record
    never carries a value other than the one the task returned.
    """
    try:
        line = dumps(result.as_record())
    except (TypeError, ValueError) as exc:
        where = non_finite(result.value) if result.ok else None
        failure = ItemFailure.non_finite_value(where) if where else None
        return _failed(result, failure or ItemFailure.unencodable_value(exc))
    if result.ok and b"null" in line:  # the one case where orjson may have hidden a NaN
        where = non_finite(result.value)
        if where is not None:
            return _failed(result, ItemFailure.non_finite_value(where))
    return line + b"\n", result


def _failed(result: ItemResult, failure: ItemFailure) -> tuple[bytes, ItemResult]:
    error = failure.public(result.attempts)
    bad = ItemResult(result.key, False, None, error, result.seconds, result.attempts)
    return dumps(bad.as_record()) + b"\n", bad


def output_problem(path: str, option: str = "-o") -> str | None:
    """Why the file ``path`` (given as ``option``) cannot be written, found without touching
    it; None when it looks fine.

    Only what can be known beforehand: a missing or unwritable directory, an unwritable file. A
    file that opens but refuses writes (``/dev/full``, ``/proc/version``) fails at the first
    write, as ``OutputError``.
    """
    if os.path.isdir(path):
        return f"{option} {path}: is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else f"{option} {path}: permission denied"
    parent = os.path.dirname(path) or "."
    if not os.path.exists(parent):
        return f"{option} {path}: no such directory {parent!r}"
    if not os.path.isdir(parent):
        return f"{option} {path}: {parent!r} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{option} {path}: permission denied (cannot create a file in {parent!r})"
    return None


def open_records(path: str, *, append: bool) -> BinaryIO:
    """Open ``-o path`` for the records (unbuffered: ``RecordWriter`` writes whole batches)."""
    try:
        return open(path, "ab" if append else "wb", buffering=0)
    except OSError as exc:
        raise OutputError(f"-o {path}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class RecordWriter:
    """Writes each batch of records with as few ``write`` calls as the system allows.

    When a write fails (a full disk, a device that refuses writes), a regular file is cut back
    to the end of the last whole batch, so it holds only whole records, and ``OutputError``
    says how many: ``--resume`` then runs the rest. A broken pipe (the reader went away) is
    raised as it is.
    """

    def __init__(self, stream: BinaryIO, name: str = "standard output") -> None:
        self.stream = stream
        self.name = name
        self.records = 0
        self.fd: int | None
        try:
            stream.flush()
            self.fd = stream.fileno()
            self.regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except (AttributeError, OSError, ValueError):  # no descriptor: an in-memory stream
            self.fd = None
            self.regular = False

    def write(self, results: Iterable[ItemResult]) -> list[ItemResult]:
        """Write one line per result; returns the results as recorded."""
        lines = []
        recorded = []
        for result in results:
            line, as_recorded = encode(result)
            lines.append(line)
            recorded.append(as_recorded)
        if lines:
            self._put(b"".join(lines))
            self.records += len(lines)
        return recorded

    def write_encoded(self, blob: bytes, records: int) -> None:
        """Write ``records`` record lines the workers encoded already (one ``bytes``)."""
        if blob:
            self._put(blob)
            self.records += records

    def _put(self, data: bytes) -> None:
        fd = self.fd
        if fd is None:
            self.stream.write(data)
            self.stream.flush()
            return
        start = os.lseek(fd, 0, os.SEEK_CUR) if self.regular else None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            raise
        except OSError as exc:
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.lseek(fd, start, os.SEEK_SET)
            if start is None and view.nbytes < len(data):  # a pipe: what went cannot come back
                state = f"{self.records} records went out whole, then part of one more"
            elif self.records:
                state = f"the {self.records} records written before are whole"
            else:
                state = "no record was written"
            raise OutputError(
                f"writing the records to {self.name} failed: {_reason(exc)}; {state}"
            ) from None


class Summary(Tally):
    """What the run recorded (counted by the same ``Tally`` as ``crunch report``), and the
    report printed at the end."""

    def count(self, ok: int, failures: Iterable[ItemResult], retried: int = 0) -> None:
        """Add ``ok`` ok records (``retried`` of them retried) and the failed ``failures``: a
        chunk of records the workers encoded."""
        self.add_ok(ok, retried=retried)
        self.add(failures)

    def add(self, results: Iterable[ItemResult]) -> None:
        for result in results:
            if result.ok:
                self.add_ok(retried=int(result.attempts > 1))
            else:
                error = result.error
                assert error is not None
                self.add_failure(result.key, error.kind, error.type, error.message, result.attempts)

    def report(self, end: RunEnd) -> str:
        """The closing report: totals, what the walk skipped (the count and the first few
        reasons), what ``--resume`` found and did, why the run stopped, the first failures."""
        seconds, mode, workers, not_run = end.seconds, end.mode, end.workers, end.not_run
        skipped, first_skipped, resumed = end.skipped, end.first_skipped, end.resumed
        done = self.records
        rate = done / seconds if seconds > 0 else 0.0
        lines = [
            f"crunch: {done} item{'' if done == 1 else 's'} in {seconds:.2f} s "
            f"({rate:,.1f} items/s), "
            f"mode {mode}, {workers} worker{'' if workers == 1 else 's'}",
            f"  {self.counts()}, not run {not_run}",
        ]
        if skipped:
            lines.append(
                f"  skipped {skipped} {'entry' if skipped == 1 else 'entries'} of the walk "
                "(not regular files, or link loops):"
            )
            lines.extend(f"    {printable(reason)}"[:300] for reason in first_skipped)
            if skipped > len(first_skipped):
                lines.append(f"    and {skipped - len(first_skipped)} more")
        if resumed is not None:
            lines.append(
                f"  resumed: {_count(resumed.done, 'item')} done before, not run again; "
                f"{resumed.rerun} failed before, run again"
            )
            if resumed.removed:
                lines.append(
                    f"  removed {_count(resumed.removed, 'record')} of items no longer among "
                    "the inputs"
                )
        if end.halted:
            lines.append("  halted: --max-failures reached; items not run can be --resume'd")
        if end.stopped:
            lines.append(f"  stopped by {end.stopped}; items not run can be --resume'd")
        if self.first:
            lines.append("  first failures:")
            lines.extend(self.first_failures())
        return "\n".join(lines)

    def event(self, end: RunEnd, *, run_id: str) -> str:
        """What ``report`` says, as one JSON log event (``run.summary``) for --log-format json."""
        import datetime

        done, seconds, resumed = self.records, end.seconds, end.resumed
        event = {
            "event": "run.summary",
            "level": "info",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
            "run_id": run_id,
            "items": done,
            "seconds": round(seconds, 3),
            "items_per_second": round(done / seconds, 1) if seconds > 0 else 0.0,
            "mode": end.mode,
            "workers": end.workers,
            **self.as_dict(),
            "not_run": end.not_run,
            "skipped": end.skipped,
            "first_skipped": list(end.first_skipped),
            "resumed": (
                None
                if resumed is None
                else {"done": resumed.done, "rerun": resumed.rerun, "removed": resumed.removed}
            ),
            "halted": end.halted,
            "stopped": end.stopped or None,
            "first_failures": [
                {"item": key, "kind": kind, "type": type_, "message": message}
                for key, kind, type_, message in self.first
            ],
        }
        return dumps(event).decode()


class RunEnd(NamedTuple):
    """How a run ended, for its summary (``Summary.report``, or ``Summary.event`` in JSON)."""

    seconds: float
    mode: str
    workers: int  # what really ran: fewer items than workers start fewer
    not_run: int
    halted: bool
    stopped: str  # the signal's name, or ""
    skipped: int = 0  # what the walk skipped, and the first few reasons
    first_skipped: Sequence[str] = ()
    resumed: ResumeCounts | None = None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def setup_logging(
    *, fmt: str, level: str, run_id: str, progress: Any = None, stream: TextIO | None = None
) -> Log:
    """A structlog logger bound to ``run_id``, writing to stderr (through the bar if any)."""
    threshold = logging.getLevelNamesMapping()[level.upper()]
    return Log(functools.partial(_structlog, fmt, threshold, run_id, progress, stream), threshold)


class Log:
    """The run's logger, with structlog's methods; structlog is loaded and configured by the
    first event at or above the level (an ordinary run logs none, and need not load it)."""

    def __init__(self, make: Callable[[], Any], threshold: int) -> None:
        self._make = make
        self._threshold = threshold
        self._logger: Any = None
        # Another thread waits while structlog loads; a signal handler that logs while its own
        # thread is loading it (a re-entered import would find structlog half made) has its
        # event kept, and logged right after (an RLock lets that handler in).
        self._lock = threading.RLock()
        self._loading = False
        self._held: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: int, method: str, event: str, kw: dict[str, Any]) -> None:
        if level < self._threshold:
            return  # what structlog's filtering logger would drop
        if self._logger is None:
            with self._lock:
                if self._logger is None:
                    if self._loading:
                        self._held.append((method, event, kw))
                        return
                    self._load()
                    getattr(self._logger, method)(event, **kw)
                    while self._held:
                        held_method, held_event, held_kw = self._held.pop(0)
                        getattr(self._logger, held_method)(held_event, **held_kw)
                    return
        getattr(self._logger, method)(event, **kw)

    def _load(self) -> None:
        self._loading = True
        try:
            self._logger = self._make()
        finally:
            self._loading = False

    def debug(self, event: str, **kw: Any) -> None:
        self._log(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log(logging.ERROR, "error", event, kw)


def _structlog(fmt: str, threshold: int, run_id: str, progress: Any, stream: TextIO | None) -> Any:
    import structlog

    out = stream or sys.stderr

    class _Sink:
        def write(self, text: str) -> None:
            text = text.rstrip("\n")
            if not text:
                return
            if progress is not None:
                progress.write(text)
            else:
                out.write(text + "\n")

        def flush(self) -> None:
            out.flush()

    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda o, **_: dumps(o, 0).decode())
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=_Sink()),  # ty: ignore[invalid-argument-type]
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("crunch").bind(run_id=run_id)
