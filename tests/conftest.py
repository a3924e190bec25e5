"""Shared fixtures: the behaviour suite runs once per local mode."""

from __future__ import annotations

import pytest

LOCAL_MODES = ("sync", "thread", "async", "process")


@pytest.fixture(params=LOCAL_MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each local execution mode in turn."""
    return request.param
