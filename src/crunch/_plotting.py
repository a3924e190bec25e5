"""Where pictures come from: matplotlib, the optional extra ``crunch[plot]``, loaded on demand.

``figure_module()`` is the one way crunch loads it (``crunch bench --plot``, ``crunch report
--plot``): matplotlib is slow to import and optional, so it is imported by name, only when a
picture is asked for; without it, ``MissingExtraError`` says how to install it
(``check_installed()`` says the same up front, without the import). Figures are bare
``matplotlib.figure.Figure`` objects (no pyplot): no GUI backend, no global state, and
``savefig`` renders with Agg.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from crunch._exceptions import MissingExtraError

PLOT_INSTALL = "pip install 'crunch[plot]'  (or: uv add 'crunch[plot]')"
_MISSING = f"drawing a plot needs matplotlib, the optional extra crunch[plot]: {PLOT_INSTALL}"


def check_installed() -> None:
    """Raise ``MissingExtraError`` now when matplotlib is not there (without importing it, which
    takes a second or more: for a command to check its options before it starts working)."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(_MISSING)


def figure_module() -> ModuleType:
    """``matplotlib.figure``, or ``MissingExtraError`` naming the extra to install."""
    try:
        return importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise MissingExtraError(_MISSING) from exc
