"""Durations on a log scale in fixed memory, the percentiles read from them, and their wording.

``LogHistogram`` counts values (seconds) in 40 buckets per decade from 1 µs to 10^7 s, plus one
bucket for values under 1 µs (records round seconds to the microsecond, so that is 0) and one
for values at or past 10^7 s: 522 counters, whatever the number of values. The count, sum,
minimum and maximum are kept exactly.

Percentiles are read from the buckets by nearest rank (the ``q``-quantile is the value of rank
``ceil(q * n)`` in sorted order): the geometric middle of the bucket holding that rank, kept
within the exact minimum and maximum. A bucket spans a factor of ``10 ** (1 / 40)``, so a
percentile is within 3 % of the exact value (values under 1 µs read as 0); the first and last
ranks are the exact minimum and maximum.

``rows()`` merges the buckets into coarser rows for a text histogram (2 per decade: 1 µs,
3.2 µs, 10 µs, ...), and ``duration()`` writes a number of seconds in the unit that reads best.
"""

from __future__ import annotations

import math

PER_DECADE = 40
LOW_EXPONENT = -6  # the first bucket starts at 10**-6 s
DECADES = 13  # up to 10**7 s
ROWS_PER_DECADE = 2

_SCALED = PER_DECADE * DECADES  # buckets 1.._SCALED; 0 is under 1 µs, _SCALED + 1 is overflow


def _edge(index: float, per_decade: int = PER_DECADE) -> float:
    return 10.0 ** (LOW_EXPONENT + index / per_decade)


class LogHistogram:
    """Counts of durations in fixed log-scale buckets (see the module docstring)."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * (_SCALED + 2)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, seconds: float) -> None:
        """Count one duration (a finite number of seconds, not negative)."""
        if seconds < 1e-6:
            index = 0
        else:
            # The tiny bias puts a value that sits exactly on an edge (1 ms) in the bucket it opens.
            index = 1 + int((math.log10(seconds) - LOW_EXPONENT) * PER_DECADE + 1e-9)
            if index > _SCALED:
                index = _SCALED + 1
        self.counts[index] += 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:  # noqa: PLR1730 - a comparison is cheaper than a call, per record
            self.min = seconds
        if seconds > self.max:  # noqa: PLR1730
            self.max = seconds

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 < q <= 1) by nearest rank, from the buckets (None if empty)."""
        if not self.count:
            return None
        if q >= 1:
            return self.max
        rank = max(1, math.ceil(q * self.count))
        if rank == self.count:
            return self.max
        if rank == 1:
            return self.min
        index = self._bucket_of_rank(rank)
        if index == 0:
            value = 0.0
        elif index > _SCALED:
            value = self.max
        else:
            value = _edge(index - 1 + 0.5)  # the bucket's geometric middle
        return min(max(value, self.min), self.max)

    def _bucket_of_rank(self, rank: int) -> int:
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return index
        return len(self.counts) - 1

    def percentiles(self) -> dict[str, float | None]:
        return {
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
            "max": self.max if self.count else None,
        }

    def rows(self) -> list[tuple[float, float, int]]:
        """``(from, to, count)`` rows of ``ROWS_PER_DECADE`` per decade, from the first row that
        holds a value to the last (empty rows between them kept, so the shape shows). Values
        under 1 µs are the row ``(0, 1e-6)``; values past the top, ``(1e7, inf)``."""
        step = PER_DECADE // ROWS_PER_DECADE
        rows: list[tuple[float, float, int]] = [(0.0, 1e-6, self.counts[0])]
        for row in range(DECADES * ROWS_PER_DECADE):
            start = 1 + row * step
            rows.append(
                (
                    _edge(row, ROWS_PER_DECADE),
                    _edge(row + 1, ROWS_PER_DECADE),
                    sum(self.counts[start : start + step]),
                )
            )
        rows.append((_edge(DECADES * ROWS_PER_DECADE, ROWS_PER_DECADE), math.inf, self.counts[-1]))
        held = [i for i, (_, _, n) in enumerate(rows) if n]
        return rows[held[0] : held[-1] + 1] if held else []

    def fine_rows(self, per_decade: int = 10) -> list[tuple[float, float, int]]:
        """``(from, to, count)`` of every non-empty bucket of width 1/``per_decade`` decade at or
        above 1 µs (for a plot on a log axis; values under 1 µs are ``counts[0]``)."""
        step = PER_DECADE // per_decade
        rows = []
        for row in range(DECADES * per_decade):
            start = 1 + row * step
            n = sum(self.counts[start : start + step])
            if n:
                rows.append((_edge(row, per_decade), _edge(row + 1, per_decade), n))
        return rows


def duration(seconds: float | None, digits: int = 3) -> str:
    """``seconds`` in s, ms or µs, to ``digits`` significant digits: 0.000123 -> '123 µs'."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "inf"
    if seconds <= 0:
        return "0 s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        value = float(f"{seconds / scale:.{digits}g}")
        if value >= 1 or unit == "µs":
            if value >= 10**digits:
                return f"{value:,.0f} {unit}"
            return f"{value:g} {unit}"
    raise AssertionError("unreachable")
