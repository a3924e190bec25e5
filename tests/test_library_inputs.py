"""The library and its inputs (README, "The library"): an iterable that raises part way, and
keys that repeat. Through the public API, in every local mode."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faults import square

import crunch
from crunch import DuplicateKeyError, SourceError

ITEMS_BEFORE = 25


class BrokenInputError(RuntimeError):
    pass


def raising_after(n: int) -> Any:
    """A generator that yields 0..n-1, then raises."""
    yield from range(n)
    raise BrokenInputError("the input broke")


def test_run_over_a_raising_generator_keeps_what_it_computed(mode: str) -> None:
    """SourceError carries, as .partial, a result for every item the generator yielded."""
    with pytest.raises(SourceError) as info:
        crunch.run(square, raising_after(ITEMS_BEFORE), mode=mode, workers=2)
    exc = info.value
    assert isinstance(exc.__cause__, BrokenInputError)
    assert exc.partial is not None
    assert exc.partial.succeeded == {i: i * i for i in range(ITEMS_BEFORE)}
    assert exc.partial.failed == {}


def test_imap_yields_every_result_then_raises(mode: str) -> None:
    got: dict[int, int] = {}

    def drain() -> None:
        for result in crunch.imap(square, raising_after(ITEMS_BEFORE), mode=mode, workers=2):
            got[result.key] = result.value

    with pytest.raises(SourceError) as info:
        drain()
    assert isinstance(info.value.__cause__, BrokenInputError)
    assert got == {i: i * i for i in range(ITEMS_BEFORE)}


def test_amap_yields_every_result_then_raises(mode: str) -> None:
    got: dict[int, int] = {}

    async def collect() -> None:
        async for result in crunch.amap(square, raising_after(ITEMS_BEFORE), mode=mode, workers=2):
            got[result.key] = result.value

    with pytest.raises(SourceError) as info:
        asyncio.run(collect())
    assert isinstance(info.value.__cause__, BrokenInputError)
    assert got == {i: i * i for i in range(ITEMS_BEFORE)}


def test_run_refuses_a_repeated_key_and_keeps_the_first_result(mode: str) -> None:
    """key= giving one key to two items: DuplicateKeyError names it; nothing is overwritten."""
    items = list(range(40))
    with pytest.raises(DuplicateKeyError) as info:
        crunch.run(square, items, key=lambda x: x if x != 30 else 3, mode=mode, workers=2)
    exc = info.value
    assert exc.key == 3
    assert "3" in str(exc)
    assert exc.partial is not None
    assert exc.partial.succeeded.get(3, 9) == 9  # item 3's own result, if it was collected
    assert all(value == key * key for key, value in exc.partial.succeeded.items())


@pytest.mark.parametrize("where", ["same-chunk", "far-apart"])
def test_run_refuses_repeated_paths(mode: str, tmp_path: Path, where: str) -> None:
    """Default keys repeat too: str(path) of the same path given twice."""
    a = tmp_path / "a.txt"
    a.write_text("x")
    others = [tmp_path / f"f{i}.txt" for i in range(30)]
    for path in others:
        path.write_text("y")
    items = [a, a, *others] if where == "same-chunk" else [a, *others, a]
    with pytest.raises(DuplicateKeyError) as info:
        crunch.run(_size, items, mode=mode, workers=2, chunk_size=4)
    assert info.value.key == str(a)
    assert info.value.partial is not None
    assert info.value.partial.succeeded.get(str(a), 1) == 1


def test_a_failed_and_an_ok_item_with_one_key_are_refused() -> None:
    with pytest.raises(DuplicateKeyError):
        crunch.run(_fail_odd, [1, 2], key=lambda x: "k", mode="sync")


def test_imap_yields_every_item_whatever_its_key(mode: str) -> None:
    """imap hands every result over: two items with one key are two results."""
    results = list(crunch.imap(square, [1, 2, 3], key=lambda x: "same", mode=mode, workers=2))
    assert sorted(r.value for r in results) == [1, 4, 9]
    assert {r.key for r in results} == {"same"}


def test_unique_keys_run_as_before(mode: str) -> None:
    batch = crunch.run(square, range(500), mode=mode, workers=2)
    assert batch.succeeded == {i: i * i for i in range(500)}


def _size(path: Path) -> int:
    return path.stat().st_size


def _fail_odd(x: int) -> int:
    if x % 2:
        raise ValueError("odd")
    return x
