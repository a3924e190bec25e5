"""crunch: run a slow Python function over many inputs, in parallel, without losing an item.

    import crunch
    batch = crunch.run(fn, items, workers=8)          # -> BatchResult
    for r in crunch.imap(fn, items, workers=8): ...   # streaming, bounded memory
    async for r in crunch.amap(fn, items): ...        # the same, for async code
    crunch.imap(fn, crunch.jsonl("records.jsonl"))     # workers read and decode the lines

Importing crunch stays light: the engine, pydantic, click, tqdm and dask load when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crunch.api import amap, imap, run
from crunch.exceptions import (
    ConfigError,
    CrunchError,
    ItemFailedError,
    MissingExtraError,
    RunInterrupted,
    SourceError,
    TaskNotImportableError,
    UsageError,
    WorkerStartError,
)
from crunch.results import BatchResult, Failure, InvalidItem, ItemResult

if TYPE_CHECKING:
    from crunch.config import RunConfig
    from crunch.sources import files, jsonl


__all__ = [
    "BatchResult",
    "ConfigError",
    "CrunchError",
    "Failure",
    "InvalidItem",
    "ItemFailedError",
    "ItemResult",
    "MissingExtraError",
    "RunConfig",
    "RunInterrupted",
    "SourceError",
    "TaskNotImportableError",
    "UsageError",
    "WorkerStartError",
    "__version__",
    "amap",
    "files",
    "imap",
    "jsonl",
    "run",
]


def __getattr__(name: str) -> Any:
    # importlib.metadata costs more to import than most of crunch: read the version on demand.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("crunch")
        except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
            return "0.0.0"
    # RunConfig pulls in pydantic, the sources orjson and re; load them only when asked for.
    if name == "RunConfig":
        from crunch.config import RunConfig

        return RunConfig
    if name in ("jsonl", "files"):
        from crunch import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'crunch' has no attribute {name!r}")
