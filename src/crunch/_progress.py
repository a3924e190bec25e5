"""The progress bar, for the library (``progress=True``) and the command alike.

Records, logs and the summary of the command are written by ``crunch._output``.

``open_progress`` is the one place that decides whether a run shows a bar, and with what
total; the run's stream (``crunch._stream``) opens it there, updates it and closes it.

``Progress`` draws a tqdm bar on standard error: done/total, rate, ETA and the failure count.
The total is the number of items found so far, so it grows while a walk is still running.

On a terminal the bar redraws itself in place. Anywhere else (``--progress`` with standard
error sent to a file or a pipe) each redraw is a line of its own, and a redraw that would
repeat the line before it is left out, so the file reads as a log: the final state appears
once, not once per log line printed above the bar and again when it closes.

The bar class comes from ``tqdm.auto``, which picks tqdm's notebook widget inside a Jupyter
kernel (when ipywidgets is installed; without it tqdm warns and falls back to text) and the
plain text bar everywhere else.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO


def open_progress(stats: Any, *, show: bool | None, items: Any = None) -> Progress | None:
    """The bar of a run whose counters are ``stats``, or None when it shows none.

    ``show``: True or False as asked (the library's ``progress=``, the command's
    ``--progress``/``--no-progress``); None (the command's default): a bar when standard error
    is a terminal. The total is ``len(items)`` for a list, tuple or range, else the number of
    items found so far (it grows while a walk runs).
    """
    if show is None:
        show = _is_terminal(sys.stderr)
    if not show:
        return None
    total = len(items) if isinstance(items, (list, tuple, range)) else None
    return Progress(stats, total=total)


class Progress:
    def __init__(self, stats: Any, *, total: int | None = None, file: TextIO | None = None) -> None:
        from tqdm.auto import tqdm

        self.stats = stats
        self.fixed_total = total
        self.failed = 0
        stream = file or sys.stderr
        if not _is_terminal(stream):
            stream = _Lines(stream)
        self.bar = tqdm(
            total=total,
            unit="item",
            file=stream,
            dynamic_ncols=True,
            smoothing=0.05,
            mininterval=0.2,
        )

    def update(self, done: int, failed: int) -> None:
        """Count ``done`` more items, ``failed`` of them failed.

        The caller passes a batch's own counters (``len(batch)``, ``batch.failed``): the bar
        never iterates a batch, which would build every result of a lazy one a second time.
        """
        if self.fixed_total is None:
            found = max(self.stats.found, self.bar.n + done)
            if found != self.bar.total:
                self.bar.total = found
        if failed:
            self.failed += failed
            self.bar.set_postfix_str(f"failed={self.failed}", refresh=False)
        self.bar.update(done)

    def write(self, message: str) -> None:
        """Print a line above the bar without garbling it."""
        self.bar.write(message, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# The elapsed<remaining time and the rate tqdm shows first in its brackets.
_TIMING = re.compile(r"\[[^,\]]*(?:, [^,\]]*)?")


class _Lines:
    """A stream for the bar where no terminal can redraw it: one line per distinct redraw.

    tqdm draws ``"\r" + bar`` and clears with ``"\r" + spaces + "\r"``; here a clear is
    dropped, a redraw becomes a line unless it shows the same counts as the last one (only its
    time and rate differ), and other text (the log lines written above the bar) goes through
    as it is.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = ""
        self.open = False  # other text was written, its line not yet ended

    def write(self, text: str) -> int:
        if "\r" in text:
            shown = text.replace("\r", "").rstrip()
            counts = _TIMING.sub("[", shown)  # the same counts at another time or rate
            if shown and counts != self.last:
                self.stream.write(("\n" if self.open else "") + shown + "\n")
                self.last = counts
                self.open = False
        elif text == "\n" and not self.open:
            pass  # the newline tqdm ends a closed bar with: its line is ended already
        elif text:
            self.stream.write(text)
            self.open = not text.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
