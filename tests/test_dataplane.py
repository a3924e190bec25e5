"""The data plane: workers read, decode, key, run and encode; the parent handles chunks.

Every guarantee holds on it as on the item-by-item path: one record per line (blank lines none),
crash attribution inside a line range, timeouts, retries, ``--resume``, ``--ordered``, the same
records in every mode and for every chunk size, and the library's ``crunch.jsonl`` and
``crunch.files`` sources give what the same items as Python objects give.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import dataplane_tasks
import pytest
from helpers import crunch_cmd, env

import crunch

N = 120


def write_records(path: Path, n: int = N, *, extras: bool = True) -> Path:
    """``n`` records ``{"id": i, "x": i}``; with ``extras`` a BOM, a blank line and a broken one."""
    lines = [json.dumps({"id": i, "x": i}) for i in range(1, n + 1)]
    if extras:
        lines.insert(3, "   ")  # blank: no item
        lines.insert(7, "{not json")  # broken: fails alone, keyed by its line number (8)
    data = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if extras else b"") + data.encode())
    return path


def run_cli(*args: str, **extra: str) -> tuple[subprocess.CompletedProcess[bytes], list[Any]]:
    out = subprocess.run(
        crunch_cmd("process", "--no-progress", *args),
        env=env(**extra),
        capture_output=True,
        timeout=100,
        check=False,
    )
    return out, [json.loads(line) for line in out.stdout.splitlines()]


def comparable(records: list[Any]) -> list[Any]:
    """Records without their timings, in key order."""
    return sorted(
        ({k: v for k, v in r.items() if k != "seconds"} for r in records),
        key=lambda r: (str(type(r["item"])), r["item"]),
    )


# ------------------------------------------------------------------------------- library
def test_library_jsonl_source_keys_values_and_broken_lines(mode: str, tmp_path: Path) -> None:
    """``crunch.jsonl``: keyed by line number (blank lines skipped, a BOM ignored), a broken
    line fails alone as JSONDecodeError; with ``key=`` keyed by that field."""
    path = write_records(tmp_path / "r.jsonl")
    batch = crunch.run(dataplane_tasks.double, crunch.jsonl(path), mode=mode, workers=2)
    lines = [n for n in range(1, N + 3) if n not in (4, 8)]
    assert sorted(batch.succeeded) == lines
    assert batch.failed[8].type == "JSONDecodeError"
    clean = write_records(tmp_path / "clean.jsonl", extras=False)
    by_id = crunch.run(dataplane_tasks.double, crunch.jsonl(clean, key="id"), mode=mode)
    assert by_id.succeeded == {i: 2 * i for i in range(1, N + 1)}


def test_library_jsonl_source_refuses_a_repeated_key_before_running(
    mode: str, tmp_path: Path
) -> None:
    """README "Inputs": ``crunch.jsonl(path, key=...)`` whose key names two lines raises
    ``DuplicateKeyError`` naming both, and no item has run."""
    path = tmp_path / "r.jsonl"
    path.write_text("".join(f'{{"id": {i % 50}}}\n' for i in range(51)))
    marker = tmp_path / "ran"
    with pytest.raises(crunch.DuplicateKeyError) as info:
        crunch.run(
            dataplane_tasks.touch_then_double(str(marker)),
            crunch.jsonl(path, key="id"),
            mode=mode,
            workers=2,
        )
    assert info.value.key == 0
    assert "names two items, line 1 and line 51" in str(info.value)
    assert not marker.exists()


def test_library_jsonl_source_equals_the_same_items_as_objects(mode: str, tmp_path: Path) -> None:
    """The fast path gives what decoding the lines in the caller gives, ordered included."""
    path = write_records(tmp_path / "r.jsonl", extras=False)
    items = [json.loads(line) for line in path.read_text().splitlines()]
    fast = list(crunch.imap(dataplane_tasks.double, crunch.jsonl(path), mode=mode, ordered=True))
    slow = list(crunch.imap(dataplane_tasks.double, items, mode=mode, ordered=True))
    assert [r.value for r in fast] == [r.value for r in slow]
    assert [r.key for r in fast] == [k + 1 for k in (r.key for r in slow)]  # lines are 1-based


def test_library_files_source(mode: str, tmp_path: Path) -> None:
    """``crunch.files``: every file under the roots, a ``Path`` keyed by its path string."""
    root = tmp_path / "tree"
    for i in range(30):
        sub = root / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_bytes(b"x" * i)
    (root / ".hidden").write_text("skipped unless hidden=True")
    batch = crunch.run(dataplane_tasks.size, crunch.files(root), mode=mode, workers=2)
    expected = {str(p): p.stat().st_size for p in root.rglob("f*.txt")}
    assert batch.succeeded == expected
    assert not batch.failed


# ------------------------------------------------------------------------------- command
def test_cli_jsonl_one_record_per_line_same_in_every_mode_and_chunk_size(
    tmp_path: Path,
) -> None:
    """Every mode and chunk size gives the same records; --ordered gives line order."""
    path = write_records(tmp_path / "r.jsonl")
    task = "dataplane_tasks:double"
    first = None
    for mode in ("sync", "thread", "async", "process"):
        for chunk in ("1", "7", "auto"):
            out, records = run_cli(
                "--jsonl", str(path), "--task", task, "--mode", mode, "--chunk-size", chunk
            )
            assert out.returncode == 1, out.stderr.decode()  # the broken line
            got = comparable(records)
            first = first if first is not None else got
            assert got == first, (mode, chunk)
    assert len(first) == N + 1
    out, records = run_cli("--jsonl", str(path), "--task", task, "--ordered", "--chunk-size", "5")
    assert [r["item"] for r in records] == [n for n in range(1, N + 3) if n != 4]


def test_cli_jsonl_a_nan_among_nones_fails_alone(tmp_path: Path) -> None:
    """README "Output": a None is recorded as null, a NaN fails its item, in one chunk."""
    path = write_records(tmp_path / "r.jsonl", extras=False)
    result, records = run_cli(
        "--jsonl", str(path), "--key", "id", "--task", "dataplane_tasks:none_nan_or_value"
    )
    assert result.returncode == 1, result.stderr
    by_id = {r["item"]: r for r in records}
    assert len(by_id) == N
    assert by_id[7]["ok"] is False
    assert "NaN" in by_id[7]["error"]["message"]
    assert all(by_id[i] == {**by_id[i], "ok": True, "value": None} for i in range(2, N + 1, 2))
    odd = [by_id[i]["value"] for i in range(1, N + 1, 2) if i != 7]
    assert odd == [{"x": i, "none": None} for i in range(1, N + 1, 2) if i != 7]


def test_cli_jsonl_crash_inside_a_range_blames_one_line(tmp_path: Path) -> None:
    """A line that kills its worker fails alone as a crash; every other line is ok, once."""
    path = write_records(tmp_path / "r.jsonl", 200, extras=False)
    out, records = run_cli(
        "--jsonl", str(path), "--key", "id", "--task", "dataplane_tasks:exit_on_37", "-j", "2"
    )
    assert out.returncode == 1, out.stderr.decode()
    assert sorted(r["item"] for r in records) == list(range(1, 201))
    bad = [r for r in records if not r["ok"]]
    assert [r["item"] for r in bad] == [37]
    assert bad[0]["error"]["kind"] == "crash"
    assert "exited with code 3" in bad[0]["error"]["message"]


def test_cli_jsonl_timeout_inside_a_range(tmp_path: Path) -> None:
    """A hung line is a timeout record; the lines around it are ok."""
    path = write_records(tmp_path / "r.jsonl", 40, extras=False)
    out, records = run_cli(
        "--jsonl", str(path), "--key", "id", "--task", "dataplane_tasks:hang_on_5",
        "--timeout", "1", "-j", "2",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr.decode()
    assert sorted(r["item"] for r in records) == list(range(1, 41))
    assert [r["item"] for r in records if not r["ok"]] == [5]
    assert next(r for r in records if r["item"] == 5)["error"]["kind"] == "timeout"


def test_cli_jsonl_retries_inside_a_range(tmp_path: Path) -> None:
    """Lines retried after a ConnectionError end ok with attempts 2, each recorded once."""
    path = write_records(tmp_path / "r.jsonl", 30, extras=False)
    marks = tmp_path / "marks"
    marks.mkdir()
    out, records = run_cli(
        "--jsonl", str(path), "--key", "id", "--task", "dataplane_tasks:flaky_on_even",
        "--retries", "2", "-j", "2", CRUNCH_TEST_MARKS=str(marks),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(r["item"] for r in records) == list(range(1, 31))
    assert all(r["ok"] for r in records)
    assert {r["item"]: r["attempts"] for r in records} == {
        i: 2 if i % 2 == 0 else 1 for i in range(1, 31)
    }


def test_cli_jsonl_resume_runs_only_what_failed(tmp_path: Path) -> None:
    """--resume on a JSON Lines run reruns just the failed lines; one record per line after."""
    path = write_records(tmp_path / "r.jsonl", 50, extras=False)
    out_file = tmp_path / "out.jsonl"
    args = ("--jsonl", str(path), "--key", "id", "--task", "dataplane_tasks:fail_when_told")
    out, _ = run_cli(*args, "-o", str(out_file), CRUNCH_TEST_FAIL="3,17,40")
    assert out.returncode == 1
    out, _ = run_cli(*args, "-o", str(out_file), "--resume")
    assert out.returncode == 0, out.stderr.decode()
    assert b"3 items" in out.stderr  # only the three failed ones ran again
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sorted(r["item"] for r in records) == list(range(1, 51))
    assert all(r["ok"] for r in records)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_cli_files_one_record_per_file(tmp_path: Path, mode: str) -> None:
    """A tree of files goes to workers as keys: one record per file, keyed by its path."""
    root = tmp_path / "tree"
    for i in range(40):
        sub = root / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:02d}.txt").write_text("a b\n" * i)
    out, records = run_cli(str(root), "--task", "checksum", "--mode", mode, "--ordered")
    assert out.returncode == 0, out.stderr.decode()
    keys = [r["item"] for r in records]
    assert keys == sorted(str(p) for p in root.rglob("*.txt"))  # depth first, names in order
    assert len(keys) == 40


def test_jsonl_ranges_hold_at_most_the_lines_asked_and_cover_the_file(tmp_path: Path) -> None:
    """The parent's cuts: each range holds at most the lines asked for (the first chunks are
    one line each, so short lines still spread over the workers), ranges follow each other
    with the right first line numbers, and together they are the whole file."""
    import random

    from crunch._feed import JsonlFeed

    for trial in range(60):
        rng = random.Random(trial)
        lines = ["x" * rng.randint(0, 200) for _ in range(rng.randint(1, 2000))]
        data = ("\n".join(lines) + ("\n" if rng.random() < 0.7 else "")).encode()
        path = tmp_path / f"t{trial}.jsonl"
        path.write_bytes(data)
        feed = JsonlFeed(str(path))
        got: list[bytes] = []
        first = 1
        while (taken := feed.take(n := rng.choice([1, 2, 5, 300, 5000]))) is not None:
            _seq, unit, _keys = taken
            assert unit.lines <= n
            assert unit.first_line == first
            first += unit.lines
            part = data[unit.start : unit.end].split(b"\n")
            if part[-1] == b"":
                part.pop()
            assert len(part) == unit.lines
            got.extend(part)
        expected = data.split(b"\n")
        if expected[-1] == b"":  # the newline that ends the last line
            expected.pop()
        assert got == expected
