"""How a dask worker died, for the ``crash`` record of the item that killed it.

Dask does not report how a worker died: ``KilledWorker`` names the task and the last worker
that died running it (its address and pid), never an exit code or a signal. Those are known
only to the worker's nanny, which logs them (``Worker process 1234 was killed by signal 11``)
on the ``distributed.nanny`` logger.

- A local cluster (no ``--scheduler``): its nannies run in crunch's own process, so a filter on
  that logger (``watch_local_nannies``) notes each death message by pid, letting everything
  through as before. The record then says what process mode says (``worker killed by SIGSEGV
  (segmentation fault)``). The messages are logged at level INFO, which Dask's default logging
  configuration keeps; with a quieter one there is nothing to note.
- The local cluster's workers each lead a process group of their own (``crunch._backends.dask``):
  when a death is noted, what is left of that group (child processes its tasks started) is
  killed.
- A cluster of your own: the nannies are elsewhere. The record names the last worker that
  died (address and pid) and says where to look: that nanny's log.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from crunch._backends._groups import kill_leftovers
from crunch._failures import ItemFailure

_NANNY_LOGGER = "distributed.nanny"
_DEATH = re.compile(
    r"Worker process (\d+) (?:was killed by signal (\d+)|exited with status (-?\d+)|"
    r"was killed by (unknown) signal)"
)
_KEPT = 1000  # deaths remembered (a run with more dead workers has other problems)
WAIT = 1.0  # seconds to wait for the nanny's word after the scheduler's


class _Deaths(logging.Filter):
    """Notes the nanny's death messages by pid; filters nothing out."""

    def __init__(self) -> None:
        super().__init__()
        self.exitcodes: dict[int, int | None] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            found = _DEATH.match(record.getMessage())
        except Exception:  # noqa: BLE001 - someone else's record: never break their logging
            return True
        if found is not None:
            pid, signum, status, unknown = found.groups()
            code = -int(signum) if signum else int(status) if status else None
            if unknown:
                code = None
            if len(self.exitcodes) >= _KEPT:
                self.exitcodes.pop(next(iter(self.exitcodes)))
            self.exitcodes[int(pid)] = code
            # The worker led a process group of its own: what its tasks left running goes too.
            kill_leftovers([int(pid)])
        return True


_WATCH = _Deaths()


def watch_local_nannies() -> None:
    """Start noting the deaths that nannies in this process log (idempotent)."""
    logger = logging.getLogger(_NANNY_LOGGER)
    if _WATCH not in logger.filters:
        logger.addFilter(_WATCH)


async def death_reason(killed: Exception, *, local: bool) -> str:
    """What the record of the item behind ``killed`` (a ``KilledWorker``) can say about how its
    last worker died."""
    worker: Any = getattr(killed, "last_worker", None)
    address = getattr(worker, "address", None) or "a worker"
    pid = getattr(worker, "pid", None)
    if local and pid:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while pid not in _WATCH.exitcodes and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if pid in _WATCH.exitcodes:
            return f"the last: {ItemFailure.crash(_WATCH.exitcodes[pid]).message}"
        return f"the last to die was pid {pid}; its nanny did not log how it died"
    who = f"{address} (pid {pid})" if pid else address
    return (
        f"the last to die was {who}; dask does not report how its workers die: that worker's "
        'nanny log says ("Worker process ... was killed by signal ...")'
    )
