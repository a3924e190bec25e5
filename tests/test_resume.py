"""The --resume side of the output file, on real files (crunch._resume)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crunch._exceptions import UsageError
from crunch._resume import (
    MAX_BAD_LINES_SHOWN,
    ResumeState,
    drop_stale,
    mark_seen,
    prepare_resume,
    scan_resume,
)


def ok(key: Any, value: Any = 1) -> bytes:
    return orjson.dumps({"item": key, "ok": True, "value": value, "seconds": 0.1, "attempts": 1})


def failed(key: Any) -> bytes:
    error = {"kind": "error", "type": "ValueError", "message": "bad", "traceback": ""}
    return orjson.dumps({"item": key, "ok": False, "error": error, "seconds": 0.1, "attempts": 1})


def write(path: Path, *lines: bytes, torn: bytes = b"") -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines) + torn)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "results.jsonl"


def test_missing_file_means_nothing_done_and_is_not_created(out: Path) -> None:
    """A results file that does not exist gives an empty done set and is left absent."""
    state = prepare_resume(out)
    assert state == ResumeState()
    assert state.done == set()
    assert not out.exists()


def test_empty_file_means_nothing_done(out: Path) -> None:
    """An empty file is a valid file with no records; it is not rewritten."""
    out.write_bytes(b"")
    state = prepare_resume(out)
    assert state.done == set()
    assert state.existed
    assert not state.rewritten


def test_torn_last_line_is_removed_and_not_parsed(out: Path) -> None:
    """A last line without its newline (a killed run) is dropped; the complete lines are kept."""
    write(out, ok("a"), ok("b"), torn=b'{"item": "c", "ok": tr')
    state = prepare_resume(out)
    assert state.done == {"a", "b"}
    assert state.repaired_torn_line
    assert state.rewritten
    assert out.read_bytes() == ok("a") + b"\n" + ok("b") + b"\n"


def test_torn_last_line_is_dropped_even_when_it_is_valid_json(out: Path) -> None:
    """Only a line with its newline was written whole: a complete-looking torn line is dropped."""
    write(out, ok("a"), torn=ok("b"))
    state = prepare_resume(out)
    assert state.done == {"a"}
    assert state.repaired_torn_line
    assert lines_of(out) == [ok("a")]


def test_failed_records_are_dropped_and_ok_records_kept(out: Path) -> None:
    """After prepare the file holds only the ok records; failed items are not done."""
    write(out, ok("a"), failed("b"), ok("c"), failed("d"))
    state = prepare_resume(out)
    assert state.done == {"a", "c"}
    assert state.kept == 2
    assert state.dropped_failed == 2
    assert lines_of(out) == [ok("a"), ok("c")]


def test_two_ok_records_for_one_key_are_refused_and_the_file_kept(out: Path) -> None:
    """A key with two ok records named two items: dropping either would lose a record."""
    write(out, ok("a", "old"), ok("b"), ok("a", "new"), ok(7), ok(7))
    before = out.read_bytes()
    with pytest.raises(UsageError) as info:
        prepare_resume(out)
    message = str(info.value)
    assert '"a" on lines 1 and 3' in message
    assert "7 on lines 4 and 5" in message
    assert "left unchanged" in message
    assert out.read_bytes() == before


def test_an_ok_record_anywhere_makes_the_item_done(out: Path) -> None:
    """A failed record before or after an ok one for the same key does not undo it."""
    write(out, failed("a"), ok("a"), ok("b"), failed("b"))
    state = prepare_resume(out)
    assert state.done == {"a", "b"}
    assert lines_of(out) == [ok("a"), ok("b")]


def test_keys_keep_their_json_types(out: Path) -> None:
    """The key 7 and the key "7" are different items."""
    write(out, ok(7), failed("7"), ok("8"), failed(8))
    state = prepare_resume(out)
    assert state.done == {7, "8"}
    assert 7 in state.done
    assert "7" not in state.done
    assert lines_of(out) == [ok(7), ok("8")]


def test_garbage_in_the_middle_is_an_error_listing_every_bad_line(out: Path) -> None:
    """Lines that are not records raise UsageError naming the file and each line number."""
    bad = [
        b"not json",
        b"[1, 2]",
        b'{"ok": true}',
        b'{"item": "x"}',
        b'{"item": true, "ok": true}',
        b'{"item": 1.5, "ok": true}',
        b'{"item": "x", "ok": "yes"}',
    ]
    write(out, ok("a"), bad[0], ok("b"), *bad[1:], ok("c"), torn=b'{"item"')
    before = out.read_bytes()
    mtime = out.stat().st_mtime_ns
    with pytest.raises(UsageError) as info:
        prepare_resume(out)
    message = str(info.value)
    assert str(out) in message
    assert "7 lines are not a crunch result record" in message
    assert "(line 2, 4, 5, 6, 7, 8, 9)" in message
    assert out.read_bytes() == before
    assert out.stat().st_mtime_ns == mtime


def test_garbage_line_numbers_are_capped(out: Path) -> None:
    """Past MAX_BAD_LINES_SHOWN bad lines the message says how many more there are."""
    write(out, *([b"junk"] * (MAX_BAD_LINES_SHOWN + 10)), ok("a"))
    with pytest.raises(UsageError, match=r"30 lines are .* and 10 more\)") as info:
        prepare_resume(out)
    listed = re.search(r"\(line ([\d, ]+) and", str(info.value))
    assert listed is not None
    assert listed.group(1).split(", ") == [str(n) for n in range(1, MAX_BAD_LINES_SHOWN + 1)]


def test_blank_lines_are_dropped_quietly(out: Path) -> None:
    """Whitespace-only lines are not records and not errors; they disappear on rewrite."""
    write(out, ok("a"), b"", b"  \t", ok("b"))
    state = prepare_resume(out)
    assert state.done == {"a", "b"}
    assert lines_of(out) == [ok("a"), ok("b")]


def test_clean_file_is_not_rewritten(out: Path) -> None:
    """A file of ok records only, one per key, is left as it is (same inode, same bytes)."""
    write(out, ok("a"), ok(2))
    inode = out.stat().st_ino
    state = prepare_resume(out)
    assert state == ResumeState(lines={"a": 1, 2: 2}, kept=2, existed=True)
    assert state.done == {"a", 2}
    assert out.stat().st_ino == inode


def test_rewrite_keeps_bytes_permissions_and_leaves_no_temp_file(out: Path) -> None:
    """Kept lines are copied byte for byte, the mode is kept, and no temporary file remains."""
    spaced = b'{ "item" : "a" , "ok" : true , "value" : "caf\\u00e9" }'
    write(out, spaced, failed("b"))
    out.chmod(0o640)
    prepare_resume(out)
    assert out.read_bytes() == spaced + b"\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.jsonl"]


def test_rewrite_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    """When -o FILE is a link, its target is rewritten and the link stays a link."""
    target = write(tmp_path / "real.jsonl", ok("a"), failed("b"))
    link = tmp_path / "out.jsonl"
    link.symlink_to(target.name)
    assert prepare_resume(link).done == {"a"}
    assert link.is_symlink()
    assert lines_of(target) == [ok("a")]


def test_failed_rewrite_leaves_the_original_untouched(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the atomic replace fails, the original file is intact and the temp file is removed."""
    write(out, ok("a"), failed("b"))
    before = out.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(UsageError, match="cannot rewrite it"):
        prepare_resume(out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.jsonl"]


def test_a_directory_is_not_a_results_file(tmp_path: Path) -> None:
    """Resuming from a directory is a usage error, not a crash."""
    with pytest.raises(UsageError, match="not a regular file"):
        prepare_resume(tmp_path)


def test_resumed_file_can_be_appended_to(out: Path) -> None:
    """After prepare, appending a new record gives one whole record per item."""
    write(out, ok("a"), failed("b"), torn=b'{"item": "c"')
    state = prepare_resume(out)
    with open(out, "ab") as f:
        f.write(ok("b") + b"\n")
    assert state.done == {"a"}
    assert [orjson.loads(line)["item"] for line in lines_of(out)] == ["a", "b"]


records = st.lists(
    st.tuples(st.one_of(st.integers(0, 3), st.sampled_from(["0", "1", "x"])), st.booleans()),
    max_size=12,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=80)
@given(history=records, torn=st.booleans())
def test_prepare_matches_a_simple_model(
    out: Path, history: list[tuple[Any, bool]], torn: bool
) -> None:
    """For any record history: done = keys with an ok record; file = each one's ok line; a key
    with two ok records is refused and the file left as it was."""
    lines = [ok(key, i) if good else failed(key) for i, (key, good) in enumerate(history)]
    write(out, *lines, torn=b'{"item": 9, "ok": true' if torn else b"")
    oks = [key for key, good in history if good]
    if len(oks) != len(set(oks)):
        before = out.read_bytes()
        with pytest.raises(UsageError, match="two ok records"):
            prepare_resume(out)
        assert out.read_bytes() == before
        return
    state = prepare_resume(out)

    only_ok = {key: i for i, (key, good) in enumerate(history) if good}
    assert state.done == set(only_ok)
    assert state.repaired_torn_line == torn
    assert lines_of(out) == [lines[i] for i in sorted(only_ok.values())]
    assert state.kept == len(only_ok)
    assert state.dropped_failed == sum(not good for _, good in history)
    assert prepare_resume(out).rewritten is False  # a second prepare finds nothing to do


# --- what is not a crunch results file is never emptied ---------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"my notes", b"hello\nworld", b"{}", b'{"it": 1}', b"\xef\xbb\xbfdata", b' {"item":'],
    ids=["text", "text-then-torn", "json", "another-json", "bom-text", "indented"],
)
def test_a_last_line_that_cannot_be_a_torn_record_is_refused(out: Path, content: bytes) -> None:
    """Only a line starting as records do ('{"item":') can be torn from one: a file without a
    final newline that is anything else is refused, never erased."""
    out.write_bytes(content)
    with pytest.raises(UsageError, match="not a crunch result record"):
        prepare_resume(out)
    assert out.read_bytes() == content


@pytest.mark.parametrize("torn", [b"{", b'{"it', b'{"item":', b'{"item":"a","ok":tr'])
def test_a_torn_start_of_a_record_is_repaired(out: Path, torn: bytes) -> None:
    """A killed run may leave any prefix of a record: it is removed, never parsed."""
    write(out, ok("z"), torn=torn)
    state = prepare_resume(out)
    assert state.repaired_torn_line
    assert lines_of(out) == [ok("z")]


def test_a_file_that_is_one_torn_record_is_emptied(out: Path) -> None:
    """A first write cut short leaves no newline at all: still a torn record, removed."""
    out.write_bytes(b'{"item":"a","ok":true,"va')
    assert prepare_resume(out).done == set()
    assert out.read_bytes() == b""


# --- scan first, change later; records of items gone --------------------------------------


def test_scan_changes_nothing_until_apply(out: Path) -> None:
    """scan_resume only reads: a check can still refuse with the file as it was."""
    write(out, ok("a", {"n": 1}), failed("b"), torn=b'{"item"')
    before = out.read_bytes()
    plan = scan_resume(out)
    assert set(plan.lines) == {"a"}
    assert plan.recorded_value("a") == {"n": 1}
    assert out.read_bytes() == before
    plan.apply()
    assert lines_of(out) == [ok("a", {"n": 1})]


def test_drop_stale_removes_only_the_records_of_keys_not_met(out: Path) -> None:
    """Keys marked as met stay; the others' records go; appended records are kept."""
    write(out, ok("kept"), ok("gone"), ok(3))
    state = prepare_resume(out)
    assert mark_seen(state.lines, "kept")
    assert not mark_seen(state.lines, "new")
    with open(out, "ab") as f:
        f.write(ok("new") + b"\n")
    assert drop_stale(out, state) == 2
    assert lines_of(out) == [ok("kept"), ok("new")]
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.jsonl"]


def test_drop_stale_with_nothing_stale_leaves_the_file(out: Path) -> None:
    write(out, ok("a"))
    state = prepare_resume(out)
    mark_seen(state.lines, "a")
    inode = out.stat().st_ino
    assert drop_stale(out, state) == 0
    assert out.stat().st_ino == inode
