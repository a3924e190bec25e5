"""The progress bar, for the library (``progress=True``) and the command alike.

Records, logs and the summary of the command are written by ``crunch._output``.

``Progress`` draws a tqdm bar on standard error: done/total, rate, ETA and the failure count.
The total is the number of items found so far, so it grows while a walk is still running.

The bar class comes from ``tqdm.auto``, which picks tqdm's notebook widget inside a Jupyter
kernel (when ipywidgets is installed; without it tqdm warns and falls back to text) and the
plain text bar everywhere else.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    def __init__(self, stats: Any, *, total: int | None = None, file: TextIO | None = None) -> None:
        from tqdm.auto import tqdm

        self.stats = stats
        self.fixed_total = total
        self.failed = 0
        self.bar = tqdm(
            total=total,
            unit="item",
            file=file or sys.stderr,
            dynamic_ncols=True,
            smoothing=0.05,
            mininterval=0.2,
        )

    def update(self, batch: list[Any]) -> None:
        failed = getattr(batch, "failed", None)
        if failed is None:
            failed = sum(1 for r in batch if not r.ok)
        if self.fixed_total is None:
            found = max(self.stats.found, self.bar.n + len(batch))
            if found != self.bar.total:
                self.bar.total = found
        if failed:
            self.failed += failed
            self.bar.set_postfix_str(f"failed={self.failed}", refresh=False)
        self.bar.update(len(batch))

    def write(self, message: str) -> None:
        """Print a line above the bar without garbling it."""
        self.bar.write(message, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()
