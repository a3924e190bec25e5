"""The command's logger loads structlog with its first event (crunch._output.Log)."""

from __future__ import annotations

import io
import json
import threading

from crunch._output import Log, setup_logging


def test_events_below_the_level_load_nothing() -> None:
    made: list[int] = []
    log = Log(lambda: made.append(1), threshold=30)
    log.debug("quiet")
    log.info("quiet")
    assert made == []


def test_an_event_logged_while_structlog_loads_is_logged_after_it() -> None:
    """A stop signal's handler that logs while its own thread is importing structlog (for
    another event) must neither re-enter the half-done import nor lose its event."""
    logged: list[str] = []

    class Logger:
        def warning(self, event: str, **_kw: object) -> None:
            logged.append(event)

    def make() -> Logger:
        log.warning("from the signal handler")  # as if a signal arrived mid-import
        return Logger()

    log = Log(make, threshold=30)
    log.warning("first")
    log.warning("after")
    assert logged == ["first", "from the signal handler", "after"]


def test_other_threads_wait_for_the_logger() -> None:
    started = threading.Event()
    release = threading.Event()
    logged: list[str] = []

    class Logger:
        def warning(self, event: str, **_kw: object) -> None:
            logged.append(event)

    def make() -> Logger:
        started.set()
        release.wait(5)
        return Logger()

    log = Log(make, threshold=30)
    first = threading.Thread(target=log.warning, args=("first",))
    first.start()
    started.wait(5)
    second = threading.Thread(target=log.warning, args=("second",))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert logged == ["first", "second"]


def test_the_structlog_output_is_the_configured_one() -> None:
    out = io.StringIO()
    log = setup_logging(fmt="json", level="warning", run_id="abc", stream=out)
    log.info("dropped")
    log.warning("item.failed", item="a")
    event = json.loads(out.getvalue())
    assert event["event"] == "item.failed"
    assert event["level"] == "warning"
    assert event["run_id"] == "abc"
    assert event["item"] == "a"
    assert "timestamp" in event
