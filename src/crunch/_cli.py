"""The ``crunch`` command: a thin Click layer over the library's engine.

    options --> ProcessOptions (typed, once) --> RunConfig (+ input and task checks: every
            problem reported at once, exit 2)
            --> source (walk | stdin | --jsonl), minus what --resume already has
            --> expand (split big files) --> the same stream as crunch.imap (crunch._stream)
            --> Regroup (parts -> one record) --> records, progress, logs, summary

Only click is imported at start-up, so ``crunch --help`` stays quick; everything a run needs is
imported inside the command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from crunch._modes import MODES


def _env(name: str) -> str:
    return f"CRUNCH_{name.upper().replace('-', '_')}"


def option(*decls: str, **attrs: Any) -> Callable[[Any], Any]:
    """A click option that can also be set from the environment as CRUNCH_<OPTION>."""
    long = next(d for d in decls if d.startswith("--")).split("/")[0]
    attrs.setdefault("envvar", _env(long[2:]))
    attrs.setdefault("show_envvar", True)
    return click.option(*decls, **attrs)


PROCESS_EPILOG = """\b
Examples:
  crunch process data/ --workers 8                 # stats of every file, JSONL on stdout
  crunch process data/ --task wordfreq -o out.jsonl --progress
  crunch process data/ --task pyast --glob '**/*.py' --timeout 10
  crunch process data/ --task wordfreq --reduce -O top=5   # one exact corpus-wide top 5
  find data -name '*.txt' -print0 | crunch process - --null --task checksum -O algorithm=md5
  crunch process --jsonl records.jsonl --key id --task mypkg.score:score
  crunch process data/ -o out.jsonl --resume       # run only what is missing or failed

\b
Exit status: 0 all ok; 1 some items failed (or --max-failures halted the run);
2 usage or input error, or the records cannot be written (a full disk: the records
written stay whole, --resume runs the rest); 130 after Ctrl-C; 143 after SIGTERM or
SIGHUP; 141 when the reader of standard output goes away (crunch ... | head).
A task given as a module or file is imported and run: only run tasks you trust.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crunch", prog_name="crunch")
def main() -> None:
    """Run a slow Python function over many inputs, in parallel, without losing an item.

    \b
    crunch process data/ --workers 8      run a task over files (see: crunch process --help)
    crunch tasks                          list the available tasks
    crunch report out.jsonl               what a finished run says: failures, slowest
    crunch bench data/ --task stats       which mode is fastest for your task
    crunch gen demo/ --kind mixed         make a synthetic data set
    """


@main.command(epilog=PROCESS_EPILOG)
@click.argument("paths", nargs=-1, type=str)
@option(
    "--task",
    "-t",
    "task_spec",
    default="stats",
    show_default=True,
    help="Built-in or plugin task name, module:function, or file.py:function.",
)
@option(
    "-O",
    "--option",
    "task_option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument for the task (value parsed as JSON when it parses).",
)
@option(
    "--init",
    "init_spec",
    metavar="MODULE:FUNCTION",
    help="Run once in each worker before its first item.",
)
@option(
    "--jsonl",
    "jsonl_file",
    type=click.Path(dir_okay=False),
    help="Items are the JSON lines of FILE instead of paths.",
)
@option("--key", "key_field", metavar="FIELD", help="With --jsonl: the field that names an item.")
@option(
    "--null", "null_separated", is_flag=True, help="With '-': paths on stdin are NUL-separated."
)
@option(
    "--glob", "globs", multiple=True, metavar="PATTERN", help="Keep files matching (repeatable)."
)
@option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Skip files and directories matching (repeatable).",
)
@option("--hidden", is_flag=True, help="Include entries whose name starts with '.'.")
@option("--follow-symlinks", is_flag=True, help="Follow symbolic links met in the walk.")
@option("--mode", "-m", type=click.Choice(MODES), default="process", show_default=True)
@option("--workers", "-j", type=int, help="Processes, threads or concurrent items [CPU count].")
@option("--chunk-size", default="auto", show_default=True, help="Items per chunk, or auto.")
@option("--timeout", type=float, help="Per-item time limit in seconds (0.01 to 1000000).")
@option(
    "--max-memory",
    metavar="SIZE",
    help="Memory cap per worker, e.g. 2GiB (process and dask modes): an item that takes its "
    "worker past it fails alone, kind memory.",
)
@option(
    "--retries",
    type=int,
    default=0,
    show_default=True,
    help="Re-run an item failing with a --retry-on error up to N more times.",
)
@option(
    "--retry-on",
    multiple=True,
    metavar="NAME",
    help="Exception class to retry, with its subclasses: a builtin name or module.Name; "
    "validation errors (ValueError...) never are [ConnectionError, TimeoutError, "
    "BlockingIOError].",
)
@option("--max-failures", type=int, help="Stop starting new items after N failures.")
@option("--fail-fast", is_flag=True, help="Same as --max-failures 1.")
@option("--ordered", is_flag=True, help="Emit records in input order.")
@option(
    "--output", "-o", "output_file", type=click.Path(dir_okay=False), help="Write records to FILE."
)
@option("--resume", is_flag=True, help="With -o: skip items that already have an ok record.")
@option(
    "--reduce",
    "reduce",
    is_flag=True,
    help="Print only the task's exact combined value over all ok items.",
)
@option(
    "--split-size",
    default="64MiB",
    show_default=True,
    help="Split larger files into ranges (tasks that can split).",
)
@option("--progress/--no-progress", default=None, help="Progress bar [on when stderr is a TTY].")
@option(
    "--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True
)
@option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
)
@option(
    "--scheduler",
    "dask_scheduler",
    metavar="ADDRESS",
    help="Dask scheduler (--mode dask), e.g. tcp://h:8786.",
)
@option(
    "--grace",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds in-flight items get to finish after Ctrl-C or SIGTERM.",
)
def process(**kwargs: Any) -> None:
    """Run a task over every input and write one JSON Lines record per item.

    PATH is a file or directory (walked depth-first, names in order); '-' reads paths from
    standard input. Every option can also be set as CRUNCH_<OPTION> in the environment.
    """
    from crunch._command import READER_GONE, run_process
    from crunch._command_options import ProcessOptions
    from crunch._streams import records_only, silence_stderr

    options = ProcessOptions(**kwargs)

    # Records alone on standard output: whatever the task, its --init or their child processes
    # write there goes to standard error, from before the task module is imported.
    with records_only() as stdout:
        try:
            status = run_process(options, stdout)
        except BrokenPipeError:  # the reader of standard error went away (`2>&1 | head`)
            status = READER_GONE
    if status == READER_GONE:  # nothing more is said: the last flush at exit must not fail
        silence_stderr()
    sys.exit(status)


@main.command(epilog="\b\nExample:\n  crunch tasks")
def tasks() -> None:
    """List the available tasks: what each does, whether it splits files and reduces."""
    from crunch._taskspec import all_tasks

    loaded, broken = all_tasks()
    rows = [
        (t.name, "yes" if t.splits else "no", "yes" if t.reduces else "no", t.summary)
        for t in loaded
    ]
    width = max((len(r[0]) for r in rows), default=4)
    click.echo(f"{'TASK':<{width}}  SPLITS  REDUCES  DESCRIPTION")
    for name, splits, reduces, summary in rows:
        click.echo(f"{name:<{width}}  {splits:<6}  {reduces:<7}  {summary}")
    for problem in broken:  # the others are listed; these are named, and the status says so
        click.echo(f"crunch: error: {problem}", err=True)
    if broken:
        sys.exit(2)


@main.command(
    epilog="""\b
Examples:
  crunch gen demo/ --kind mixed --files 50 --seed 1
  crunch gen big/ --kind text --files 1 --size 300MB   # one ~300 MB text file
"""
)
@click.argument("directory", type=click.Path(file_okay=False))
@option(
    "--kind",
    type=click.Choice(["text", "jsonl", "py", "mixed"]),
    default="mixed",
    show_default=True,
)
@option("--files", type=click.IntRange(min=1), default=10, show_default=True)
@option("--seed", type=int, default=0, show_default=True)
@option("--size", default="1MiB", show_default=True, help="Approximate total size (e.g. 4MiB).")
def gen(directory: str, kind: str, files: int, seed: int, size: str) -> None:
    """Write a deterministic synthetic data set (same seed, same bytes)."""
    from crunch._gen import generate
    from crunch._sizes import parse_size

    try:
        total = parse_size(size)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from exc
    try:
        paths = generate(directory, kind, files=files, seed=seed, size=total)
        written = sum(p.stat().st_size for p in paths)
    except OSError as exc:
        import os

        where = f" ({exc.filename})" if exc.filename and exc.filename != directory else ""
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        click.echo(f"crunch: error: {directory}: {reason}{where}", err=True)
        sys.exit(2)
    click.echo(f"wrote {len(paths)} files, {written:,} bytes, under {directory}", err=True)


@main.command(
    epilog="""\b
Examples:
  crunch bench data/ --task stats
  crunch bench data/ --task pyast --glob '**/*.py' --plot modes.png
"""
)
@click.argument("paths", nargs=-1, required=True)
@option("--task", "-t", "task_spec", default="stats", show_default=True)
@option("-O", "--option", "task_option_pairs", multiple=True, metavar="KEY=VALUE")
@option("--glob", "globs", multiple=True, metavar="PATTERN")
@option("--workers", "-j", type=int, help="Workers for the parallel modes [CPU count].")
@option(
    "--sample",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="How many inputs to time.",
)
@option(
    "--plot", "plot_file", type=click.Path(dir_okay=False), help="Also draw the result as a PNG."
)
def bench(**kwargs: Any) -> None:
    """Time your task on a sample of your inputs in each mode and name the fastest."""
    from crunch._command import run_bench
    from crunch._command_options import BenchOptions

    sys.exit(run_bench(BenchOptions(**kwargs)))


REPORT_EPILOG = """\b
Examples:
  crunch report out.jsonl                          # totals, failures, slowest, durations
  crunch report out.jsonl --plot report.png        # the same as pictures (crunch[plot])
  crunch report out.jsonl --format json > report.json
  crunch report out.jsonl --failed | crunch process - --task T -o rerun.jsonl
  crunch report out.jsonl --failed --null | crunch process - --null --task T

\b
Exit status: 0 every record ok; 1 some record failed or some line is not a whole
record (a torn last line, junk); 2 unreadable FILE, bad options, or no plot.
With --failed: 0 once FILE is read, 1 if some failed key could not be printed.
"""


@main.command(epilog=REPORT_EPILOG)
@click.argument("file", metavar="FILE.jsonl")
@option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A report for people, or one JSON document for scripts.",
)
@option("--failed", is_flag=True, help="Print only the failed items' keys, one a line.")
@option("--null", is_flag=True, help="With --failed: end each key with NUL, not a newline.")
@option("--plot", type=click.Path(dir_okay=False), help="Also draw the report as a PNG.")
@option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many slowest items to list, and failure groups to show in the text.",
)
@click.pass_context
def report(ctx: click.Context, **kwargs: Any) -> None:
    """Say what a results file holds: totals, failures grouped by kind, type and message,
    the slowest items and the distribution of seconds.

    FILE.jsonl is what `crunch process -o` wrote ('-' reads standard input); it is read in
    one streaming pass, so a run still being written can be reported too.
    """
    from crunch._report import run_report

    if not kwargs["failed"] and ctx.get_parameter_source("null") is ParameterSource.ENVIRONMENT:
        kwargs["null"] = False  # CRUNCH_NULL set for crunch process -: not a mistake here
    sys.exit(run_report(**kwargs))
