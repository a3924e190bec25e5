"""Start process-mode workers without re-running the caller's ``__main__`` when they can.

A forkserver (or spawn) worker re-imports the parent's main script before it does anything,
so that functions defined there can be unpickled. When neither the task, its initializer nor
the items mention ``__main__``, that import is pure cost, paid by every worker of every run: a
script importing pandas or pytest at the top costs seconds per run. multiprocessing offers no
switch for it, so while *crunch's own thread* starts workers (``without_main()``), we drop the
two keys of the preparation data that ask for it. Every other use of multiprocessing in the
process, and crunch's when ``__main__`` is needed, goes through unchanged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator
from multiprocessing import spawn
from typing import Any

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_local = threading.local()
_original = spawn.get_preparation_data
_installed = False
_install_lock = threading.Lock()


def _preparation_data(name: str) -> dict[str, Any]:
    data = _original(name)
    if getattr(_local, "skip_main", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def mentions_main(pickled: bytes) -> bool:
    """Whether unpickling ``pickled`` may need the ``__main__`` module."""
    return b"__main__" in pickled


@contextlib.contextmanager
def without_main(skip: bool) -> Generator[None]:
    """Workers started by this thread inside the block skip ``__main__`` when ``skip``."""
    global _installed
    if not skip:
        yield
        return
    if not _installed:
        with _install_lock:
            if spawn.get_preparation_data is _original:
                spawn.get_preparation_data = _preparation_data  # ty: ignore[invalid-assignment]
            _installed = True
    _local.skip_main = True
    try:
        yield
    finally:
        _local.skip_main = False
