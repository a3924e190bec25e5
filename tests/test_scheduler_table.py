"""The scheduler's bookkeeping, case by case, over a scripted backend (no processes, fast).

A backend tells the scheduler how each chunk went: whole (a ``UnitOutcome``) or not (``Lost``:
items blamed, items to run again, suspects to isolate). ``Scripted`` answers from a script
that looks at the chunk's items, so each row of ``CASES`` states what a backend reports and
what the records must then be: which items end ok (with which value and attempts), which fail
(kind, type, attempts), how many are not run, and any other fact of the run.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from crunch._backends import Backend, Lost
from crunch._config import RunConfig
from crunch._engine import Scheduler
from crunch._exceptions import RunInterrupted
from crunch._failures import ItemFailure
from crunch._redo import SUSPECT_LIMIT
from crunch._runner import FailedItem, UnitOutcome

Outcome = UnitOutcome
Script = Callable[["Scripted", list[Any]], "Outcome | Lost"]


class Scripted(Backend):
    """A backend whose chunks end as ``script`` says, after ``delay(items)`` seconds."""

    lanes = 2
    min_chunk_seconds = 0.0

    def __init__(self, script: Script, delay: Callable[[list[Any]], float]) -> None:
        self.script = script
        self.delay = delay
        self.chunks: list[list[Any]] = []  # every chunk submitted, in order
        self.halted = False
        self.closed: bool | None = None  # close(kill=...) once closed
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()

    def submit(
        self, chunk_id: int, unit: Any, attempts: list[int] | None
    ) -> asyncio.Future[Outcome | Lost]:
        assert self.loop is not None
        future: asyncio.Future[Outcome | Lost] = self.loop.create_future()
        items = unit.items
        self.chunks.append(list(items))
        result = self.script(self, list(items))
        self.loop.call_later(self.delay(items), _resolve, future, result)
        return future

    def halt(self) -> None:
        self.halted = True

    async def close(self, *, kill: bool) -> None:
        self.closed = kill

    def times_run(self, item: Any) -> int:
        return sum(chunk.count(item) for chunk in self.chunks)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def ok_outcome(items: list[Any], failures: dict[int, ItemFailure] | None = None) -> Outcome:
    """What a worker reports when ``items`` ran: the square of each int, ``failures`` failed."""
    values = [x * x if isinstance(x, int) else None for x in items]
    failed = {i: FailedItem(None, f, 0.001) for i, f in (failures or {}).items()} or None
    seconds = [0.001] * len(items)
    return UnitOutcome(len(items), sum(seconds), failed, None, None, values, seconds, None)


def _error(type_: str, *names: str) -> ItemFailure:
    return ItemFailure("error", type_, f"{type_} raised", "", (type_, *names))


# ----------------------------------------------------------------------------- the scripts
def all_ok(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    return ok_outcome(items)


def crash_blamed(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """An item "boom" kills its worker: it is blamed; its chunk-mates are lost, not failed."""
    if "boom" not in items:
        return ok_outcome(items)
    bad = items.index("boom")
    rerun = [i for i in range(len(items)) if i != bad]
    return Lost(rerun=rerun, blamed={bad: (ItemFailure.crash(-11), 0.5)})


def memory_blamed(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """An item "hog" went past the memory cap: kind memory, never retried."""
    if "hog" not in items:
        return ok_outcome(items)
    bad = items.index("hog")
    rerun = [i for i in range(len(items)) if i != bad]
    return Lost(rerun=rerun, blamed={bad: (ItemFailure.memory(400 << 20, 300 << 20), 0.5)})


def lost_once(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """The first chunk that holds item 7 is lost whole (a bystander of someone's crash)."""
    if 7 in items and backend.times_run(7) == 1:
        return Lost(rerun=range(len(items)))
    return ok_outcome(items)


def salvaged(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """An item "hang" times out: the items before it are salvaged, the ones after it rerun."""
    if "hang" not in items:
        return ok_outcome(items)
    bad = items.index("hang")
    return Lost(
        rerun=range(bad + 1, len(items)),
        blamed={bad: (ItemFailure.timeout(1.0), 1.0)},
        partial=ok_outcome(items[:bad]),
    )


def suspect(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """Any chunk holding "poison" loses its worker, no item known: everyone is a suspect."""
    if "poison" in items:
        return Lost(rerun=range(len(items)), suspect=True)
    return ok_outcome(items)


def isolate(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """A chunk holding "hog" is lost, known to be one item's fault, not which: isolate."""
    if "hog" not in items:
        return ok_outcome(items)
    if len(items) > 1:
        return Lost(rerun=range(len(items)), isolate=True)
    return Lost(rerun=(), blamed={0: (ItemFailure.memory(400 << 20, 300 << 20, "load"), 0.0)})


def flaky(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """ "flaky" fails with ConnectionError on its first two runs; "invalid" with ValueError."""
    failures = {}
    for index, item in enumerate(items):
        if item == "flaky" and backend.times_run("flaky") <= 2:
            failures[index] = _error("ConnectionError", "OSError", "Exception")
        if item == "invalid":
            failures[index] = _error("ValueError", "Exception")
    return ok_outcome(items, failures or None)


def always_flaky(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    failures = {i: _error("ConnectionError", "OSError") for i, x in enumerate(items) if x == "f"}
    return ok_outcome(items, failures or None)


def odd_fail(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    failures = {i: _error("ValueError") for i, x in enumerate(items) if x % 2}
    return ok_outcome(items, failures or None)


def short_when_halted(backend: Scripted, items: list[Any]) -> Outcome | Lost:
    """After a halt, a chunk comes back short: its unstarted items are not run."""
    if backend.halted:
        return ok_outcome(items[:1])
    return ok_outcome(items)


def no_delay(items: list[Any]) -> float:
    return 0.0


def later_first(items: list[Any]) -> float:
    """Chunks of later items finish sooner: out of order unless the scheduler reorders."""
    top = max((x for x in items if isinstance(x, int)), default=0)
    return max(0.0, 0.05 - top * 0.001)


def slow(items: list[Any]) -> float:
    return 0.02


# ----------------------------------------------------------------------------- the table
@dataclass
class Case:
    id: str
    items: list[Any]
    script: Script
    options: dict[str, Any] = field(default_factory=dict)
    delay: Callable[[list[Any]], float] = no_delay
    # key -> ("ok", value, attempts) | ("failed", kind, type, attempts); keys not listed: ok,
    # value x * x, one attempt
    expect: dict[Any, tuple[Any, ...]] = field(default_factory=dict)
    not_run: int = 0
    check: Callable[[Scripted, Any, list[Any]], None] | None = None
    stop_after: int | None = None  # request a stop (SIGINT) after this many records


def _isolated(item: Any) -> Callable[[Scripted, Any, list[Any]], None]:
    """``item`` was in ``SUSPECT_LIMIT`` lost chunks, the last ones with nobody else."""

    def check(backend: Scripted, stats: Any, results: list[Any]) -> None:
        assert backend.times_run(item) == SUSPECT_LIMIT, backend.chunks
        alone = [c for c in backend.chunks if item in c and len(c) == 1]
        assert len(alone) == SUSPECT_LIMIT - 1, backend.chunks

    return check


def _isolated_once(item: Any) -> Callable[[Scripted, Any, list[Any]], None]:
    """``item``'s chunk-mates ran alone once each (no suspicion), and so did ``item``."""

    def check(backend: Scripted, stats: Any, results: list[Any]) -> None:
        assert backend.times_run(item) == 2, backend.chunks
        lost = next(c for c in backend.chunks if item in c)
        for mate in lost:
            assert [mate] in backend.chunks
            assert backend.times_run(mate) == 2

    return check


def _halted(backend: Scripted, stats: Any, results: list[Any]) -> None:
    assert stats.halted
    assert backend.halted
    assert stats.found == len(results) + stats.not_run


def _ordered(backend: Scripted, stats: Any, results: list[Any]) -> None:
    keys = [r.key for r in results]
    assert keys == sorted(keys)


def _counts_deaths(deaths: int) -> Callable[[Scripted, Any, list[Any]], None]:
    def check(backend: Scripted, stats: Any, results: list[Any]) -> None:
        assert stats.worker_deaths == deaths

    return check


def _stopped(backend: Scripted, stats: Any, results: list[Any]) -> None:
    assert stats.stop_signal == signal.SIGINT
    assert backend.halted
    assert len(results) + stats.not_run == 40


TWENTY = list(range(20))
CASES = [
    Case("all ok", TWENTY, all_ok),
    Case(
        "blamed crash, chunk-mates rerun",
        [*range(10), "boom", *range(10, 20)],
        crash_blamed,
        expect={10: ("failed", "crash", "WorkerDied", 1)},
        check=_counts_deaths(1),
    ),
    Case(
        "blamed memory, never retried",
        [*range(10), "hog", *range(10, 20)],
        memory_blamed,
        options={"retries": 3, "retry_on": ["MemoryError"]},
        expect={10: ("failed", "memory", "MemoryError", 1)},
        check=_counts_deaths(1),
    ),
    Case("lost chunk rerun, nobody fails", TWENTY, lost_once),
    Case(
        "timeout: before salvaged, after rerun",
        [*range(10), "hang", *range(10, 20)],
        salvaged,
        expect={10: ("failed", "timeout", "TimeoutError", 1)},
    ),
    Case(
        "suspects isolated, the culprit fails alone",
        [*range(10), "poison", *range(10, 20)],
        suspect,
        expect={10: ("failed", "crash", "WorkerDied", 1)},
        check=_isolated("poison"),
    ),
    Case(
        "isolated without suspicion, the culprit fails alone",
        [*range(10), "hog", *range(10, 20)],
        isolate,
        expect={10: ("failed", "memory", "MemoryError", 1)},
        check=_isolated_once("hog"),
    ),
    Case(
        "retry with backoff until ok",
        [*range(5), "flaky", "invalid", *range(5, 10)],
        flaky,
        options={"retries": 3, "backoff": 0.001},
        expect={5: ("ok", None, 3), 6: ("failed", "error", "ValueError", 1)},
    ),
    Case(
        "retries run out",
        [0, 1, "f", 2],
        always_flaky,
        options={"retries": 2, "backoff": 0.001},
        expect={2: ("failed", "error", "ConnectionError", 3)},
    ),
    Case(
        "retry only what retry_on names",
        [0, 1, "f", 2],
        always_flaky,
        options={"retries": 2, "retry_on": ["TimeoutError"], "backoff": 0.001},
        expect={2: ("failed", "error", "ConnectionError", 1)},
    ),
    Case(
        "ordered output",
        list(range(40)),
        all_ok,
        options={"ordered": True},
        delay=later_first,
        check=_ordered,
    ),
    Case(
        "ordered with failures and reruns",
        [*range(10), "boom", *range(10, 20), "poison", *range(20, 30)],
        lambda b, items: suspect(b, items) if "poison" in items else crash_blamed(b, items),
        options={"ordered": True},
        delay=later_first,
        expect={10: ("failed", "crash", "WorkerDied", 1), 21: ("failed", "crash", "WorkerDied", 1)},
        check=_ordered,
    ),
]


def _run(case: Case) -> tuple[Scripted, Any, list[Any], BaseException | None]:
    options = {"workers": 2, "chunk_size": 5, **case.options}
    config = RunConfig.build(**options)
    backend = Scripted(case.script, case.delay)
    scheduler = Scheduler(lambda x: x, case.items, config, backend=backend)
    results: list[Any] = []
    error: BaseException | None = None

    async def drive() -> None:
        async for batch in scheduler.results():
            results.extend(batch)
            if case.stop_after is not None and len(results) >= case.stop_after:
                scheduler.request_stop(signal.SIGINT)

    try:
        asyncio.run(asyncio.wait_for(drive(), 20))
    except RunInterrupted as exc:
        error = exc
    return backend, scheduler.stats, results, error


def _expected(case: Case) -> dict[Any, tuple[Any, ...]]:
    expected: dict[Any, tuple[Any, ...]] = {}
    for key, item in enumerate(case.items):
        expected[key] = case.expect.get(
            key, ("ok", item * item if isinstance(item, int) else None, 1)
        )
    return expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bookkeeping(case: Case) -> None:
    """Each item ends once, as the backend's reports say it must."""
    backend, stats, results, error = _run(case)
    assert error is None
    keys = [r.key for r in results]
    assert len(keys) == len(set(keys)), "an item got two records"
    got = {
        r.key: ("ok", r.value, r.attempts)
        if r.ok
        else ("failed", r.error.kind, r.error.type, r.attempts)
        for r in results
    }
    assert got == _expected(case)
    assert stats.not_run == case.not_run
    assert stats.done == len(results)
    assert stats.ok + stats.failed == len(results)
    assert backend.closed is False  # closed cleanly, nothing killed
    if case.check is not None:
        case.check(backend, stats, results)


def test_halt_at_max_failures() -> None:
    """``max_failures``: the backend is told to halt, what never started is counted not run."""
    case = Case("halt", list(range(200)), odd_fail, options={"max_failures": 3}, delay=slow)
    backend, stats, results, error = _run(case)
    assert error is None
    assert sum(1 for r in results if not r.ok) >= 3
    for result in results:
        assert result.ok == (result.key % 2 == 0)
    assert stats.not_run > 0
    _halted(backend, stats, results)


def test_halted_chunks_come_back_short() -> None:
    """A chunk cut short by a halt: its unstarted items are counted as not run, not lost."""
    case = Case(
        "short", list(range(200)), short_when_halted, options={"max_failures": 1}, delay=slow
    )
    case.script = lambda b, items: (
        ok_outcome(items, {0: _error("ValueError")}) if 3 in items else short_when_halted(b, items)
    )
    _backend, stats, results, error = _run(case)
    assert error is None
    assert stats.halted
    assert len(results) + stats.not_run == 200
    assert len({r.key for r in results}) == len(results)


def test_stop_counts_what_never_ran() -> None:
    """A stop (Ctrl-C) mid-run: the run ends interrupted; every item is a record or not run."""
    case = Case("stop", list(range(40)), all_ok, delay=slow, stop_after=5)
    backend, stats, results, error = _run(case)
    assert isinstance(error, RunInterrupted)
    assert len({r.key for r in results}) == len(results)
    assert all(r.ok for r in results)
    _stopped(backend, stats, results)
