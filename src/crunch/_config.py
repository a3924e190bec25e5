"""``RunConfig``: every run option, validated once, for the library and the CLI alike.

Both faces validate with ``RunConfig``; invalid values raise ``ConfigError`` listing every
problem at once (pydantic collects them; we turn them into sentences that name the option). The
engine reads a plain copy of the values (``crunch._settings.Settings``); the command builds that
copy directly when its options are plainly valid, so a run need not load pydantic.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crunch._exceptions import ConfigError
from crunch._settings import (
    DEFAULT_RETRY_ON,
    MAX_RETRIES,
    MAX_TIMEOUT,
    MAX_WORKERS,
    MIN_TIMEOUT,
    MODES,
    Mode,
    default_workers,
    memory_problems,
)


class RunConfig(BaseModel):
    """Every option of a run. Field descriptions double as the documentation of the options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field("process", description="sync | thread | async | process | dask")
    workers: int = Field(default_factory=default_workers, ge=1, le=MAX_WORKERS)
    chunk_size: int | Literal["auto"] = Field("auto", description="items per chunk, or auto")
    timeout: float | None = Field(None, description="per-item limit in seconds")
    retries: int = Field(0, ge=0, le=MAX_RETRIES)
    retry_on: tuple[str, ...] = Field(
        DEFAULT_RETRY_ON,
        description="exception classes, or their names (builtins bare, others module.Name)",
    )
    backoff: float = Field(0.1, ge=0, description="first retry delay in seconds (then doubled)")
    max_failures: int | None = Field(None, ge=1)
    ordered: bool = False
    progress: bool = False
    grace: float = Field(5.0, ge=0, description="seconds in-flight items get after SIGINT/TERM")
    scheduler: str | None = Field(None, description="dask scheduler address (mode dask)")
    max_memory: int | None = Field(
        None, description="memory cap per worker in bytes, or a size such as '2GiB'"
    )

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

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value  # None, or pydantic's own error for what is not a number
        if not math.isfinite(value):
            raise ValueError(
                f"must be a finite number of seconds, got {value!r}; leave it out for no limit"
            )
        if value < MIN_TIMEOUT:
            raise ValueError(
                f"must be at least {MIN_TIMEOUT:g} seconds, got {value!r}: a shorter limit "
                "cannot be enforced"
            )
        if value > MAX_TIMEOUT:
            raise ValueError(
                f"must be at most {MAX_TIMEOUT:,.0f} seconds (11.6 days), got {value!r}; "
                "leave it out for no limit"
            )
        return value

    @field_validator("retry_on", mode="before")
    @classmethod
    def _retry_on(cls, value: Any) -> Any:
        from crunch._retry import resolve_retry_on

        return resolve_retry_on(value)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _max_memory(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value  # None, or pydantic's own error
        if isinstance(value, (str, int)):
            from crunch._sizes import parse_size

            value = parse_size(value)  # ValueError names what it could not read
            if value < 1:
                raise ValueError("must be at least 1 byte")
        return value

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
            for error in exc.errors():
                problems.extend(_describe(error))
            config = None
        if config is not None and config.scheduler and config.mode != "dask":
            problems.append("scheduler: only used with mode='dask'")
        if config is not None and config.max_memory is not None:
            problems.extend(memory_problems(config))
        if problems or config is None:
            raise ConfigError(problems)
        return config


def _unknown_option(name: str) -> str:
    close = difflib.get_close_matches(name, list(RunConfig.model_fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name}: unknown option{hint}"


def _describe(error: Any) -> list[str]:
    """One sentence per problem in pydantic's ``error`` (a validator may report several, one a
    line), each naming the option."""
    where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or "options"
    # Union members add their own loc segment (e.g. chunk_size.int); keep the field name.
    field = where.split(".")[0]
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] == "literal_error" and field == "mode":
        message = f"must be one of {', '.join(MODES)}"
    if field == "retry_on":  # its messages name what is wrong already
        return [f"{field}: {line}" for line in message.splitlines()]
    return [f"{field}: {message} (got {got!r})" if "got" not in message else f"{field}: {message}"]
