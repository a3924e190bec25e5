"""What runs again: reruns, suspects and retries with backoff (pure Python, no run)."""

from __future__ import annotations

import pytest

from crunch import _redo
from crunch._failures import ItemFailure
from crunch._redo import MAX_BACKOFF, SUSPECT_LIMIT, Chunk, RedoQueue, backoff_delay
from crunch._units import ItemsUnit


def _chunk(items: list[str], start: int = 0, chunk_id: int = 1) -> Chunk:
    return Chunk(chunk_id, ItemsUnit(items), range(start, start + len(items)), None)


def _error(type_: str, *names: str) -> ItemFailure:
    return ItemFailure("error", type_, "raised", "", (type_, *names))


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redo.random, "uniform", lambda low, high: 1.0)


def test_backoff_doubles_per_try_up_to_the_cap(no_jitter: None) -> None:
    assert [backoff_delay(tries, 0.5) for tries in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(40, 0.5) == MAX_BACKOFF


def test_backoff_jitter_stays_within_half_and_one_and_a_half() -> None:
    delays = [backoff_delay(3, 1.0) for _ in range(500)]
    assert all(2.0 <= d <= 6.0 for d in delays)
    assert len(set(delays)) > 1  # items that failed together do not come back together
    assert all(d <= 1.5 * MAX_BACKOFF for d in (backoff_delay(60, 1.0) for _ in range(50)))


def test_retries_come_back_in_due_order_once_due(no_jitter: None) -> None:
    queue = RedoQueue(retries=5, retry_on=["OSError"], backoff=1.0)
    chunk = _chunk(["a", "b", "c", "d"])
    # a failed 3 times (due at 4), b once (due at 1), c twice (due at 2), d once (due at 1)
    dues = [queue.retry(chunk, p, tries, now=0.0) for p, tries in [(0, 3), (1, 1), (2, 2), (3, 1)]]
    assert dues == [4.0, 1.0, 2.0, 1.0]
    assert len(queue) == 4
    assert queue.release(now=0.5) == 1.0  # nothing due yet: wake at 1
    assert not queue.ready
    assert queue.release(now=0.6) is None  # that wake-up was asked for already
    assert queue.release(now=1.0) == 2.0
    assert [(r.position, r.attempts) for r in queue.ready] == [(1, 2), (3, 2)]  # input order
    assert queue.release(now=10.0) is None
    assert [r.position for r in queue.ready] == [1, 3, 2, 0]
    assert [r.attempts for r in queue.ready] == [2, 2, 3, 4]
    assert len(queue) == 4


def test_only_errors_that_retry_on_names_are_retried_while_tries_are_left() -> None:
    queue = RedoQueue(retries=2, retry_on=["OSError"], backoff=0.1)
    connection = _error("ConnectionError", "OSError", "Exception")
    assert queue.wants_retry(connection, tries=1)
    assert queue.wants_retry(connection, tries=2)
    assert not queue.wants_retry(connection, tries=3)  # the first try and two retries
    assert not queue.wants_retry(_error("KeyError", "LookupError", "Exception"), tries=1)
    assert not queue.wants_retry(_error("ValueError", "OSError"), tries=1)  # never retried
    assert not queue.wants_retry(ItemFailure.timeout(1.0), tries=1)  # not an error
    assert not RedoQueue(0, ["OSError"], 0.1).wants_retry(connection, tries=1)


def test_reruns_of_one_chunk_go_together_up_to_the_limit() -> None:
    queue = RedoQueue(retries=0, retry_on=(), backoff=0.1)
    chunk = Chunk(1, ItemsUnit(list("abcde"), list("ABCDE")), range(10, 15), list("ABCDE"))
    for position in range(5):
        assert queue.rerun(chunk, position, suspect=False, alone=False) == 0
    first = queue.take(2, limit=3)
    assert (first.id, first.unit.items, list(first.seqs)) == (2, ["a", "b", "c"], [10, 11, 12])
    assert (first.keys, first.attempts, first.suspicion) == (["A", "B", "C"], [1, 1, 1], [0, 0, 0])
    rest = queue.take(3, limit=3)
    assert (rest.unit.items, list(rest.seqs)) == (["d", "e"], [13, 14])
    assert len(queue) == 0


def test_reruns_of_different_chunks_never_share_a_chunk() -> None:
    queue = RedoQueue(retries=0, retry_on=(), backoff=0.1)
    one, two = _chunk(["a", "b"], 0, 1), _chunk(["c"], 2, 2)
    for chunk, position in [(one, 0), (two, 0), (one, 1)]:
        queue.rerun(chunk, position, suspect=False, alone=False)
    assert [queue.take(i, limit=10).unit.items for i in (3, 4, 5)] == [["a"], ["c"], ["b"]]


def test_suspects_run_alone_and_the_one_alone_in_every_death_is_the_culprit() -> None:
    queue = RedoQueue(retries=0, retry_on=(), backoff=0.1)
    lost = _chunk(["x", "poison", "y"])
    for position in range(3):  # an unexplained death: all three are suspects
        assert queue.rerun(lost, position, suspect=True, alone=False) == 0
    alone = [queue.take(i, limit=10) for i in (2, 3, 4)]
    assert [c.unit.items for c in alone] == [["x"], ["poison"], ["y"]]
    assert [c.suspicion for c in alone] == [[1], [1], [1]]
    chunk = alone[1]
    for deaths in range(2, SUSPECT_LIMIT):  # its worker dies again, with it alone
        assert queue.rerun(chunk, 0, suspect=True, alone=False) == 0
        chunk = queue.take(10 + deaths, limit=10)
        assert chunk.suspicion == [deaths]
    assert queue.rerun(chunk, 0, suspect=True, alone=False) == SUSPECT_LIMIT
    assert len(queue) == 0  # the culprit is not queued again


def test_isolated_positions_run_alone_without_suspicion() -> None:
    queue = RedoQueue(retries=0, retry_on=(), backoff=0.1)
    lost = _chunk(["a", "b"])
    for position in range(2):
        queue.rerun(lost, position, suspect=False, alone=True)
    chunks = [queue.take(i, limit=10) for i in (2, 3)]
    assert [(c.unit.items, c.suspicion) for c in chunks] == [(["a"], [0]), (["b"], [0])]


def test_drop_forgets_ready_and_backing_off_and_counts_them() -> None:
    queue = RedoQueue(retries=3, retry_on=["OSError"], backoff=60.0)
    chunk = _chunk(["a", "b", "c"])
    queue.rerun(chunk, 0, suspect=False, alone=False)
    queue.retry(chunk, 1, 1, now=0.0)
    queue.retry(chunk, 2, 1, now=0.0)
    assert queue.drop() == 3
    assert (len(queue), queue.release(now=1e9)) == (0, None)
