"""An item's trip between processes, with one item's misbehaviour kept to that item.

A chunk crosses twice: its unit pickled in the parent and unpickled in a worker, then its
``UnitOutcome`` pickled in the worker and unpickled in the parent. Any object on the way can fail
there in any way (its ``__reduce__`` or ``__setstate__`` may raise anything, ``SystemExit`` and
``KeyboardInterrupt`` included). The fast path pickles a chunk whole; these functions find, on
a slow path taken only when something fails or might, which item is to blame, so that item
alone gets a failure record naming the stage (see crunch._failures).

- sending: ``dump_items`` pickles the chunk; if it raises, ``unsendable_items`` pickles the items
  one by one to find those that fail.
- loading, in the worker: ``load_items`` unpickles the chunk, or gives the failure when it
  cannot; the backend then runs the items one by one to find the one that fails.
- returning, in the worker: ``encode_outcome`` pickles the outcome whole; if that raises, each
  value is pickled on its own, and one that cannot be is failed here.
- receiving, in the parent: ``decode_outcome`` unpickles the outcome. When the whole does not
  unpickle (a value's class missing here, its ``__setstate__`` raising), the backend runs the
  chunk again asking for it split: each value pickled on its own, so only a value that does
  not unpickle fails. The items of that chunk run twice, as after a worker crash; in exchange
  the fast path pays nothing for the isolation (unpickling values one by one costs the parent
  more per value than unpickling them whole).

``BaseException`` is caught on purpose. In a worker, SIGINT is ignored: a ``KeyboardInterrupt``
there comes from an object, never from the user. In the parent these run on the engine's own
thread, and Python delivers signals (so the user's Ctrl-C) only to the main thread: a
``KeyboardInterrupt`` or ``SystemExit`` raised here comes from the item or value, never from
the user or the interpreter's shutdown.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from crunch._failures import ItemFailure
from crunch._runner import FailedItem, UnitOutcome, item_positions

PROTOCOL = pickle.HIGHEST_PROTOCOL


def dump_items(chunk: Any) -> bytes:
    """A chunk (its unit and attempts, or a list of items), pickled in one go (raises what an
    item's pickling raises)."""
    return pickle.dumps(chunk, PROTOCOL)


def unsendable_items(
    items: list[Any], exc: BaseException, dumps: Callable[[Any], bytes] | None = None
) -> dict[int, ItemFailure]:
    """After pickling the chunk with ``dumps`` (default ``dump_items``) raised ``exc``: the
    items that cannot be pickled, with why.

    If none fails alone (the chunk as a whole was at fault), every item gets ``exc``.
    """
    dumps = dumps or dump_items
    failed: dict[int, ItemFailure] = {}
    for index, item in enumerate(items):
        try:
            dumps([item])
        except BaseException as item_exc:  # noqa: BLE001 - see the module docstring
            failed[index] = ItemFailure.unsendable_item(item_exc)
    if not failed:
        failure = ItemFailure.from_exception(exc)
        failed = dict.fromkeys(range(len(items)), failure)
    return failed


def load_items(blob: bytes) -> Any:
    """In the worker: the chunk (its unit and attempts), or the ``ItemFailure`` of unpickling
    it."""
    try:
        return pickle.loads(blob)
    except BaseException as exc:  # noqa: BLE001 - see the module docstring
        return ItemFailure.unloadable_item(exc)


class SplitOutcome(NamedTuple):
    """A ``UnitOutcome`` without its values, which travel pickled one by one (None: that item
    failed)."""

    outcome: UnitOutcome
    values: list[bytes | None]


def encode_outcome(outcome: UnitOutcome, *, split: bool = False) -> bytes:
    """In the worker: the outcome pickled whole (the fast path), or value by value when
    ``split`` or when the whole does not pickle (a value that cannot be pickled then fails
    alone). Encoded records (``blob``) and failures are bytes and strings: they always pickle.
    """
    if not split or outcome.values is None:
        try:
            return pickle.dumps(outcome, PROTOCOL)
        except BaseException:
            if outcome.values is None:
                raise
    return pickle.dumps(split_outcome(outcome), PROTOCOL)


def split_outcome(outcome: UnitOutcome) -> SplitOutcome:
    """Each value pickled on its own; one that cannot be pickled fails its item alone."""
    values: list[bytes | None] = []
    failures = dict(outcome.failures or {})
    positions = item_positions(outcome)
    keys, seconds = outcome.keys, outcome.seconds or []
    for index, value in enumerate(outcome.values or ()):
        position = positions[index]
        if position in failures:
            values.append(None)
            continue
        try:
            values.append(pickle.dumps(value, PROTOCOL))
        except BaseException as exc:  # noqa: BLE001 - see the module docstring
            values.append(None)
            key = None if keys is None else keys[index]
            failure = ItemFailure.unpicklable_value(exc)
            failures[position] = FailedItem(key, failure, seconds[index])
    bare = outcome._replace(values=None, failures=failures or None)
    return SplitOutcome(bare, values)


def decode_outcome(data: bytes) -> UnitOutcome:
    """In the parent: the outcome a worker sent. Whole, it raises what a value's unpickling
    raises (the backend then asks for the chunk split); split, a value that does not unpickle
    fails alone."""
    sent = pickle.loads(data)
    if type(sent) is UnitOutcome:
        return sent
    return join_outcome(sent)


def join_outcome(sent: SplitOutcome) -> UnitOutcome:
    """The values of a ``SplitOutcome`` unpickled one by one."""
    outcome = sent.outcome
    values: list[Any] = []
    failures = dict(outcome.failures or {})
    positions = item_positions(outcome)
    keys, seconds = outcome.keys, outcome.seconds or []
    for index, blob in enumerate(sent.values):
        if blob is None:
            values.append(None)
            continue
        try:
            values.append(pickle.loads(blob))
        except BaseException as exc:  # noqa: BLE001 - see the module docstring
            values.append(None)
            key = None if keys is None else keys[index]
            failures[positions[index]] = FailedItem(
                key, ItemFailure.unloadable_value(exc), seconds[index]
            )
    return outcome._replace(values=values, failures=failures or None)
