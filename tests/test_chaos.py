"""Chaos: random workers SIGKILLed during a run; every item still gets exactly one record."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import faults
import pytest
from helpers import worker_pids

import crunch

MAX_KILLS = 8


@pytest.mark.timeout(180)
def test_random_worker_kills_lose_no_item() -> None:
    """Killing random workers mid-run costs at most one item per kill, never a lost record."""
    count = 3000
    stop = threading.Event()
    kills: list[int] = []
    rng = random.Random(7)

    def killer() -> None:
        # A kill every 0.5 s at most, up to MAX_KILLS: each one replaces the whole pool, so
        # the run must still make progress between kills.
        while not stop.wait(0.5) and len(kills) < MAX_KILLS:
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
        results.extend(crunch.imap(faults.slow_square, range(count), workers=2))
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
