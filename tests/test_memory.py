"""``--max-memory``: an item that takes its worker past the cap fails alone, kind ``memory``;
a worker that grows slowly is replaced between items, and no item fails for it.

The tasks are in tests/memtasks.py. Each run is one hog (or leak) among good items, checked as
a user would: exactly one record per item, the hog's record, the good items' values, and no
worker left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import memtasks
import pytest
from helpers import crunch_cmd, env, worker_pids

import crunch

CAP = "300MiB"
MIB = 1 << 20


def _no_workers_left() -> None:
    deadline = time.monotonic() + 10
    while worker_pids(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_pids(os.getpid()) == []


def _one_record_each(results: list[crunch.ItemResult], count: int) -> dict:
    keys = [r.key for r in results]
    assert sorted(keys) == list(range(count)), "not exactly one record per item"
    return {r.key: r for r in results}


@pytest.mark.parametrize("hog", ["steps", "at_once"])
def test_an_item_past_the_cap_fails_alone(hog: str) -> None:
    """A hog among 40 good items: kind memory, how much it used; the others are ok."""
    bad = -1 if hog == "steps" else -2  # memtasks.grow: in 50 MiB steps, or 2 GiB at once
    items = [*range(20), bad, *range(20, 40)]
    results = list(
        crunch.imap(memtasks.grow, items, mode="process", workers=2, timeout=20, max_memory=CAP)
    )
    records = _one_record_each(results, 41)
    failure = records.pop(20).error
    assert failure is not None
    assert (failure.kind, failure.type) == ("memory", "MemoryError")
    assert "MiB" in failure.message
    assert "300 MiB" in failure.message
    assert {k: r.value for k, r in records.items()} == {
        k: (k if k < 20 else k - 1) ** 2 for k in records
    }
    _no_workers_left()


def test_a_slow_leak_recycles_workers_and_fails_nothing(tmp_path: Path) -> None:
    """20 MiB kept per item, 60 items, a 300 MiB cap: workers are replaced, nothing fails,
    and no item runs twice (the pool never broke)."""
    calls = tmp_path / "calls"
    os.environ["CRUNCH_TEST_CALLS"] = str(calls)
    try:
        results = list(
            crunch.imap(memtasks.leak, range(60), mode="process", workers=2, max_memory=CAP)
        )
    finally:
        del os.environ["CRUNCH_TEST_CALLS"]
    records = _one_record_each(results, 60)
    assert [k for k, r in records.items() if not r.ok] == []
    pids = {r.value for r in records.values()}
    assert len(pids) > 2, "no worker was replaced"
    ran = calls.read_text().split()
    assert sorted(map(int, ran)) == list(range(60)), "an item ran twice"
    _no_workers_left()


def test_no_cap_no_recycling() -> None:
    """Without a cap, the same leak runs in the same two workers (a control for the above)."""
    results = list(crunch.imap(memtasks.small_leak, range(20), mode="process", workers=2))
    assert len({r.value for r in results}) <= 2


def test_worker_too_big_for_the_cap_stops_the_run() -> None:
    """A cap below what a worker needs to start is the run's error, said plainly."""
    with pytest.raises(crunch.UsageError, match=r"could run no item\. Raise the cap"):
        crunch.run(memtasks.grow, range(3), mode="process", workers=1, max_memory="8MiB")
    _no_workers_left()


@pytest.mark.parametrize("mode", ["sync", "thread", "async"])
def test_in_process_modes_refuse_the_cap(mode: str) -> None:
    """Where items run in crunch's own process, the cap cannot be honoured: a usage error."""
    with pytest.raises(crunch.ConfigError, match=r"max_memory: mode .* cannot be capped"):
        crunch.run(memtasks.grow, range(3), mode=mode, max_memory=CAP)


def test_an_existing_dask_cluster_refuses_the_cap() -> None:
    with pytest.raises(crunch.ConfigError, match="memory limit they were started with"):
        crunch.run(
            memtasks.grow, range(3), mode="dask", scheduler="tcp://127.0.0.1:1", max_memory=CAP
        )


@pytest.mark.parametrize(
    ("value", "needle"), [("3 parsecs", "unknown unit"), ("0", "at least 1 byte"), (-5, "")]
)
def test_bad_sizes_are_config_errors(value: object, needle: str) -> None:
    with pytest.raises(crunch.ConfigError, match="max_memory") as info:
        crunch.run(memtasks.grow, range(3), max_memory=value)
    assert needle in str(info.value)


def test_sizes_read_as_split_size_reads_them() -> None:
    assert crunch.RunConfig.build(max_memory="1.5GiB").max_memory == 3 * (1 << 29)
    assert crunch.RunConfig.build(max_memory=1000).max_memory == 1000


# ------------------------------------------------------------------------------- the command
def test_cli_hog_fails_alone(tmp_path: Path) -> None:
    """The command: --max-memory 300MiB, a hog line among good ones: exit 1, one memory record."""
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f"{x}\n" for x in [*range(10), -1, *range(10, 20)]))
    args = ["--jsonl", str(source), "--task", "memtasks:grow", "-j", "2", "--max-memory", CAP]
    out = subprocess.run(
        crunch_cmd("process", *args),
        env=env(),
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 1, out.stderr.decode()
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["item"] for r in records) == list(range(1, 22))
    bad = [r for r in records if not r["ok"]]
    assert [(r["item"], r["error"]["kind"]) for r in bad] == [(11, "memory")]
    assert b"failed 1 (memory 1)" in out.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mode", "thread", "--max-memory", "1GiB"], "--max-memory: mode 'thread'"),
        (["--max-memory", "lots"], "--max-memory: invalid size 'lots'"),
    ],
)
def test_cli_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    out = subprocess.run(
        crunch_cmd("process", str(tmp_path / "a.txt"), *args),
        env=env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert needle in out.stderr.decode()
    assert b"Traceback" not in out.stderr
    assert out.stdout == b""


@pytest.mark.dask
def test_dask_local_cluster_caps_each_worker() -> None:
    """Dask mode: the local cluster's workers get Dask's memory limit at the cap; the item
    whose worker Dask restarts for it fails alone, kind memory."""
    items = [*range(10), -1, *range(10, 20)]
    results = list(
        crunch.imap(
            memtasks.grow, items, mode="dask", workers=2, timeout=30, max_memory=CAP, chunk_size=1
        )
    )
    records = _one_record_each(results, 21)
    failure = records.pop(10).error
    assert failure is not None
    assert (failure.kind, failure.type) == ("memory", "MemoryError"), failure
    assert "memory limit of 300 MiB" in failure.message
    assert {k: r.value for k, r in records.items()} == {
        k: (k if k < 10 else k - 1) ** 2 for k in records
    }
