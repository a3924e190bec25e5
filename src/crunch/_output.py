"""The command's sinks: JSON Lines records, structured logs, and the end-of-run summary.

- ``RecordWriter`` serialises each result with orjson and writes a batch with one ``write``
  and a flush, so a killed run leaves at most its last line torn (``--resume`` repairs it). A
  value that is not JSON-serialisable turns that item's record into a failure.
- ``setup_logging`` configures structlog on standard error (console or JSON), every event
  bound to the run's ``run_id``; with a progress bar, lines go through ``tqdm.write`` so the
  bar and the logs never garble each other.
- ``Summary`` counts what was written and prints the closing report.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any, BinaryIO, TextIO

import orjson

from crunch._failures import ItemFailure
from crunch.results import Failure, ItemResult

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def encode(result: ItemResult) -> tuple[bytes, ItemResult]:
    """The record line for ``result`` (and the result, replaced when its value won't encode)."""
    try:
        return orjson.dumps(result.as_record(), option=_OPTS) + b"\n", result
    except (TypeError, orjson.JSONEncodeError) as exc:
        failure = ItemFailure.unencodable_value(exc).public(result.attempts)
        bad = ItemResult(result.key, False, None, failure, result.seconds, result.attempts)
        return orjson.dumps(bad.as_record(), option=_OPTS) + b"\n", bad


class RecordWriter:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, results: Iterable[ItemResult]) -> list[ItemResult]:
        """Write one line per result; returns the results as recorded."""
        lines = []
        recorded = []
        for result in results:
            line, as_recorded = encode(result)
            lines.append(line)
            recorded.append(as_recorded)
        if lines:
            self.stream.write(b"".join(lines))
            self.stream.flush()
        return recorded


class Summary:
    """Counts of what the run recorded, and the report printed at the end."""

    SHOWN_FAILURES = 5

    def __init__(self) -> None:
        self.ok = 0
        self.kinds: Counter[str] = Counter()
        self.first: list[tuple[Any, Failure]] = []

    @property
    def failed(self) -> int:
        return sum(self.kinds.values())

    def add(self, results: Iterable[ItemResult]) -> None:
        for result in results:
            if result.ok:
                self.ok += 1
            else:
                assert result.error is not None
                self.kinds[result.error.kind] += 1
                if len(self.first) < self.SHOWN_FAILURES:
                    self.first.append((result.key, result.error))

    def report(
        self, *, seconds: float, mode: str, workers: int, not_run: int, halted: bool, stopped: str
    ) -> str:
        done = self.ok + self.failed
        rate = done / seconds if seconds > 0 else 0.0
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        lines = [
            f"crunch: {done} items in {seconds:.2f} s ({rate:,.1f} items/s), "
            f"mode {mode}, {workers} workers",
            f"  ok {self.ok}, failed {self.failed}"
            + (f" ({kinds})" if kinds else "")
            + f", not run {not_run}",
        ]
        if halted:
            lines.append("  halted: --max-failures reached; items not run can be --resume'd")
        if stopped:
            lines.append(f"  stopped by {stopped}; items not run can be --resume'd")
        if self.first:
            lines.append("  first failures:")
            for key, failure in self.first:
                message = failure.message.splitlines()[0] if failure.message else ""
                lines.append(f"    {key}: {failure.kind}: {failure.type}: {message}"[:300])
        return "\n".join(lines)


def setup_logging(
    *, fmt: str, level: str, run_id: str, progress: Any = None, stream: TextIO | None = None
) -> Any:
    """A structlog logger bound to ``run_id``, writing to stderr (through the bar if any)."""
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
        structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())
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
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_Sink()),  # ty: ignore[invalid-argument-type]
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("crunch").bind(run_id=run_id)
