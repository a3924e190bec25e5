"""The command's options skip pydantic when plainly valid, and only then (crunch._settings).

``from_command`` must accept nothing ``RunConfig`` refuses, and give the values ``RunConfig``
gives; for valid options it must actually take the shortcut (else every run loads pydantic).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crunch._config import RunConfig
from crunch._exceptions import ConfigError
from crunch._settings import FIELDS, Settings, from_command

# What click hands over for each option of `crunch process` (see _cli.py and _command.py):
# ints, floats and strings as typed, tuples for repeatable options; some junk besides.
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 0.01, 5.0, 1e6])
OPTIONS = {
    "mode": st.sampled_from(["process", "thread", "async", "sync", "dask", "fork"]),
    "workers": st.integers(-2, 5000),
    "chunk_size": st.sampled_from(["auto", "1", "64", " 8 ", "0", "-3", "x", "1.5", "²", "٣"])
    | st.text(max_size=4),
    "timeout": st.none() | floats,
    "retries": st.integers(-2, 120),
    "retry_on": st.lists(
        st.sampled_from(
            ["OSError", "ConnectionError", "ValueError", "Nope", "", "json.JSONDecodeError"]
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    "max_failures": st.none() | st.integers(-1, 3),
    "ordered": st.booleans(),
    "grace": floats,
    "scheduler": st.none() | st.sampled_from(["tcp://h:8786", "h:8786", ""]),
    "max_memory": st.none() | st.sampled_from(["2GiB", "1", "0", "1.5GiB", "lots", "100MB"]),
}


def _validated(options: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(RunConfig.build(**options))
    except ConfigError:
        return None


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional=OPTIONS))
def test_the_shortcut_agrees_with_runconfig(options: dict[str, Any]) -> None:
    quick = from_command(options)
    full = _validated(options)
    if quick is not None:
        assert full is not None, f"accepted what RunConfig refuses: {options}"
        assert dataclasses.asdict(quick) == full
    elif full is not None:
        # Only a dotted --retry-on name is left to RunConfig when valid (it imports a module).
        assert any("." in name for name in options.get("retry_on", ())), options


def test_the_command_defaults_take_the_shortcut() -> None:
    """What `crunch process FILE` passes, untouched options included."""
    options = {
        "mode": "process",
        "chunk_size": "auto",
        "timeout": None,
        "retries": 0,
        "max_failures": None,
        "ordered": False,
        "grace": 5.0,
        "scheduler": None,
        "max_memory": None,
    }
    assert from_command(options) == Settings.of(RunConfig.build(**options))


def test_settings_has_the_fields_and_defaults_of_runconfig() -> None:
    assert tuple(RunConfig.model_fields) == FIELDS
    assert Settings() == Settings.of(RunConfig())
