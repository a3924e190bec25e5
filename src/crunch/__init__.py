"""crunch: run a slow Python function over many inputs, in parallel, without losing an item.

    import crunch
    batch = crunch.run(fn, items, workers=8)          # -> BatchResult
    for r in crunch.imap(fn, items, workers=8): ...   # streaming, bounded memory
    async for r in crunch.amap(fn, items): ...        # the same, for async code
    crunch.imap(fn, crunch.jsonl("records.jsonl"))     # workers read and decode the lines

Importing crunch is nearly free: every public name is loaded when first used, so the engine,
pydantic, click, tqdm and dask load only for what a program does, and the ``crunch`` command
handles a Ctrl-C from its first milliseconds (see ``crunch._entry``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from crunch._api import amap, imap, run
    from crunch._config import RunConfig
    from crunch._exceptions import (
        ConfigError,
        CrunchError,
        DuplicateKeyError,
        ItemFailedError,
        MissingExtraError,
        RunInterrupted,
        SourceError,
        TaskNotImportableError,
        UsageError,
        WorkerStartError,
    )
    from crunch._results import BatchResult, Failure, InvalidItem, ItemResult
    from crunch._sources import files, jsonl

    __version__: str

__all__ = [
    "BatchResult",
    "ConfigError",
    "CrunchError",
    "DuplicateKeyError",
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

# Where each public name lives.
_HOMES = {
    "run": "_api",
    "imap": "_api",
    "amap": "_api",
    "RunConfig": "_config",
    "jsonl": "_sources",
    "files": "_sources",
    "BatchResult": "_results",
    "Failure": "_results",
    "InvalidItem": "_results",
    "ItemResult": "_results",
    **dict.fromkeys(
        (
            "ConfigError",
            "CrunchError",
            "DuplicateKeyError",
            "ItemFailedError",
            "MissingExtraError",
            "RunInterrupted",
            "SourceError",
            "TaskNotImportableError",
            "UsageError",
            "WorkerStartError",
        ),
        "_exceptions",
    ),
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: object = version("crunch")
        except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
            value = "0.0.0"
    elif name in _HOMES:
        from importlib import import_module

        value = getattr(import_module(f"crunch.{_HOMES[name]}"), name)
    else:
        raise AttributeError(f"module 'crunch' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
