"""The library's behaviour suite (README: "The library", "Modes", clean exits), every mode."""

from __future__ import annotations

import asyncio
import functools
import itertools
from pathlib import Path

import faults
import pytest

import crunch


def test_values_and_keys_are_the_index(mode: str) -> None:
    """run() maps each item's 0-based input index to fn(item)."""
    batch = crunch.run(faults.square, range(300), mode=mode, workers=2)
    assert batch.succeeded == {i: i * i for i in range(300)}
    assert batch.failed == {}
    assert batch.ok
    assert len(batch) == 300


def test_path_items_are_keyed_by_their_string(mode: str, tmp_path: Path) -> None:
    """A pathlib.Path item is keyed by str(path)."""
    paths = [tmp_path / f"f{i}.txt" for i in range(5)]
    batch = crunch.run(str, paths, mode=mode, workers=2)
    assert batch.succeeded == {str(p): str(p) for p in paths}


def test_custom_key(mode: str) -> None:
    """key=callable names each record."""
    batch = crunch.run(faults.square, [1, 2, 3], mode=mode, workers=2, key=lambda x: f"k{x}")
    assert batch.succeeded == {"k1": 1, "k2": 4, "k3": 9}


def test_failures_are_data_and_the_batch_goes_on(mode: str) -> None:
    """An exception fails only its item, with type, message and traceback."""
    batch = crunch.run(faults.square_or_fail, range(100), mode=mode, workers=2)
    bad = {i for i in range(100) if i % 10 == 3}
    assert set(batch.failed) == bad
    assert set(batch.succeeded) == set(range(100)) - bad
    failure = batch.failed[13]
    assert failure.kind == "error"
    assert failure.type == "ValueError"
    assert failure.message == "bad item 13"
    assert "square_or_fail" in failure.traceback
    assert failure.attempts == 1
    assert not batch.ok


def test_raise_for_failures_groups_every_failure(mode: str) -> None:
    """raise_for_failures raises one ExceptionGroup holding each failed item."""
    batch = crunch.run(faults.square_or_fail, range(30), mode=mode, workers=2)
    with pytest.raises(ExceptionGroup) as info:
        batch.raise_for_failures()
    errors = info.value.exceptions
    assert sorted(e.key for e in errors) == [3, 13, 23]
    assert all(isinstance(e, crunch.ItemFailedError) for e in errors)


def test_raise_for_failures_is_silent_when_all_ok(mode: str) -> None:
    """raise_for_failures does nothing when nothing failed."""
    crunch.run(faults.square, range(10), mode=mode, workers=2).raise_for_failures()


def test_imap_streams_every_item_once(mode: str) -> None:
    """imap yields exactly one ItemResult per item, unordered by default."""
    results = list(crunch.imap(faults.square, range(500), mode=mode, workers=2))
    assert sorted(r.key for r in results) == list(range(500))
    assert all(r.ok and r.value == r.key**2 and r.attempts == 1 for r in results)
    assert all(r.seconds >= 0 for r in results)


def test_ordered_gives_input_order(mode: str) -> None:
    """ordered=True yields results in input order, failures included."""
    results = list(
        crunch.imap(faults.square_or_fail, range(200), mode=mode, workers=2, ordered=True)
    )
    assert [r.key for r in results] == list(range(200))


def test_empty_input(mode: str) -> None:
    """No items: an empty, ok batch."""
    batch = crunch.run(faults.square, [], mode=mode, workers=2)
    assert batch.ok
    assert len(batch) == 0
    assert list(crunch.imap(faults.square, iter([]), mode=mode, workers=2)) == []


def test_generator_input(mode: str) -> None:
    """A generator is consumed lazily and gives the same results as a list."""
    batch = crunch.run(faults.square, (i for i in range(250)), mode=mode, workers=2)
    assert batch.succeeded == {i: i * i for i in range(250)}


def test_huge_generator_is_not_materialised(mode: str) -> None:
    """Taking 100 results from a 10-million-item generator reads only a bounded prefix."""
    pulled = itertools.count()

    def source():
        for i in range(10_000_000):
            next(pulled)
            yield i

    stream = crunch.imap(faults.square, source(), mode=mode, workers=2)
    first = list(itertools.islice(stream, 100))
    stream.close()
    assert len(first) == 100
    assert next(pulled) < 200_000


def test_same_answer_in_every_mode_and_chunk_size(mode: str) -> None:
    """Records do not depend on the mode, workers or chunk size (§5.6)."""
    expected = crunch.run(faults.square_or_fail, range(120), mode="sync")
    for chunk_size, workers in ((1, 1), (7, 2), ("auto", 3)):
        got = crunch.run(
            faults.square_or_fail, range(120), mode=mode, workers=workers, chunk_size=chunk_size
        )
        assert got.succeeded == expected.succeeded
        assert {k: (f.type, f.message) for k, f in got.failed.items()} == {
            k: (f.type, f.message) for k, f in expected.failed.items()
        }


def test_amap_in_async_code(mode: str) -> None:
    """amap yields the same records to an async for loop."""

    async def collect() -> list[crunch.ItemResult]:
        return [r async for r in crunch.amap(faults.square, range(50), mode=mode, workers=2)]

    results = asyncio.run(collect())
    assert sorted((r.key, r.value) for r in results) == [(i, i * i) for i in range(50)]


def test_max_failures_halts_and_counts_not_run(mode: str) -> None:
    """After max_failures failed items no new items start; the rest are counted not run."""
    batch = crunch.run(faults.always_value_error, range(5000), mode=mode, workers=2, max_failures=3)
    assert len(batch.failed) >= 3
    assert len(batch.failed) + len(batch.succeeded) + batch.not_run == 5000
    assert batch.not_run > 0
    assert not batch.ok


def test_retries_only_retry_on_types(mode: str, tmp_path: Path, monkeypatch) -> None:
    """A ConnectionError is retried with backoff; attempts counts every try."""
    monkeypatch.setenv("CRUNCH_TEST_CALLS", str(tmp_path / "calls"))
    batch = crunch.run(faults.flaky, range(4), mode=mode, workers=2, retries=3, backoff=0.01)
    assert batch.succeeded == {i: i for i in range(4)}
    results = list(crunch.imap(faults.always_value_error, [1], mode=mode, retries=3, backoff=0.01))
    assert results[0].attempts == 1  # ValueError is never retried


@pytest.mark.parametrize(
    ("retry_on", "task", "attempts"),
    [
        (("Exception",), faults.flaky, 3),  # a base class retries what it covers...
        (("Exception",), faults.flaky_value_error, 1),  # ...except validation errors
        (("BaseException",), faults.flaky, 3),
        (("faults.FlakyError",), faults.flaky_custom, 3),  # module.Name, resolved by import
        ((faults.FlakyError,), faults.flaky_custom, 3),  # or the class itself
        (("OSError",), faults.flaky_custom, 1),  # not named: not retried
    ],
)
def test_retry_on_names_classes_and_never_retries_validation_errors(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retry_on, task, attempts: int
) -> None:
    """retry_on matches the exception's classes; a ValueError is never retried."""
    monkeypatch.setenv("CRUNCH_TEST_CALLS", str(tmp_path / "calls"))
    options = {"mode": mode, "workers": 2, "retries": 2, "backoff": 0.01, "retry_on": retry_on}
    [result] = list(crunch.imap(task, [5], **options))
    assert result.attempts == attempts
    assert result.ok == (attempts == 3)


def test_retry_on_refuses_what_is_not_a_retryable_exception() -> None:
    """Every bad retry_on name is reported at once, before any item runs."""
    bad = ["NotAnException", "json.JSONDecodeError", "nosuchmodule.Error", "os.nope", "os.sep"]
    with pytest.raises(crunch.ConfigError) as caught:
        crunch.RunConfig.build(retry_on=bad)
    problems = caught.value.problems
    assert len(problems) == len(bad)
    assert "'NotAnException' is not a builtin exception" in problems[0]
    assert "json.JSONDecodeError is never retried (it is a ValueError)" in problems[1]
    assert "cannot import module 'nosuchmodule'" in problems[2]
    assert "module 'os' has no 'nope'" in problems[3]
    assert "'os.sep' is not an exception class" in problems[4]
    canonical = crunch.RunConfig.build(retry_on=["OSError", "asyncio.TimeoutError", OSError])
    assert canonical.retry_on == ("OSError", "TimeoutError")  # asyncio's is the builtin one


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e10, 1e-6, 0, -1])
def test_timeout_must_be_finite_and_enforceable(timeout: float) -> None:
    """A timeout is a finite number of seconds in [0.01, 1e6]; no limit is ``None``."""
    with pytest.raises(crunch.ConfigError, match="timeout: must be"):
        crunch.run(faults.square, range(3), timeout=timeout)


def test_the_shortest_timeout_stops_a_longer_item(mode: str) -> None:
    """At the smallest accepted timeout, a 300 ms item is a timeout record, in every mode."""
    batch = crunch.run(faults.sleeper, [0.3, 0.0], mode=mode, workers=2, timeout=0.01)
    assert batch.failed[0].kind == "timeout"
    assert batch.succeeded == {1: 0.0}
    assert crunch.run(faults.sleeper, [0.0], mode=mode, timeout=1e6).succeeded == {0: 0.0}


def test_retries_exhausted_record_the_last_error(mode: str, tmp_path: Path, monkeypatch) -> None:
    """When retries run out the item fails with attempts = retries + 1."""
    monkeypatch.setenv("CRUNCH_TEST_CALLS", str(tmp_path / "calls"))
    [result] = list(crunch.imap(faults.flaky, [9], mode=mode, retries=1, backoff=0.01))
    assert not result.ok
    assert result.error is not None
    assert result.error.type == "ConnectionError"
    assert result.attempts == 2


def test_async_def_tasks_run_in_async_mode() -> None:
    """An async def task is awaited directly in async mode."""
    batch = crunch.run(faults.async_square, range(20), mode="async", workers=4)
    assert batch.succeeded == {i: i * i for i in range(20)}


def test_wrapped_async_tasks_are_awaited_too() -> None:
    """An async def behind functools.wraps or partial, or an object whose __call__ is async
    def, is awaited in async mode and refused in the others, like a bare async def."""

    @functools.wraps(faults.async_square)
    def wrapped(x: int) -> object:
        return faults.async_square(x)

    class Squarer:
        async def __call__(self, x: int) -> int:
            return await faults.async_square(x)

    for task in (wrapped, functools.partial(faults.async_square), Squarer()):
        batch = crunch.run(task, range(5), mode="async", workers=2)
        assert batch.succeeded == {i: i * i for i in range(5)}
        with pytest.raises(crunch.UsageError, match="async def"):
            crunch.run(task, range(5), mode="thread", workers=2)


def test_init_runs_in_each_worker(mode: str) -> None:
    """init= runs before the first item in every worker."""
    batch = crunch.run(faults.square, range(20), mode=mode, workers=2, init=faults.square_init)
    assert batch.ok


def test_failing_init_stops_the_run_with_its_error(mode: str) -> None:
    """An initializer that raises stops the run with a clear error naming it."""
    with pytest.raises(crunch.UsageError, match="init refuses"):
        crunch.run(faults.square, range(20), mode=mode, workers=2, init=faults.bad_init)
