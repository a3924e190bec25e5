"""The progress bar: tqdm's notebook widget in Jupyter, the text bar elsewhere (README: library)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import crunch_cmd, env


def test_progress_bar_comes_from_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's class is whatever tqdm.auto picks (the notebook widget inside Jupyter)."""
    import tqdm.auto

    from crunch._progress import Progress

    class Picked(tqdm.auto.tqdm):
        pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Picked)
    progress = Progress(None, total=3, file=io.StringIO())
    try:
        assert type(progress.bar) is Picked
    finally:
        progress.close()


def test_outside_a_notebook_the_bar_is_text() -> None:
    """In a plain interpreter (no Jupyter kernel) tqdm.auto gives the text bar."""
    code = (
        "import io, tqdm.std, tqdm.notebook\n"
        "from crunch._progress import Progress\n"
        "out = io.StringIO()\n"
        "p = Progress(None, total=4, file=out)\n"
        "p.update(2, 1)\n"
        "p.close()\n"
        "assert isinstance(p.bar, tqdm.std.tqdm), type(p.bar).__mro__\n"
        "assert not isinstance(p.bar, tqdm.notebook.tqdm), type(p.bar).__mro__\n"
        "assert '2/4' in out.getvalue(), out.getvalue()\n"
        "print('text bar')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"text bar\n"


def _final_bar(stderr: bytes) -> str:
    """The last line of the bar, as drawn where standard error is not a terminal."""
    return [line for line in stderr.decode().splitlines() if "item/s" in line][-1]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_library_bar_counts_every_item_and_each_failure(mode: str) -> None:
    """progress=True: the bar ends at the number of items, with the failures counted (the
    results of a chunk that all succeeded arrive unbuilt, and the bar counts them as such)."""
    code = (
        "import crunch, faults\n"
        f"batch = crunch.run(faults.square_or_fail, range(200), mode={mode!r}, workers=2,\n"
        "                   progress=True)\n"
        "print(len(batch.succeeded), len(batch.failed))\n"
    )
    _assert_200_items_and_20_failures(code)


def test_amap_draws_the_same_bar() -> None:
    """README "The library": progress=True draws a bar for amap too."""
    code = (
        "import asyncio, crunch, faults\n"
        "async def main():\n"
        "    results = [r async for r in crunch.amap(faults.square_or_fail, range(200),\n"
        "               mode='thread', workers=2, progress=True)]\n"
        "    print(sum(r.ok for r in results), sum(not r.ok for r in results))\n"
        "asyncio.run(main())\n"
    )
    _assert_200_items_and_20_failures(code)


def _assert_200_items_and_20_failures(code: str) -> None:
    """Run ``code`` (which prints its ok and failed counts): 180 ok, 20 failed, and the bar's
    last state says so."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"180 20\n"
    final = _final_bar(done.stderr)
    assert "200/200 " in final, final
    assert "failed=20" in final, final


def test_command_bar_counts_the_failures_of_encoded_records(tmp_path: Path) -> None:
    """--progress on the data plane (records encoded by the workers): the bar's failure count
    is the number of failed records."""
    items = tmp_path / "in.jsonl"
    items.write_text("".join(f"{x}\n" for x in range(100)))
    done = subprocess.run(
        crunch_cmd("process", "--jsonl", str(items), "--task", "faults:square_or_fail",
                   "--progress", "-o", str(tmp_path / "out.jsonl")),
        env=env(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    final = _final_bar(done.stderr)
    assert "100/100 " in final, final
    assert "failed=10" in final, final
