"""``RunConfig``: every run option, validated once, for the library and the CLI alike.

Both faces build one ``RunConfig``; invalid values raise ``ConfigError`` listing every problem
at once (pydantic collects them; we turn them into sentences that name the option).
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crunch.exceptions import ConfigError

Mode = Literal["sync", "thread", "async", "process", "dask"]
MODES: tuple[str, ...] = ("sync", "thread", "async", "process", "dask")

DEFAULT_RETRY_ON: tuple[str, ...] = ("ConnectionError", "TimeoutError", "BlockingIOError")
# Validation errors say the *input* is wrong; running it again cannot help (README,
# "The command": Execution).
NEVER_RETRIED: frozenset[str] = frozenset(
    {"ValueError", "TypeError", "KeyError", "IndexError", "AttributeError", "UnicodeError"}
)


def default_workers() -> int:
    """The CPU count this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class RunConfig(BaseModel):
    """Every option of a run. Field descriptions double as the documentation of the options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field("process", description="sync | thread | async | process | dask")
    workers: int = Field(default_factory=default_workers, ge=1, le=4096)
    chunk_size: int | Literal["auto"] = Field("auto", description="items per chunk, or auto")
    timeout: float | None = Field(None, gt=0, description="per-item limit in seconds")
    retries: int = Field(0, ge=0, le=100)
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    backoff: float = Field(0.1, ge=0, description="first retry delay in seconds (then doubled)")
    max_failures: int | None = Field(None, ge=1)
    ordered: bool = False
    progress: bool = False
    grace: float = Field(5.0, ge=0, description="seconds in-flight items get after SIGINT/TERM")
    scheduler: str | None = Field(None, description="dask scheduler address (mode dask)")

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _chunk_size(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            if value.strip().isdigit():
                value = int(value)
            else:
                raise ValueError(f"must be a positive whole number or 'auto', got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @field_validator("retry_on", mode="before")
    @classmethod
    def _retry_on(cls, value: Any) -> Any:
        names = (value,) if isinstance(value, str) else tuple(value)
        bad = sorted(n for n in names if n in NEVER_RETRIED)
        if bad:
            raise ValueError(
                f"{', '.join(bad)} never retried: a validation error fails the same way again"
            )
        return names

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"must be an address like tcp://HOST:PORT, got {value!r}")
        return value

    @classmethod
    def build(cls, **options: Any) -> RunConfig:
        """Validate ``options``; on any problem raise ``ConfigError`` listing all of them."""
        unknown = sorted(set(options) - set(cls.model_fields))
        problems = [_unknown_option(name) for name in unknown]
        known = {k: v for k, v in options.items() if k in cls.model_fields}
        try:
            config = cls(**known)
        except ValidationError as exc:
            problems.extend(_describe(error) for error in exc.errors())
            config = None
        if config is not None and config.scheduler and config.mode != "dask":
            problems.append("scheduler: only used with mode='dask'")
        if problems or config is None:
            raise ConfigError(problems)
        return config


def _unknown_option(name: str) -> str:
    close = difflib.get_close_matches(name, list(RunConfig.model_fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name}: unknown option{hint}"


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or "options"
    # Union members add their own loc segment (e.g. chunk_size.int); keep the field name.
    field = where.split(".")[0]
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] == "literal_error" and field == "mode":
        message = f"must be one of {', '.join(MODES)}"
    return f"{field}: {message} (got {got!r})" if "got" not in message else f"{field}: {message}"
