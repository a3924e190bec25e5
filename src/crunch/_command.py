"""What ``crunch process`` and ``crunch bench`` do once Click has parsed the options.

Kept apart from ``_cli.py`` so that ``crunch --help`` imports only click; this module pulls in
the engine, pydantic, orjson and structlog.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO

import click
import orjson

from crunch._exceptions import (
    ConfigError,
    CrunchError,
    ItemFailedError,
    OutputError,
    RunInterrupted,
    UsageError,
)

if TYPE_CHECKING:
    from crunch._command_options import BenchOptions, ProcessOptions
    from crunch._resume import ResumeCounts

# The exit status when the reader of standard output goes away: 128 + SIGPIPE, what a shell
# reports for `yes` or `cat` in `... | head -1` (README, exit statuses).
READER_GONE = 128 + signal.SIGPIPE


def parse_task_options(pairs: tuple[str, ...], problems: list[str]) -> dict[str, Any]:
    """``-O KEY=VALUE`` pairs; a value is JSON when it parses as JSON, else the plain string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            problems.append(f"-O {pair!r}: expected KEY=VALUE with KEY a Python identifier")
            continue
        try:
            options[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            options[name] = text
    return options


def resolve_task_and_options(
    task_spec: str, option_pairs: tuple[str, ...], problems: list[str]
) -> tuple[Any, dict[str, Any]]:
    """``--task`` and its ``-O`` options; what is wrong goes into ``problems``."""
    from crunch._taskspec import resolve_task

    task = None
    try:
        task = resolve_task(task_spec)
    except UsageError as exc:
        problems.append(str(exc))
    return task, parse_task_options(option_pairs, problems)


def fail_usage(problems: list[str], command: str = "process") -> int:
    if len(problems) == 1:
        click.echo(f"crunch: error: {problems[0]}", err=True)
    else:
        click.echo(f"crunch: error: {len(problems)} problems:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
    click.echo(f"Try 'crunch {command} --help' for help.", err=True)
    return UsageError.exit_code


def _as_option(problem: str) -> str:
    """``retry_on: ...`` (a RunConfig field) -> ``--retry-on: ...`` (the command's option)."""
    field, sep, rest = problem.partition(":")
    return f"--{field.replace('_', '-')}{sep}{rest}"


def run_process(options: ProcessOptions, stdout: BinaryIO | None) -> int:
    """``crunch process``: every check, then the run; returns the exit status. ``stdout`` is
    where the records go without ``-o`` (None: standard output is closed)."""
    from crunch._api import check_task
    from crunch._runner import is_async_task
    from crunch._settings import Settings, from_command
    from crunch._sizes import parse_size
    from crunch._sources import check_paths, with_paths
    from crunch._spool import own_descriptor
    from crunch._taskspec import load_callable

    problems: list[str] = []
    if options.output_file and own_descriptor(options.output_file) == 1:
        # -o /dev/stdout (/dev/fd/1): standard output, as without -o. Descriptor 1 itself now
        # leads to standard error (crunch._streams), where the records must not go.
        options = replace(options, output_file=None)
    paths = options.paths
    jsonl_file = options.jsonl_file
    output_file = options.output_file
    if jsonl_file and paths:
        problems.append("give PATHs or --jsonl FILE, not both")
    if not jsonl_file and not paths:
        problems.append("no input: give PATH..., '-' to read paths from stdin, or --jsonl FILE")
    if paths.count("-") > 1:
        problems.append("'-' (standard input) can be given only once")
    if options.key_field and not jsonl_file:
        problems.append("--key only applies with --jsonl")
    if options.null_separated and "-" not in paths:
        problems.append("--null only applies when reading paths from '-'")
    problems.extend(check_paths(options.input_files))
    if output_file:
        from crunch._output import output_problem
        from crunch._own_files import output_problems

        problems.extend(filter(None, [output_problem(output_file)]))
        problems.extend(
            output_problems(
                output_file,
                options.input_files,
                stdin_read=options.reads_stdin,
                stdin_paths="-" in paths,
                hidden=options.hidden,
            )
        )

    task, task_kwargs = resolve_task_and_options(
        options.task_spec, options.task_option_pairs, problems
    )
    init = None
    if options.init_spec:
        try:
            init = load_callable(options.init_spec, what="--init")
        except UsageError as exc:
            problems.append(str(exc))
    try:
        split_size = parse_size(options.split_size)
        if split_size < 1:
            problems.append("--split-size must be at least 1 byte")
    except (TypeError, ValueError) as exc:
        problems.append(f"--split-size: {exc}")
        split_size = 0
    settings = options.run_settings()
    config = from_command(settings)  # None: RunConfig has the say (see crunch._settings)
    if config is None:
        from crunch._config import RunConfig

        try:
            config = Settings.of(RunConfig.build(**settings))
        except ConfigError as exc:
            problems.extend(_as_option(problem) for problem in exc.problems)
    if options.reduce and task is not None and not task.reduces:
        problems.append(f"--reduce: task {task.name!r} has no combiner to reduce with")
    if options.reduce and options.resume:
        problems.append("--reduce cannot be used with --resume: the total needs every item")
    if options.resume and not output_file:
        problems.append("--resume needs -o FILE (the records to resume from)")
    if stdout is None and (options.reduce or not output_file):
        why = (
            "--reduce prints its value there" if options.reduce else "give -o FILE for the records"
        )
        problems.append(f"standard output is closed: {why}")
    if task is not None and is_async_task(task.fn) and options.mode != "async":
        problems.append(
            f"--task {options.task_spec!r} is an async def function: run it with --mode async"
        )
    elif task is not None and config is not None:
        try:
            check_task(task.fn, config.mode)
        except UsageError as exc:
            problems.append(str(exc))
    if init is not None and is_async_task(init):
        problems.append(
            f"--init {options.init_spec!r} is an async def function: --init must be a plain "
            "function (it runs once in each worker, before its first item)"
        )
    if problems or task is None or config is None:
        return fail_usage(problems)

    intake = Intake()
    plan = None
    if options.resume:
        assert output_file is not None  # checked above
        from crunch._resume import scan_resume

        try:
            plan = scan_resume(output_file)  # read only: nothing changes before every check
        except UsageError as exc:
            return fail_usage([str(exc)])
        intake.own.add_path(output_file)
    if config.mode == "process":
        # Every check passed: the workers' fork server boots now, on another core, while this
        # process loads the rest of what the run needs (see crunch._backends._groups).
        from crunch._backends._groups import start_workers_server

        start_workers_server()

    from crunch._combine import Regroup, TaskCall, expand
    from crunch._spool import Spool

    with Spool() as spool:  # removes the copies of piped PATHs when the run is over
        source = _entries(options, spool, intake)
        resumed = None
        if plan is not None:
            from crunch._resume import ResumeCounts
            from crunch._resume_check import check_same_task

            try:
                source = check_same_task(
                    plan,
                    source,
                    task=task,
                    options=task_kwargs,
                    config=config,
                    init=init,
                    split_size=split_size,
                )
                resumed = plan.apply()
            except UsageError as exc:
                return fail_usage([str(exc)])
            except KeyboardInterrupt:
                return RunInterrupted(signal.SIGINT).exit_code
            intake.resumed = ResumeCounts()
            if resumed.lines or resumed.failed_before:
                source = _skip_done(source, resumed, intake)
        fn = TaskCall(task, task_kwargs)
        run = Run(options, config, fn, init, stdout, intake, resumed)
        if task.combiner is None:
            # The data plane: workers read, run and encode; the parent writes their bytes.
            return _drive(run, _plane_source(options, source, resumed), None)
        entries = expand(with_paths(source), task, split_size=split_size, reduce=options.reduce)
        return _drive(run, entries, Regroup(task, task_kwargs, reduce=options.reduce))


@dataclass(frozen=True, slots=True)
class Run:
    """What ``_drive`` needs besides the entries: the options, the checked settings, the task
    and its ``--init``, where the records go without ``-o`` (None: standard output is closed),
    what the sources note, and with ``--resume`` what the records file held."""

    options: ProcessOptions
    config: Any
    fn: Any
    init: Any
    stdout: BinaryIO | None
    intake: Intake
    resumed: Any


def _plane_source(options: ProcessOptions, source: Iterator[tuple[Any, Any]], resumed: Any) -> Any:
    """The input as the workers can open it themselves: a regular JSON Lines file they read in
    line-aligned ranges (with ``--key``, its keys checked first, see crunch._keycheck), or the
    keys of files. ``--resume`` and piped input keep the parent's line-by-line reading (and
    key check, crunch._unique_keys); their records are still encoded by the workers."""
    from crunch._sources import FilesSource, JsonlSource

    jsonl = options.jsonl_file
    if jsonl and jsonl != "-" and resumed is None:
        plane = JsonlSource(jsonl, key_field=options.key_field)
        if plane.regular():
            return plane
    if jsonl:
        return source
    return FilesSource(source)


def _skip_done(source: Iterator[tuple[Any, Any]], resumed: Any, intake: Intake) -> Any:
    """The inputs that are not done yet. Counts the done ones met (and marks them, for
    ``_drop_stale``) and the failed ones run again; notes when every input was listed."""
    from crunch._resume import mark_seen

    lines, failed_before = resumed.lines, resumed.failed_before
    counts = intake.resumed
    assert counts is not None
    for key, item in source:
        if mark_seen(lines, key):
            counts.done += 1
            continue
        if key in failed_before:
            counts.rerun += 1
        yield key, item
    intake.listed_all = True


def _drop_stale(output: str, resumed: Any) -> int:
    """--resume: the records of items that are no longer inputs go (README, "The command");
    returns how many (the summary says so)."""
    from crunch._resume import drop_stale

    try:
        return drop_stale(output, resumed)
    except OSError as exc:
        click.echo(
            f"crunch: warning: --resume could not remove the records of items that are no "
            f"longer inputs from {output}: {exc.strerror or exc}",
            err=True,
        )
        return 0


class SkipNotes:
    """What the walk skipped that a user would not expect (FIFOs, sockets, devices, link loops).

    The walk appends one message per skip (``sources.walk(warnings=...)``); each is logged as a
    warning as it happens, and the summary gives the count and the first ``SHOWN`` messages.
    """

    SHOWN = 5  # as many as the summary's first failures

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []
        self.log: Any = None  # set once logging is configured, before the walk starts

    def append(self, message: str) -> None:
        self.count += 1
        if len(self.first) < self.SHOWN:
            self.first.append(message)
        if self.log is not None:
            self.log.warning("input.skipped", reason=message)


class Intake:
    """What the command's sources note while the run reads its inputs, for ``_drive``.

    ``skipped``: the walk's surprising skips. ``own``: the files the run writes, which no
    source yields (``crunch._own_files``); ``_drive`` adds them once they are open, before any
    input is read. ``resumed``: with ``--resume``, what it found and did (for the summary).
    ``listed_all``: with ``--resume``, every input was listed (so the records of items not
    among them can go).
    """

    def __init__(self) -> None:
        from crunch._own_files import OwnFiles

        self.skipped = SkipNotes()
        self.own = OwnFiles()
        self.resumed: ResumeCounts | None = None
        self.listed_all = False  # --resume: the source was read to its end


def _entries(options: ProcessOptions, spool: Any, intake: Intake) -> Iterator[tuple[Any, Any]]:
    from crunch._sources import jsonl_items, stdin_paths, walk_keys
    from crunch._streams import stdin_binary

    jsonl_file, field = options.jsonl_file, options.key_field
    if jsonl_file and field:
        from crunch._sources import jsonl_lines
        from crunch._unique_keys import unique_keys

        jsonl = stdin_binary() if jsonl_file == "-" else jsonl_file
        source: Iterator[tuple[Any, Any]] = unique_keys(jsonl_lines(jsonl, key_field=field), field)
    elif jsonl_file:
        jsonl = stdin_binary() if jsonl_file == "-" else jsonl_file
        source = jsonl_items(jsonl)
    else:
        source = _paths(options, walk_keys, stdin_paths, spool, intake)
    return source


def _spooled(
    pairs: Iterator[tuple[Any, Any]], roots: list[str], spool: Any
) -> Iterator[tuple[Any, Any]]:
    """The walk (``walk_keys``), with each root only this process can read (a pipe, /dev/fd/N)
    replaced by a private copy the workers can open; the key stays the PATH as given (see
    ``_spool``)."""
    files = {PurePath(root).as_posix(): root for root in roots if not os.path.isdir(root)}
    for key, item in pairs:
        root = files.get(key) if item is None else None
        copy = spool.path_for(root) if root is not None else None
        yield key, item if copy is None else copy


def _paths(
    options: ProcessOptions, walk: Any, stdin_paths: Any, spool: Any, intake: Intake
) -> Iterator[tuple[Any, Any]]:
    from crunch._sources import Overlap
    from crunch._streams import stdin_binary

    walk_options = {
        # One item per file across all the PATHs, also those on either side of "-".
        "overlap": Overlap(
            [p for p in options.paths if p != "-"], follow_symlinks=options.follow_symlinks
        ),
        "warnings": intake.skipped,
        "leave_out": intake.own,
        "hidden": options.hidden,
        "follow_symlinks": options.follow_symlinks,
        "globs": options.globs,
        "excludes": options.excludes,
    }
    roots: list[str] = []
    for path in options.paths:
        if path != "-":
            roots.append(path)
            continue
        if roots:
            yield from _spooled(walk(roots, **walk_options), roots, spool)
            roots = []
        yield from stdin_paths(stdin_binary(), null=options.null_separated, leave_out=intake.own)
    if roots:
        yield from _spooled(walk(roots, **walk_options), roots, spool)


def _drive(run: Run, entries: Any, regroup: Any) -> int:
    from crunch._batches import RecordBatch
    from crunch._exceptions import STOP_SIGNALS
    from crunch._output import RecordWriter, RunEnd, Summary, open_records, setup_logging
    from crunch._stream import open_stream

    options, config, intake, stdout = run.options, run.config, run.intake, run.stdout
    run_id = uuid.uuid4().hex[:12]
    stream = open_stream(
        run.fn,
        entries,
        config,
        init=run.init,
        keyed=True,
        records=regroup is None,  # workers encode the records; else the parent regroups parts
        progress=options.progress,
    )
    log = setup_logging(
        fmt=options.log_format, level=options.log_level, run_id=run_id, progress=stream.progress
    )
    intake.skipped.log = log
    summary = Summary()
    out_path = options.output_file
    signals = 0

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.warning("run.stopping", signal=signal.Signals(signum).name, grace=config.grace)
        stream.scheduler.request_stop(signum, immediate=signals > 1)

    # From here on a stop signal stops the run (grace, then the summary); before, it ended
    # crunch at once (see crunch._entry). The -o file is opened only under these handlers.
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    sink: BinaryIO | None
    if out_path:
        try:
            sink = open_records(out_path, append=options.resume)
        except OutputError as exc:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            click.echo(f"crunch: error: {exc}", err=True)
            return exc.exit_code
    else:
        sink = None if options.reduce else stdout
    if stdout is not None:
        intake.own.add(stdout)  # when it is a regular file (``> FILE``)
    if out_path and sink is not None:
        intake.own.add(sink, out_path)
    writer = RecordWriter(sink, out_path or "standard output") if sink is not None else None
    log.info("run.start", mode=config.mode, workers=config.workers, task=options.task_spec)
    status = 0
    stopped = ""
    unrecorded = False
    started = time.monotonic()
    try:
        for delivered in stream.batches():
            if type(delivered) is RecordBatch:
                if writer is not None:
                    writer.write_encoded(delivered.blob, len(delivered))
                summary.count(delivered.ok, delivered.failures, delivered.retried)
                _log_failures(log, delivered.failures)
                continue
            batch = delivered
            if regroup is not None:
                batch = [r for r in map(regroup.feed, batch) if r is not None]
            if writer is not None:
                batch = writer.write(batch)
            summary.add(batch)
            _log_failures(log, [r for r in batch if not r.ok])
    except BrokenPipeError:
        # The reader of the records went away (`crunch process ... | head -1`): stop now,
        # quietly, as `cat` and `yes` do (README, exit statuses).
        status = READER_GONE
    except RunInterrupted as exc:
        status = exc.exit_code
        stopped = signal.Signals(exc.signum).name
    except CrunchError as exc:
        if options.log_format == "json":  # standard error stays JSON Lines
            log.error("run.error", message=str(exc), exit_code=exc.exit_code)  # noqa: TRY400
        else:
            click.echo(f"crunch: error: {exc}", err=True)
        status = exc.exit_code
        unrecorded = isinstance(exc, OutputError)
    finally:
        stream.close()  # and its progress bar
        if sink is not None and sink is not stdout:
            sink.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if intake.resumed is not None and intake.listed_all:
        assert out_path is not None  # --resume needs -o
        intake.resumed.removed = _drop_stale(out_path, run.resumed)
    if status == READER_GONE:
        return status
    seconds = time.monotonic() - started
    stats = stream.stats
    not_run = stats.not_run + (regroup.pending() if regroup is not None else 0)
    if unrecorded:  # the records could not be written: what has none is for --resume
        not_run = max(not_run, stats.found - summary.records)
    if options.reduce and regroup is not None and status == 0:
        assert stdout is not None  # checked before the run
        try:
            stdout.write(orjson.dumps(regroup.result(), option=orjson.OPT_NON_STR_KEYS) + b"\n")
            stdout.flush()
        except BrokenPipeError:
            return READER_GONE
    end = RunEnd(
        seconds=seconds,
        mode=config.mode,
        workers=stats.lanes,
        not_run=not_run,
        halted=stats.halted,
        stopped=stopped,
        skipped=intake.skipped.count,
        first_skipped=intake.skipped.first,
        resumed=intake.resumed,
    )
    if options.log_format == "json":  # standard error stays JSON Lines, the summary an event
        click.echo(summary.event(end, run_id=run_id), err=True)
    else:
        click.echo(summary.report(end), err=True)
    log.info(
        "run.end", ok=summary.ok, failed=summary.failed, not_run=not_run, seconds=round(seconds, 3)
    )
    if status:
        return status
    return ItemFailedError.exit_code if summary.failed or stats.halted else 0


def _log_failures(log: Any, failures: Iterable[Any]) -> None:
    for result in failures:
        assert result.error is not None
        log.warning(
            "item.failed",
            item=result.key,
            kind=result.error.kind,
            type=result.error.type,
            message=result.error.message,
        )


def run_bench(options: BenchOptions) -> int:
    """``crunch bench``: returns the exit status."""
    from crunch import _bench
    from crunch._combine import TaskCall
    from crunch._output import output_problem
    from crunch._settings import default_workers
    from crunch._sources import check_paths, walk

    problems = check_paths(list(options.paths))
    task, task_kwargs = resolve_task_and_options(
        options.task_spec, options.task_option_pairs, problems
    )
    plot_file = options.plot_file
    if plot_file:
        problems.extend(filter(None, [output_problem(plot_file, "--plot")]))
    if problems or task is None:
        return fail_usage(problems, "bench")
    items = [
        item
        for _key, item in itertools.islice(walk(list(options.paths), globs=options.globs), 100_000)
        if isinstance(item, Path)
    ]
    if not items:
        shown = ", ".join(options.paths)
        globs = f" matching {', '.join(options.globs)}" if options.globs else ""
        return fail_usage([f"no input files{globs} under {shown}"], "bench")
    sample = _bench.sample(items, options.sample, seed=0)
    workers = options.workers or default_workers()
    try:
        report = _bench.bench_modes(TaskCall(task, task_kwargs), sample, workers=workers)
    except CrunchError as exc:
        click.echo(f"crunch: error: {exc}", err=True)
        return exc.exit_code
    click.echo(report.table())
    if plot_file:
        try:
            _bench.plot(report, plot_file)
        except UsageError as exc:
            click.echo(f"crunch: error: {exc}", err=True)
            return exc.exit_code
        except OSError as exc:
            error = OutputError(f"--plot {plot_file}: {os.strerror(exc.errno or 0) or exc}")
            click.echo(f"crunch: error: {error}", err=True)
            return error.exit_code
        click.echo(f"plot written to {plot_file}", err=True)
    return 0 if report.fastest is not None else ItemFailedError.exit_code
