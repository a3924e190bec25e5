"""The progress bar: tqdm's notebook widget in Jupyter, the text bar elsewhere (README: library)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from helpers import env


def test_progress_bar_comes_from_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's class is whatever tqdm.auto picks (the notebook widget inside Jupyter)."""
    import tqdm.auto

    from crunch.sinks import Progress

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
        "import io, collections, tqdm.std, tqdm.notebook\n"
        "from crunch.sinks import Progress\n"
        "R = collections.namedtuple('R', 'ok')\n"
        "out = io.StringIO()\n"
        "p = Progress(None, total=4, file=out)\n"
        "p.update([R(True), R(False)])\n"
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
