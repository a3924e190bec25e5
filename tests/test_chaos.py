"""Chaos: random workers SIGKILLed during a run; every item still gets exactly one record."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time

import faults
import pytest
from helpers import worker_pids

import crunch


def chaos(count: int, workers: int, max_kills: int, interval: float) -> None:
    stop = threading.Event()
    kills: list[int] = []
    rng = random.Random(7)

    def killer() -> None:
        # A kill every ``interval`` s, up to ``max_kills``: each one replaces the whole pool,
        # so the run must still make progress between kills.
        while not stop.wait(interval) and len(kills) < max_kills:
            pids = worker_pids(os.getpid())
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer, daemon=True)
    results = []
    began = time.monotonic()
    thread.start()
    try:
        results.extend(crunch.imap(faults.slow_square, range(count), workers=workers))
    finally:
        stop.set()
        thread.join()
    keys = sorted(r.key for r in results)
    assert keys == list(range(count)), "an item was lost or recorded twice"
    crashed = [r for r in results if not r.ok]
    assert all(r.error is not None and r.error.kind == "crash" for r in crashed)
    assert len(crashed) <= len(kills)
    assert all(r.value == r.key**2 for r in results if r.ok)
    assert kills, f"the killer never found a worker in {time.monotonic() - began:.1f} s"
    print(f"{len(kills)} kills, {len(crashed)} crash records, {time.monotonic() - began:.1f} s")


@pytest.mark.timeout(180)
def test_random_worker_kills_lose_no_item() -> None:
    """Killing random workers mid-run costs at most one item per kill, never a lost record."""
    chaos(count=3000, workers=2, max_kills=8, interval=0.5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_long_chaos_run() -> None:
    """A longer run on 4 workers with 40 kills still records every item exactly once."""
    chaos(count=40_000, workers=4, max_kills=40, interval=0.4)


@pytest.mark.timeout(120)
def test_worker_killed_while_sending_a_big_result_does_not_hang() -> None:
    """A kill that truncates a result in the pipe does not hang the run; no item is lost."""
    stop = threading.Event()

    def killer() -> None:
        for _ in range(3):
            if stop.wait(1.0):
                return
            for pid in worker_pids(os.getpid()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        results = list(crunch.imap(faults.big_result, range(8), workers=2, chunk_size=1))
    finally:
        stop.set()
        thread.join()
    assert sorted(r.key for r in results) == list(range(8))
    assert all(r.ok or (r.error is not None and r.error.kind == "crash") for r in results)
