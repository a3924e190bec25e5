"""Counting a run's records, and the words that say what they add up to.

One piece, shared by the end-of-run summary of ``crunch process`` (``_output.Summary``) and by
``crunch report`` (``_report``), so that the two never disagree about the same records. It is
fed counts and failures, not result objects, so whatever carries the records (results in the
parent, encoded chunks, lines read back from a file) can feed it::

    tally.add_ok(n, retried=r)        n ok records, r of them took more than one attempt
    tally.add_failure(key, kind, type, message, attempts)
    tally.counts()                    "ok 9, failed 3 (crash 1, error 2), retried 2"
    tally.first_failures()            the first few failures, one line each

``printable`` and ``shown_key`` make a key or message safe to print: a name that is not valid
UTF-8 reaches a record as surrogate escapes (``os.fsencode(key)`` gives its bytes back), which
a strict UTF-8 stream refuses; they are shown as ``\\xNN`` instead.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def printable(text: str) -> str:
    """``text`` as it can be written to any UTF-8 stream: undecodable bytes shown as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown_key(key: Any) -> str:
    """An item key as a person reads it: a path as it is, a line number in decimal."""
    return printable(key) if isinstance(key, str) else str(key)


def first_line(message: str) -> str:
    """The first line of a failure message that says anything ('' for an empty message)."""
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return ""


class Tally:
    """Counts of ok and failed records (failed by kind), retried ones, and the first failures."""

    SHOWN_FAILURES = 5

    def __init__(self) -> None:
        self.ok = 0
        self.kinds: Counter[str] = Counter()
        self.retried = 0
        self.first: list[tuple[Any, str, str, str]] = []  # (key, kind, type, message)

    @property
    def failed(self) -> int:
        return sum(self.kinds.values())

    @property
    def records(self) -> int:
        return self.ok + self.failed

    def add_ok(self, n: int = 1, *, retried: int = 0) -> None:
        """Count ``n`` ok records, ``retried`` of which took more than one attempt."""
        self.ok += n
        self.retried += retried

    def add_failure(self, key: Any, kind: str, type_: str, message: str, attempts: int = 1) -> None:
        """Count one failed record."""
        self.kinds[kind] += 1
        if attempts > 1:
            self.retried += 1
        if len(self.first) < self.SHOWN_FAILURES:
            self.first.append((key, kind, type_, message))

    def counts(self) -> str:
        """``ok A, failed B (kind n, ...)``, then ``, retried C`` when some record was retried."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        text = f"ok {self.ok}, failed {self.failed}" + (f" ({kinds})" if kinds else "")
        if self.retried:
            text += f", retried {self.retried}"
        return text

    def first_failures(self, indent: str = "    ") -> list[str]:
        """One line per failure counted first: ``KEY: KIND: TYPE: first line of the message``."""
        return [
            f"{indent}{shown_key(key)}: {kind}: {type_}: {printable(first_line(message))}"[:300]
            for key, kind, type_, message in self.first
        ]

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain data (for JSON)."""
        return {
            "records": self.records,
            "ok": self.ok,
            "failed": self.failed,
            "failed_by_kind": dict(sorted(self.kinds.items())),
            "retried": self.retried,
        }
