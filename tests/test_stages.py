"""Every stage of an item's trip, failing every way it can, fails that item alone.

The table is ``stages.CASES`` (stage x fault, and the modes where the stage exists). Each case
runs one bad item among 40 good ones, as a user would (``crunch.imap(..., workers=2,
timeout=20)``), and checks: exactly one record per item, the bad item's record (kind, type,
the stage named in its message), every good item's value, and no worker process left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stages
from helpers import crunch_cmd, env, worker_pids

import crunch

LOCAL = ("sync", "thread", "async", "async_def", "process")
BAD = 20  # the bad item's key: 20 good items before it, 20 after


def _params(modes: tuple[str, ...]) -> list[object]:
    return [
        pytest.param(case, mode, id=f"{case.id}-{mode}")
        for case in stages.CASES
        for mode in case.modes
        if mode in modes
    ]


def _items(case: stages.Case) -> list[object]:
    return [*range(BAD), stages.bad_item(case.stage, case.how), *range(BAD, 40)]


def _check(case: stages.Case, mode: str, results: list[crunch.ItemResult]) -> None:
    keys = [r.key for r in results]
    assert sorted(keys) == list(range(41)), "not exactly one record per item"
    by_key = {r.key: r for r in results}
    bad = by_key.pop(BAD)
    if case.kind(mode) is None:
        assert bad.ok, bad.error
    else:
        assert not bad.ok, bad
        case.check(bad.error, mode)
        assert bad.attempts == 1
    expected = {k: (k if k < BAD else k - 1) ** 2 for k in by_key}
    failed = {k: r.error for k, r in by_key.items() if not r.ok}
    assert failed == {}, "innocent items failed"
    assert {k: r.value for k, r in by_key.items()} == expected


def _no_workers_left() -> None:
    deadline = time.monotonic() + 10
    while worker_pids(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_pids(os.getpid()) == [], "worker processes left running"


@pytest.mark.parametrize(("case", "mode"), _params(LOCAL))
def test_stage_fault_fails_only_its_item(case: stages.Case, mode: str) -> None:
    """The bad item fails alone, with its stage named; the 40 good items are ok."""
    fn, run_mode = (stages.atask, "async") if mode == "async_def" else (stages.task, mode)
    results = list(crunch.imap(fn, _items(case), mode=run_mode, workers=2, timeout=20))
    _check(case, mode, results)
    _no_workers_left()


@pytest.mark.parametrize("stage", ["send", "load", "return", "receive"])
def test_a_chunk_of_one_bad_item(stage: str) -> None:
    """A chunk that holds nothing but the bad item fails it, with its stage named."""
    case = stages.Case(stage, "sysexit", ("process",))
    item = stages.bad_item(stage, "sysexit")
    results = list(crunch.imap(stages.task, [item], mode="process", workers=1, chunk_size=1))
    assert len(results) == 1
    case.check(results[0].error, "process")


def test_several_bad_items_in_one_chunk() -> None:
    """Bad items of every stage in one big chunk: each fails alone, the good ones are ok."""
    bad = {
        3: stages.Case("send", "error", ()),
        7: stages.Case("load", "sysexit", ()),
        11: stages.Case("return", "keyboard", ()),
        15: stages.Case("receive", "base", ()),
        19: stages.Case("run", "sysexit", ()),
    }
    items = [stages.bad_item(bad[i].stage, bad[i].how) if i in bad else i for i in range(30)]
    results = list(crunch.imap(stages.task, items, mode="process", workers=2, chunk_size=30))
    assert sorted(r.key for r in results) == list(range(30))
    for result in results:
        if result.key in bad:
            bad[result.key].check(result.error, "process")
        else:
            assert result.ok, result
            assert result.value == result.key**2


# ------------------------------------------------------------------------------- the command
CLI_TASK = """\
import stages


def run(item):
    if item["stage"] == "ok":
        return item["x"] * 2
    return stages.task(stages.Bad(item["stage"], item["how"]))
"""


def _run_cli(tmp_path: Path, stage: str, how: str) -> tuple[subprocess.CompletedProcess, list]:
    task = tmp_path / "cli_stage_task.py"
    task.write_text(CLI_TASK)
    lines = [{"stage": "ok", "x": i} for i in range(20)]
    lines.insert(10, {"stage": stage, "how": how})
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = subprocess.run(
        crunch_cmd(
            "process", "--jsonl", str(source), "--task", f"{task}:run", "-j", "2", "--timeout", "20"
        ),
        env=env(),
        capture_output=True,
        timeout=90,
        check=False,
    )
    records = [json.loads(line) for line in out.stdout.splitlines()]
    return out, records


@pytest.mark.parametrize(
    ("stage", "how"), [("receive", "sysexit"), ("return", "sysexit"), ("receive", "keyboard")]
)
def test_cli_reports_the_stage_and_goes_on(tmp_path: Path, stage: str, how: str) -> None:
    """The command: the bad line fails alone, the others are written, exit 1.

    The command's workers write each record themselves, so a value never crosses back as a
    pickle: the stages where it is pickled and unpickled do not exist there. A value that
    misbehaves when pickled is still not JSON, and fails alone as that; its pickling hooks
    (which raise SystemExit or KeyboardInterrupt here) never run.
    """
    out, records = _run_cli(tmp_path, stage, how)
    assert out.returncode == 1, out.stderr.decode()
    assert sorted(r["item"] for r in records) == list(range(1, 22))
    bad = next(r for r in records if r["item"] == 11)
    assert not bad["ok"]
    assert bad["error"]["type"] == "TypeError"
    assert "not JSON-serialisable" in bad["error"]["message"]
    assert all(r["ok"] for r in records if r["item"] != 11)
    assert b"failed 1 (error 1)" in out.stderr


# ------------------------------------------------------------------------------- dask
@pytest.fixture(scope="module")
def dask_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("distributed")
    from dask_cluster import dask_cluster

    with dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        cluster.wait_ready()
        yield cluster.address


@pytest.mark.dask
@pytest.mark.parametrize(("case", "mode"), _params(("dask",)))
def test_stage_fault_on_a_dask_cluster(case: stages.Case, mode: str, dask_address: str) -> None:
    """The same table on a real dask cluster: the bad item fails alone."""
    results = list(
        crunch.imap(
            stages.task, _items(case), mode="dask", scheduler=dask_address, workers=2, timeout=20
        )
    )
    _check(case, mode, results)
