"""What a run produces: one ``ItemResult`` per item, ``Failure`` for the failed ones, and the
``BatchResult`` that ``crunch.run`` collects them into.

Records are built cheaply because the parent creates one per item: at 10 us per item that cost
is part of the run's speed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from crunch._exceptions import ItemFailedError

FailureKind = Literal["error", "timeout", "crash", "memory"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one item failed. ``kind`` is ``error`` (it raised), ``timeout``, ``crash`` (it killed
    its worker) or ``memory`` (it took its worker past ``max_memory``)."""

    kind: FailureKind
    type: str
    message: str
    traceback: str = ""
    attempts: int = 1

    def __str__(self) -> str:
        return f"{self.kind}: {self.type}: {self.message}"

    def as_record(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
        }


RECORD_START = b'{"item":'
"""How every record line begins: ``as_record`` puts ``item`` first, and the line is compact."""


class ItemResult(NamedTuple):
    """The outcome of one item: ``value`` when ``ok``, else ``error`` (a ``Failure``).

    A named tuple, so the engine can build a chunk's worth of them in C: it maps
    ``tuple.__new__`` bound to this class over zipped columns (``_batches._make_result``),
    without ``_make``'s Python frame. At 10 us per item that cost is part of the speed.
    """

    key: Any
    ok: bool
    value: Any
    error: Failure | None
    seconds: float
    attempts: int

    def as_record(self) -> dict[str, Any]:
        """The JSON Lines record (README, "The command": Output), before serialisation."""
        if self.ok:
            return {
                "item": self.key,
                "ok": True,
                "value": self.value,
                "seconds": round(self.seconds, 6),
                "attempts": self.attempts,
            }
        assert self.error is not None
        return {
            "item": self.key,
            "ok": False,
            "error": self.error.as_record(),
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class InvalidItem:
    """An input that was broken before any task could see it (a malformed ``--jsonl`` line).

    A source yields it in place of the item; the run records it as a failed item of kind
    ``error`` with this ``type`` and ``message``, without calling the task.
    """

    type: str
    message: str


@dataclass(slots=True)
class BatchResult:
    """Everything ``crunch.run`` collected: values by key, failures by key, and counts."""

    succeeded: dict[Any, Any] = field(default_factory=dict)
    failed: dict[Any, Failure] = field(default_factory=dict)
    not_run: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every item that ran succeeded and none was left unrun."""
        return not self.failed and self.not_run == 0

    def failures_by_kind(self) -> Counter[str]:
        return Counter(f.kind for f in self.failed.values())

    def raise_for_failures(self) -> None:
        """Raise an ``ExceptionGroup`` of ``ItemFailedError``, one per failed item."""
        if self.failed:
            errors = [ItemFailedError(key, failure) for key, failure in self.failed.items()]
            raise ExceptionGroup(f"{len(errors)} of {len(self)} items failed", errors)

    def __len__(self) -> int:
        return len(self.succeeded) + len(self.failed)
