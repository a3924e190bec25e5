"""``crunch report FILE.jsonl``: what a results file says, read in one streaming pass.

    lines --> records (``_jsonline.loads``: orjson, the stdlib json for what it refuses) --> Report
          --> text (default) | one JSON document (--format json) | failed keys (--failed)
          --> and a picture (--plot FILE.png, _report_plot)

What is kept while reading is bounded, whatever the size of the file:

- the counts, in ``_tally.Tally``: the same code that counts the end-of-run summary of
  ``crunch process``, so the two never disagree about the same records;
- failure groups: one per (kind, type, message shape; see ``_shapes``), with a count and the
  first ``EXAMPLES`` keys; past ``MAX_GROUPS`` groups, a new shape is counted in its kind and
  type's ``OTHER_SHAPE`` group;
- the ``top`` slowest records (a heap);
- the durations, in a fixed-size log-scale histogram (``_histogram``) that the percentiles are
  read from (within 3 % of the exact value; the maximum is exact);
- the line numbers of the first ``BAD_LINES_SHOWN`` lines that are not records.

A line is a record when it is a JSON object with ``"item"`` (a string, or an integer that is not
a boolean) and ``"ok"`` (true or false) -- the rule ``--resume`` applies. Blank lines are
skipped. A last line without its newline is *torn* (a run killed, or still writing) and, as for
``--resume``, never parsed. The report counts records: a file that ``crunch process`` wrote
(``--resume`` included) holds one record per item.

``--failed`` prints the key of each failed record as it is met, one a line (``--null``: NUL after
each), as the bytes ``os.fsencode`` gives back, so a file name that is not valid UTF-8 (kept in
the record as surrogate escapes) comes out as its original bytes and ``crunch process -`` reads
the same path. Integer keys (``--jsonl`` runs) are printed in decimal. A key that cannot go on
one line (it holds the separator) or be a file name is not printed; the command says how many
and exits 1.

Exit status: 0 every record is ok; 1 some record failed, or some line is not a whole record
(junk or torn); 2 the file cannot be read, the options are wrong, or the plot cannot be drawn.
With ``--failed``: 0 once the file is read (whether or not anything failed, so that a pipeline
into ``crunch process -`` is judged by the rerun), 1 when some failed key could not be printed.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import click
import orjson

from crunch._histogram import LogHistogram, duration
from crunch._jsonline import dumps, loads
from crunch._shapes import shape
from crunch._tally import Tally, printable, shown_key

MAX_GROUPS = 1000
EXAMPLES = 3
BAD_LINES_SHOWN = 20
OTHER_SHAPE = "(other messages: too many different ones to group)"
BAR_WIDTH = 40


@dataclass(slots=True)
class Group:
    """Failures of one kind, type and message shape."""

    kind: str
    type: str
    shape: str
    count: int = 0
    examples: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "type": self.type,
            "message": self.shape,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass(slots=True)
class Report:
    """Everything ``crunch report`` says about one file, gathered line by line."""

    name: str
    top: int = 10
    on_failed: Callable[[Any], None] | None = None
    tally: Tally = field(default_factory=Tally)
    lines: int = 0
    bad: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    torn_line: int | None = None
    groups: dict[tuple[str, str, str], Group] = field(default_factory=dict)
    slowest: list[tuple[float, int, Any, str]] = field(default_factory=list)  # a min-heap
    durations: LogHistogram = field(default_factory=LogHistogram)

    # ------------------------------------------------------------------ reading
    def read(self, stream: BinaryIO) -> Report:
        """Take in every line of ``stream`` (a binary file).

        The loop is the cost of a report (a million records take a few seconds), so the common
        case, an ok record, is handled inline and its counts go to the tally at the end.
        """
        fast_loads, not_json = orjson.loads, orjson.JSONDecodeError
        add_duration = self.durations.add
        slowest, top = self.slowest, self.top
        ok = retried = 0
        lineno = 0
        try:
            for lineno, line in enumerate(stream, start=1):
                if line[-1:] != b"\n":  # only the last line can lack it
                    self.torn_line = lineno
                    break
                try:
                    record = fast_loads(line)
                except not_json:
                    if line.isspace():
                        continue
                    record = _slow_loads(line)
                if type(record) is not dict:
                    self._bad(lineno, "not JSON" if record is _NOT_JSON else "not a JSON object")
                    continue
                key = record.get("item")
                passed = record.get("ok")
                if (type(key) is not str and type(key) is not int) or type(passed) is not bool:
                    self._bad(lineno, "not a result record")  # (a bool is not a key either)
                    continue
                if passed:
                    ok += 1
                    attempts = record.get("attempts")
                    if type(attempts) is int and attempts > 1:
                        retried += 1
                    status = "ok"
                else:
                    status = self._failure(key, record)
                seconds = record.get("seconds")
                if (type(seconds) is float or type(seconds) is int) and 0 <= seconds < math.inf:
                    add_duration(seconds)
                    if top and (len(slowest) < top or seconds > slowest[0][0]):
                        entry = (float(seconds), -lineno, key, status)
                        if len(slowest) < top:
                            heapq.heappush(slowest, entry)
                        else:
                            heapq.heapreplace(slowest, entry)
        finally:
            self.tally.add_ok(ok, retried=retried)
            self.lines = lineno
        return self

    def _failure(self, key: Any, record: dict[str, Any]) -> str:
        """Count a failed record; returns its kind."""
        error = record.get("error")
        if not isinstance(error, dict):
            error = {}
        kind = _text(error.get("kind")) or "unknown"
        type_ = _text(error.get("type"))
        message = _text(error.get("message"))
        attempts = record.get("attempts")
        self.tally.add_failure(key, kind, type_, message, attempts if type(attempts) is int else 1)
        self._group(key, kind, type_, message)
        if self.on_failed is not None:
            self.on_failed(key)
        return kind

    def _bad(self, lineno: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < BAD_LINES_SHOWN:
            self.bad_lines.append((lineno, reason))

    def _group(self, key: Any, kind: str, type_: str, message: str) -> None:
        folded = shape(message)
        group = self.groups.get((kind, type_, folded))
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                folded = OTHER_SHAPE
                group = self.groups.get((kind, type_, folded))
            if group is None:
                group = self.groups[kind, type_, folded] = Group(kind, type_, folded)
        group.count += 1
        if len(group.examples) < EXAMPLES:
            group.examples.append(key)

    # ------------------------------------------------------------------ what it says
    @property
    def clean(self) -> bool:
        """Every record ok and every line a whole record."""
        return not self.tally.failed and not self.bad and self.torn_line is None

    def sorted_groups(self) -> list[Group]:
        """Largest first; ties by kind, type and shape."""
        return sorted(self.groups.values(), key=lambda g: (-g.count, g.kind, g.type, g.shape))

    def slowest_first(self) -> list[tuple[float, int, Any, str]]:
        """``(seconds, line, key, status)``, slowest first; ties in file order."""
        return [
            (s, -neg, key, status) for s, neg, key, status in sorted(self.slowest, reverse=True)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data: the JSON document of ``--format json``."""
        groups = self.sorted_groups()
        durations = self.durations
        return {
            "file": self.name,
            "lines": self.lines,
            "totals": self.tally.as_dict(),
            "not_records": {
                "count": self.bad,
                "lines": [{"line": n, "reason": why} for n, why in self.bad_lines],
                "torn_last_line": self.torn_line,
            },
            "failures": [g.as_dict() for g in groups],
            "slowest": [
                {"item": key, "seconds": seconds, "line": line, "status": status}
                for seconds, line, key, status in self.slowest_first()
            ],
            "seconds": {
                "count": durations.count,
                "mean": durations.mean,
                "min": durations.min if durations.count else None,
                **durations.percentiles(),
                "histogram": [
                    {"from": lo, "to": None if math.isinf(hi) else hi, "count": n}
                    for lo, hi, n in durations.rows()
                ],
            },
        }

    def text(self) -> str:
        """The report for a person (see README: crunch report)."""
        out = [f"{printable(self.name)}: {self.tally.records} records", f"  {self.tally.counts()}"]
        out.extend(self._problem_lines())
        out.append("")
        out.extend(self._failure_lines())
        if self.top and self.slowest:
            out.append("")
            out.extend(self._slowest_lines())
        out.append("")
        out.extend(self._duration_lines())
        return "\n".join(out)

    def _problem_lines(self) -> list[str]:
        out = []
        if self.bad:
            listed = ", ".join(f"{n} ({why})" for n, why in self.bad_lines)
            more = self.bad - len(self.bad_lines)
            if more:
                listed += f" and {more} more"
            noun = "line is" if self.bad == 1 else "lines are"
            out.append(f"  {self.bad} {noun} not a record: line {listed}")
        if self.torn_line is not None:
            out.append(
                f"  the last line ({self.torn_line}) is torn, with no newline at its end: the run"
                " is still writing the file, or was killed (--resume runs its item again)"
            )
        return out

    def _failure_lines(self) -> list[str]:
        groups = self.sorted_groups()
        if not groups:
            return ["failures: none"]
        noun = "group" if len(groups) == 1 else "groups"
        out = [
            f"failures by kind, type and message: {self.tally.failed} in {len(groups)} {noun}"
            " (numbers, paths, quoted values and hex folded)"
        ]
        shown = groups[: self.top]
        if shown:
            kind_w = max(len(g.kind) for g in shown)
            type_w = max(len(g.type) for g in shown)
            count_w = max(len(str(g.count)) for g in shown)
            indent = " " * (2 + count_w + 2 + kind_w + 2 + type_w + 2)
        for g in shown:
            message = printable(g.shape) or "(no message)"
            out.append(f"  {g.count:>{count_w}}  {g.kind:<{kind_w}}  {g.type:<{type_w}}  {message}")
            examples = ", ".join(shown_key(k) for k in g.examples)
            if g.count > len(g.examples):
                examples += ", ..."
            out.append(f"{indent}e.g. {examples}")
        rest = groups[len(shown) :]
        if rest:
            more = "more group" if len(rest) == 1 else "more groups"
            out.append(
                f"  and {len(rest)} {more} ({sum(g.count for g in rest)} failures):"
                " --top N shows more, --format json all"
            )
        return out

    def _slowest_lines(self) -> list[str]:
        rows = self.slowest_first()
        times = [duration(s) for s, _, _, _ in rows]
        time_w = max(len(t) for t in times)
        status_w = max(len(status) for _, _, _, status in rows)
        out = [f"slowest {len(rows)}:"]
        for shown, (_, _, key, status) in zip(times, rows, strict=True):
            out.append(f"  {shown:>{time_w}}  {status:<{status_w}}  {shown_key(key)}")
        return out

    def _duration_lines(self) -> list[str]:
        d = self.durations
        if not d.count:
            return ["seconds: no record has a duration"]
        p = d.percentiles()
        out = [
            f"seconds of {d.count} records: p50 {duration(p['p50'])}, p90 {duration(p['p90'])},"
            f" p99 {duration(p['p99'])}, max {duration(p['max'])} (mean {duration(d.mean)})"
        ]
        rows = d.rows()
        labels = _row_labels(rows)
        peak = max(n for _, _, n in rows)
        count_w = len(str(peak))
        for label, (_, _, n) in zip(labels, rows, strict=True):
            bar = "#" * max(1 if n else 0, round(BAR_WIDTH * n / peak))
            share = f"{100 * n / d.count:.1f}%" if n else ""
            out.append(f"  {label}  {bar:<{BAR_WIDTH}}  {n:>{count_w}}  {share}".rstrip())
        return out


_NOT_JSON = object()


def _slow_loads(line: bytes) -> Any:
    """What orjson refused, by the reader that also takes ``\\udcXX`` escapes (``_jsonline``)."""
    try:
        return loads(line)
    except (orjson.JSONDecodeError, RecursionError):  # (nested deeper than json goes)
        return _NOT_JSON


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _row_labels(rows: list[tuple[float, float, int]]) -> list[str]:
    """``from - to`` of each row, aligned on the dash (``< 1 µs`` and ``10,000,000 s and more``
    at the ends)."""
    los = ["<" if lo == 0 else duration(lo, 2) for lo, _, _ in rows]
    his = [">=" if math.isinf(hi) else duration(hi, 2) for _, hi, _ in rows]
    lo_w = max(len(s) for s in los)
    hi_w = max(len(s) for s in his)
    labels = []
    for lo, hi in zip(los, his, strict=True):
        if lo == "<":
            labels.append(f"{'':>{lo_w}} < {hi:<{hi_w}}")
        elif hi == ">=":
            labels.append(f"{lo:>{lo_w}} and more")
        else:
            labels.append(f"{lo:>{lo_w}} - {hi:<{hi_w}}")
    width = max(len(s) for s in labels)
    return [s.ljust(width) for s in labels]


# ---------------------------------------------------------------------------------------------
# the command


def run_report(*, file: str, fmt: str, failed: bool, null: bool, plot: str | None, top: int) -> int:
    """``crunch report``: returns the exit status (see the module docstring)."""
    problems = []
    if null and not failed:
        problems.append("--null only applies with --failed")
    if failed and fmt == "json":
        problems.append(
            "--failed prints keys, one a line: it cannot be combined with --format json"
        )
    if plot is not None:
        from crunch._exceptions import MissingExtraError
        from crunch._plotting import check_installed

        parent = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(parent):
            problems.append(f"--plot {plot}: no such directory {parent}")
        try:
            check_installed()
        except MissingExtraError as exc:
            problems.append(str(exc))
    stream: BinaryIO | None = None
    if file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            problems.append(f"cannot read {file}: {exc.strerror or exc}")
    if problems or stream is None:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
        return _fail_usage(problems)

    name = "standard input" if file == "-" else file
    keys = _KeyPrinter(null=null) if failed else None
    report = Report(name, top=top, on_failed=keys.write if keys else None)
    try:
        return _report(report, stream, keys, fmt=fmt, plot=plot)
    except KeyboardInterrupt:  # Ctrl-C over a big file: stop, as quietly as it started
        return 130


def _report(
    report: Report, stream: BinaryIO, keys: _KeyPrinter | None, *, fmt: str, plot: str | None
) -> int:
    name = report.name
    try:
        with stream if stream is not sys.stdin.buffer else contextlib.nullcontext():
            report.read(stream)
        if keys is not None:
            keys.flush()
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:
        click.echo(f"crunch: error: cannot read {name}: {exc.strerror or exc}", err=True)
        return 2

    status = 0
    try:
        if keys is not None:
            for line in keys.notes(report):
                click.echo(f"crunch: {line}", err=True)
            status = 1 if keys.skipped else 0
        else:
            _write_stdout(report.text() if fmt == "text" else _json(report.as_dict()))
            status = 0 if report.clean else 1
    except BrokenPipeError:
        return _broken_pipe()
    if plot is not None:
        from crunch._exceptions import MissingExtraError
        from crunch._report_plot import draw

        try:
            draw(report, plot)
        except MissingExtraError as exc:  # installed but broken
            click.echo(f"crunch: error: {exc}", err=True)
            return 2
        except OSError as exc:
            click.echo(
                f"crunch: error: cannot write the plot {plot}: {exc.strerror or exc}", err=True
            )
            return 2
        click.echo(f"plot written to {plot}", err=True)
    return status


class _KeyPrinter:
    """Writes failed keys to standard output as they come, as the bytes of the names."""

    def __init__(self, *, null: bool) -> None:
        self.sep = b"\0" if null else b"\n"
        self.out = sys.stdout.buffer
        self.pending: list[bytes] = []
        self.integers = 0
        self.skipped_separator = 0
        self.skipped_unencodable = 0

    @property
    def skipped(self) -> int:
        return self.skipped_separator + self.skipped_unencodable

    def write(self, key: Any) -> None:
        if type(key) is int:
            self.integers += 1
            data = str(key).encode()
        else:
            try:
                data = os.fsencode(key)
            except UnicodeEncodeError:  # a lone surrogate that stands for no byte
                self.skipped_unencodable += 1
                return
            if not data or self.sep in data or (self.sep == b"\n" and data.endswith(b"\r")):
                self.skipped_separator += 1
                return
        self.pending.append(data)
        if len(self.pending) >= 4096:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write(self.sep.join(self.pending) + self.sep)
            self.pending.clear()
        self.out.flush()

    def notes(self, report: Report) -> Iterable[str]:
        """What standard error should say besides the keys."""
        if self.integers:
            yield (
                f"note: {_count(self.integers, 'failed key')} of a --jsonl run (line numbers or"
                " --key values) printed in decimal; crunch process - reads paths, so select"
                " the lines to run again yourself"
            )
        if report.bad or report.torn_line is not None:
            count = report.bad + (report.torn_line is not None)
            yield (
                f"note: {_count(count, 'line')} of {report.name} not whole records: their items"
                " are not listed (crunch report without --failed names the lines)"
            )
        if self.skipped_separator:
            how = (
                "they are empty or hold a NUL byte"
                if self.sep == b"\0"
                else "they hold a newline (or end with a carriage return); use --failed --null"
                " with crunch process - --null"
            )
            yield f"error: {_count(self.skipped_separator, 'failed key')} not printed: {how}"
        if self.skipped_unencodable:
            yield (
                f"error: {_count(self.skipped_unencodable, 'failed key')} not printed: they hold"
                " a character that no file name has (a lone surrogate)"
            )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _json(document: dict[str, Any]) -> str:
    # Indented; a key holding a lone surrogate makes it the compact, escaped form instead.
    return dumps(document, option=orjson.OPT_INDENT_2).decode()


def _write_stdout(text: str) -> None:
    out = sys.stdout
    reconfigure = getattr(out, "reconfigure", None)
    if reconfigure is not None:  # a stream that is not UTF-8 shows what it cannot encode as \u...
        reconfigure(errors="backslashreplace")
    out.write(text + "\n")
    out.flush()


def _broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, as a Unix tool does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE


def _fail_usage(problems: list[str]) -> int:
    from crunch._command import fail_usage

    return fail_usage(problems, command="report")
