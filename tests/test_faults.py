"""Fault injection: one bad item never aborts the batch or loses another.

What the README promises under "What crunch guarantees": one item never aborts the batch,
crash attribution.

Each case of ``faults.FAULTS`` is run among good items in every mode where it can be injected;
the bad item must end as the record kind the table says, and every good item must end ok.
"""

from __future__ import annotations

import faults
import pytest

import crunch

CASES = [(name, mode) for name, f in faults.FAULTS.items() for mode in f.modes]


@pytest.mark.parametrize(("case", "mode"), CASES)
def test_fault_fails_only_its_item(case: str, mode: str) -> None:
    """The faulty item gets its kind of failure; the good items around it all succeed."""
    fault = faults.FAULTS[case]
    items: list[object] = [*range(20), case, *range(20, 40)]
    batch = crunch.run(faults.faulty, items, mode=mode, workers=2, timeout=1.0, chunk_size=5)
    assert set(batch.failed) == {20}, batch.failed
    failure = batch.failed[20]
    assert (failure.kind, failure.type) == (fault.kind, fault.type), failure
    assert fault.message_has in failure.message
    expected = {i if i < 20 else i + 1: i * i for i in range(40)}
    assert batch.succeeded == expected
    assert batch.not_run == 0


def test_several_crashers_in_one_chunk_are_each_blamed() -> None:
    """Two crashing items in the same chunk are both failed; their neighbours succeed."""
    items: list[object] = [0, 1, "exit", 2, "sigkill", 3, 4]
    batch = crunch.run(faults.faulty, items, mode="process", workers=2, chunk_size=7)
    assert {k: f.kind for k, f in batch.failed.items()} == {2: "crash", 4: "crash"}
    assert batch.succeeded == {0: 0, 1: 1, 3: 4, 5: 9, 6: 16}


def test_hang_timeout_in_process_mode_kills_only_that_worker() -> None:
    """A task stuck in C code past the hard limit gets its worker killed, blamed as timeout."""
    batch = crunch.run(
        faults.faulty, [0, "hang", 1, 2], mode="process", workers=2, timeout=0.5, chunk_size=4
    )
    assert batch.failed[1].kind == "timeout"
    assert batch.succeeded == {0: 0, 2: 1, 3: 4}


def test_unpicklable_item_fails_alone() -> None:
    """An item that cannot be sent to a worker fails alone; the rest of its chunk runs."""
    items = [1, faults.Unpicklable(), 2]
    batch = crunch.run(repr, items, mode="process", workers=2, chunk_size=3)
    assert set(batch.failed) == {1}
    assert "could not be pickled" in batch.failed[1].message
    assert set(batch.succeeded) == {0, 2}


@pytest.mark.parametrize("mode", ["thread", "async", "sync"])
def test_thread_timeout_abandons_the_thread_and_goes_on(mode: str) -> None:
    """In thread-like modes a hung item is reported at the timeout while the run goes on."""
    items: list[object] = [0, 1, "hang", 2, 3]
    batch = crunch.run(faults.faulty, items, mode=mode, workers=2, timeout=0.3, chunk_size=5)
    assert batch.failed[2].kind == "timeout"
    assert batch.succeeded == {0: 0, 1: 1, 3: 4, 4: 9}


def test_lambda_is_refused_before_any_item_runs() -> None:
    """A lambda in process mode fails at once with a message that says why and what to do."""
    with pytest.raises(crunch.TaskNotImportableError, match=r"lambda.*top level of a module"):
        crunch.run(lambda x: x, range(3), mode="process")


def test_nested_function_is_refused() -> None:
    """A function defined inside another fails at once in process mode."""

    def inner(x: int) -> int:
        return x

    with pytest.raises(crunch.TaskNotImportableError, match="inside another function"):
        crunch.imap(inner, range(3), mode="process")


def test_nested_function_is_fine_in_thread_mode() -> None:
    """Thread mode runs functions that process mode cannot import."""

    def inner(x: int) -> int:
        return x + 1

    assert crunch.run(inner, range(3), mode="thread").succeeded == {0: 1, 1: 2, 2: 3}


def test_async_function_needs_async_mode() -> None:
    """An async def task in another mode is refused before any item runs."""
    with pytest.raises(crunch.UsageError, match="mode='async'"):
        crunch.run(faults.async_square, range(3), mode="thread")


def test_config_errors_list_every_problem() -> None:
    """Bad options raise one ConfigError naming each problem."""
    with pytest.raises(crunch.ConfigError) as info:
        crunch.run(faults.square, range(3), workers=0, mode="bogus", timeout=-1, wrkers=2)
    problems = info.value.problems
    assert len(problems) == 4
    text = str(info.value)
    for needle in ("workers", "mode", "timeout", "did you mean 'workers'"):
        assert needle in text


@pytest.mark.parametrize("mode", ["sync", "thread", "async", "process"])
def test_breaking_out_early_leaves_no_worker(mode: str) -> None:
    """Leaving an imap loop early stops the engine and its workers."""
    import multiprocessing

    stream = crunch.imap(faults.slow_square, range(100_000), mode=mode, workers=2)
    for _ in zip(range(10), stream, strict=False):
        pass
    stream.close()  # type: ignore[attr-defined]
    assert [p for p in multiprocessing.active_children() if "Fork" not in p.name] == []


def test_item_that_fails_to_load_in_the_worker_fails_alone() -> None:
    """An item whose unpickling raises in the worker fails alone; its chunk-mates succeed."""
    items: list[object] = [1, 2, faults.LoadsOnlyHere(), 3, 4]
    batch = crunch.run(repr, items, mode="process", workers=2, chunk_size=5)
    assert set(batch.failed) == {2}
    assert "cannot be loaded" in batch.failed[2].message
    assert set(batch.succeeded) == {0, 1, 3, 4}
