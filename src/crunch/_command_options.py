"""What ``crunch process`` and ``crunch bench`` were asked: one typed, frozen record per command.

Click parses the command line (and the ``CRUNCH_<OPTION>`` variables) into keyword arguments;
``_cli.py`` turns them into one of these records once, and ``crunch._command`` reads its fields,
never a dict of strings. Each field is named after what it holds, and is the keyword click
gives it (the ``dest`` of its option), so ``ProcessOptions(**kwargs)`` builds it. The values are
as given: checking them, and every message about them, is ``crunch._command``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessOptions:
    """The options of ``crunch process`` (``crunch process --help`` says what each one does)."""

    # What to read
    paths: tuple[str, ...]  # PATH... ('-': paths on standard input)
    jsonl_file: str | None  # --jsonl FILE ('-': standard input)
    key_field: str | None  # --key FIELD
    null_separated: bool  # --null: paths on standard input end with NUL
    globs: tuple[str, ...]  # --glob PATTERN...
    excludes: tuple[str, ...]  # --exclude PATTERN...
    hidden: bool  # --hidden
    follow_symlinks: bool  # --follow-symlinks
    # What to run
    task_spec: str  # --task: a name, module:function or file.py:function
    task_option_pairs: tuple[str, ...]  # -O KEY=VALUE..., not parsed yet
    init_spec: str | None  # --init MODULE:FUNCTION
    split_size: str  # --split-size SIZE, not parsed yet
    reduce: bool  # --reduce
    # How to run it (the fields of crunch.RunConfig, see ``run_settings``)
    mode: str
    workers: int | None  # None: the CPU count
    chunk_size: str
    timeout: float | None
    max_memory: str | None
    retries: int
    retry_on: tuple[str, ...]  # empty: RunConfig's default
    max_failures: int | None
    fail_fast: bool  # --fail-fast: the same as --max-failures 1
    ordered: bool
    grace: float
    dask_scheduler: str | None  # --scheduler ADDRESS
    # Where the records go, and what is said on standard error
    output_file: str | None  # -o FILE
    resume: bool  # --resume
    progress: (
        bool | None
    )  # --progress/--no-progress; None: as crunch._progress.open_progress decides
    log_format: str  # console | json
    log_level: str

    @property
    def input_files(self) -> list[str]:
        """The PATHs and the --jsonl FILE, as given ('-' included)."""
        return [*self.paths, *([self.jsonl_file] if self.jsonl_file else [])]

    @property
    def reads_stdin(self) -> bool:
        """Is standard input one of the inputs (``-`` as a PATH, or ``--jsonl -``)?"""
        return "-" in self.input_files

    def run_settings(self) -> dict[str, Any]:
        """The ``crunch.RunConfig`` fields these options ask for (what is not asked keeps its
        default)."""
        settings: dict[str, Any] = {
            "mode": self.mode,
            "chunk_size": self.chunk_size,
            "timeout": self.timeout,
            "retries": self.retries,
            "max_failures": 1 if self.fail_fast else self.max_failures,
            "ordered": self.ordered or self.reduce,  # --reduce merges in input order
            "grace": self.grace,
            "scheduler": self.dask_scheduler,
            "max_memory": self.max_memory,
        }
        if self.workers is not None:
            settings["workers"] = self.workers
        if self.retry_on:
            settings["retry_on"] = self.retry_on
        return settings


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """The options of ``crunch bench``."""

    paths: tuple[str, ...]  # PATH...: the inputs to sample
    task_spec: str  # --task
    task_option_pairs: tuple[str, ...]  # -O KEY=VALUE..., not parsed yet
    globs: tuple[str, ...]  # --glob PATTERN...
    workers: int | None  # None: the CPU count
    sample: int  # --sample N: how many inputs to time
    plot_file: str | None  # --plot FILE.png
