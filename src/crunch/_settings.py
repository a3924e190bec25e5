"""``Settings``: the options of a run as the engine reads them, without pydantic.

``crunch.RunConfig`` (a pydantic model, ``_config.py``) is what validates the options a user
gives, library and command alike, and says what is wrong with them. The engine only reads the
values, so it takes this frozen copy of them (``Settings.of(config)``). Loading pydantic and
building the model costs a command more than the rest of a one-file run, so the command takes
a shortcut for options that are plainly valid: ``from_command`` checks the values click has
already typed, and returns ``None`` as soon as one of them is not plainly valid, leaving the
verdict and its messages to ``RunConfig``. It only ever accepts options that ``RunConfig``
accepts, with the same values (a test holds the two together).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from crunch._modes import MODES

Mode = Literal["sync", "thread", "async", "process", "dask"]  # MODES, for the type checker

DEFAULT_RETRY_ON: tuple[str, ...] = ("ConnectionError", "TimeoutError", "BlockingIOError")

# The per-item limit, in seconds. Below the minimum the watchdog (which looks every
# timeout / 4 seconds) would spin, and a limit shorter than one scheduling slice of a busy
# machine is not a limit; above the maximum the soft timer of a worker overflows. No limit:
# leave the option out.
MIN_TIMEOUT = 0.01
MAX_TIMEOUT = 1_000_000.0
MAX_WORKERS = 4096
MAX_RETRIES = 100


def default_workers() -> int:
    """The CPU count this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every option of a run, valid (``RunConfig`` documents each one)."""

    mode: Mode = "process"
    workers: int = field(default_factory=default_workers)
    chunk_size: int | Literal["auto"] = "auto"
    timeout: float | None = None
    retries: int = 0
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    backoff: float = 0.1
    max_failures: int | None = None
    ordered: bool = False
    progress: bool = False
    grace: float = 5.0
    scheduler: str | None = None
    max_memory: int | None = None

    @classmethod
    def of(cls, config: Any) -> Settings:
        """The values of a validated ``RunConfig``."""
        return cls(**{name: getattr(config, name) for name in FIELDS})


FIELDS = tuple(f.name for f in fields(Settings))


def from_command(options: dict[str, Any]) -> Settings | None:
    """``Settings`` for the command's ``options`` (as click typed them) when every one is
    plainly valid; ``None`` when one is not, or is one this check leaves to ``RunConfig``."""
    if not set(options) <= set(FIELDS):
        return None
    values = dict(options)
    if "mode" in values and values["mode"] not in MODES:
        return None
    checks = (
        ("workers", _count(1, MAX_WORKERS)),
        ("chunk_size", _chunk_size),
        ("timeout", _timeout),
        ("retries", _count(0, MAX_RETRIES)),
        ("retry_on", _retry_on),
        ("max_failures", _optional(_count(1, None))),
        ("ordered", _flag),
        ("grace", _at_least_zero),
        ("scheduler", _scheduler),
        ("max_memory", _max_memory),
    )
    for name, check in checks:
        if name in values:
            value = check(values[name])
            if value is _INVALID:
                return None
            values[name] = value
    settings = Settings(**values)
    if settings.scheduler is not None and settings.mode != "dask":
        return None
    if settings.max_memory is not None and memory_problems(settings):
        return None
    return settings


def memory_problems(config: Any) -> list[str]:
    """Where ``max_memory`` cannot be honoured (README, "Modes")."""
    from crunch._memory import supported

    if config.mode in ("sync", "thread", "async"):
        return [
            f"max_memory: mode {config.mode!r} runs every item inside crunch's own process, "
            "where one item's memory cannot be capped without stopping the run: use "
            "mode='process' (or 'dask')"
        ]
    if config.mode == "dask" and config.scheduler:
        return [
            "max_memory: the workers of an existing dask cluster have the memory limit they "
            "were started with (dask worker --memory-limit), which crunch cannot change; "
            "leave max_memory out (crunch reports dask's memory restarts as kind memory)"
        ]
    if not supported():
        return ["max_memory: needs Linux (a worker's memory is read from /proc)"]
    return []


_INVALID: Any = object()


def _count(low: int, high: int | None) -> Any:
    def check(value: Any) -> Any:
        if type(value) is not int or value < low or (high is not None and value > high):
            return _INVALID
        return value

    return check


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _flag(value: Any) -> Any:
    return value if type(value) is bool else _INVALID


def _at_least_zero(value: Any) -> Any:
    return value if type(value) is float and value >= 0 else _INVALID


def _chunk_size(value: Any) -> Any:
    if value == "auto":
        return value
    if type(value) is not str:
        return _INVALID
    if not value.strip().isdigit():
        return _INVALID
    try:
        size = int(value)
    except ValueError:  # a digit int() does not read, such as "²"
        return _INVALID
    return size if size >= 1 else _INVALID


def _timeout(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not float or not math.isfinite(value):
        return _INVALID
    return value if MIN_TIMEOUT <= value <= MAX_TIMEOUT else _INVALID


def _retry_on(value: Any) -> Any:
    # Only builtin names: a dotted name imports its module, which RunConfig then does.
    if type(value) is not tuple or not all(
        type(name) is str and name and "." not in name for name in value
    ):
        return _INVALID
    from crunch._retry import resolve_retry_on

    try:
        return resolve_retry_on(value)
    except ValueError:
        return _INVALID


def _scheduler(value: Any) -> Any:
    if value is None:
        return None
    return value if type(value) is str and "://" in value else _INVALID


def _max_memory(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        return _INVALID
    from crunch._sizes import parse_size

    try:
        size = parse_size(value)
    except ValueError:
        return _INVALID
    return size if size >= 1 else _INVALID
