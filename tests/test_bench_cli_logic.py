"""The logic behind ``crunch bench`` (crunch._bench): sample, time each mode, table, plot."""

from __future__ import annotations

import sys
from pathlib import Path

import faults
import pytest

from crunch import _bench
from crunch._exceptions import MissingExtraError, UsageError
from crunch.tasks._stats import stats


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> _bench.BenchReport:
    """One real run of the stats task over a few files, in every local mode, on 2 workers."""
    root = tmp_path_factory.mktemp("bench")
    files = []
    for index in range(12):
        path = root / f"f{index:02d}.txt"
        path.write_bytes(b"hello world\n" * (index + 1) * 50)
        files.append(path)
    return _bench.bench_modes(stats, files, workers=2)


def test_sample_is_deterministic_and_in_input_order() -> None:
    """The same seed picks the same items, in their input order; another seed differs."""
    items = list(range(1000))
    first = _bench.sample(items, 20, seed=7)
    assert first == _bench.sample(items, 20, seed=7)
    assert first == sorted(first)
    assert len(set(first)) == 20
    assert _bench.sample(items, 20, seed=8) != first


def test_sample_of_few_items_takes_them_all() -> None:
    """Asking for more items than there are returns every item."""
    assert _bench.sample(["a", "b"], 5, seed=0) == ["a", "b"]


def test_every_mode_is_timed_on_every_item(report: _bench.BenchReport) -> None:
    """Each local mode ran the whole sample without failures; sync on one worker."""
    assert [t.mode for t in report.timings] == ["sync", "thread", "async", "process"]
    for timing in report.timings:
        assert timing.items == 12
        assert timing.ok == 12
        assert timing.failed == 0
        assert timing.seconds is not None
        assert timing.seconds > 0
        assert timing.workers == (1 if timing.mode == "sync" else 2)
    assert report.speedup("sync") == pytest.approx(1.0)


def test_table_names_every_mode_and_the_fastest(report: _bench.BenchReport) -> None:
    """The table has a row per mode with items/s and speedup, and names the fastest mode."""
    table = report.table()
    lines = table.splitlines()
    for mode in _bench.LOCAL_MODES:
        assert any(line.startswith(mode) for line in lines), mode
    assert "items/s" in lines[1]
    assert "speedup" in lines[1]
    assert "start-up" in lines[1]
    assert report.fastest in _bench.LOCAL_MODES
    assert sum(line.startswith(f"fastest: {report.fastest}") for line in lines) == 1
    fastest = report.timing(report.fastest)
    assert fastest is not None
    assert all(
        fastest.seconds is not None and t.seconds is not None and fastest.seconds <= t.seconds
        for t in report.timings
    )


def test_start_up_is_split_from_the_per_item_rate() -> None:
    """From a full run and a short one, the fixed start-up and the per-item rate separate."""
    # 0.5 s start-up + 1 ms an item: 100 items take 0.6 s, 2 items 0.502 s.
    assert _bench._startup(0.6, 100, 0.502, 2) == pytest.approx(0.5)
    assert _bench._startup(0.6, 100, None, 2) is None
    assert _bench._startup(0.4, 100, 0.5, 2) is None  # noise: the short run took longer


def test_table_names_the_mode_fastest_at_scale_when_start_up_hides_it() -> None:
    """A mode slow on the sample only because of its start-up is named as fastest at scale."""
    report = _bench.BenchReport(items=100, workers=2)
    report.timings += [
        _bench.ModeTiming("sync", 1, 100, 1.0, (1.0,), ok=100, startup=0.0),
        _bench.ModeTiming("process", 2, 100, 1.2, (1.2,), ok=100, startup=0.9),
    ]
    assert report.fastest == "sync"
    assert report.fastest_at_scale == "process"
    assert report.table().splitlines()[-1].startswith("at scale: process")


def test_a_mode_that_cannot_run_the_task_is_reported_not_raised() -> None:
    """A task process mode cannot import is a row with its reason; the others still run."""

    def local(item: int) -> int:
        return item

    report = _bench.bench_modes(local, [1, 2, 3], workers=2, modes=("sync", "process"))
    process = report.timing("process")
    assert process is not None
    assert process.seconds is None
    assert process.error is not None
    assert "process mode" in process.error
    assert report.fastest == "sync"
    assert "could not run" in report.table()


def test_failing_items_are_counted() -> None:
    """Items that raise are timed like the others and counted as failed."""
    report = _bench.bench_modes(faults.square_or_fail, range(20), workers=2, modes=("thread",))
    timing = report.timing("thread")
    assert timing is not None
    assert (timing.ok, timing.failed) == (18, 2)


def test_no_items_is_a_usage_error() -> None:
    """An empty sample cannot be timed."""
    with pytest.raises(UsageError, match="no items"):
        _bench.bench_modes(faults.square, [], workers=2)


def test_plot_writes_a_png(report: _bench.BenchReport, tmp_path: Path) -> None:
    """With matplotlib installed, plot() writes a PNG file."""
    pytest.importorskip("matplotlib")
    path = _bench.plot(report, tmp_path / "modes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(
    report: _bench.BenchReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib, plot() raises MissingExtraError naming the crunch[plot] extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(MissingExtraError, match=r"crunch\[plot\]"):
        _bench.plot(report, tmp_path / "modes.png")
    assert not (tmp_path / "modes.png").exists()
