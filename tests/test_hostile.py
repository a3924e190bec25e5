"""The hostile inputs of ``tests/hostile.py`` through the real command, in every local mode.

Each table case is one parametrised test; the command runs once per mode and input route (the
runs are cached for the module), and each case checks its own record in that output.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import hostile
import pytest
from conftest import LOCAL_MODES
from helpers import crunch_cmd, env
from hostile import (
    DUPLICATE_KEYS,
    NAMES,
    OVERLAP_TREE,
    OVERLAPS,
    PLACEMENT_TREE,
    PLACEMENTS,
    RESUME_FILES,
    VALUES,
    WALKED,
    Keyed,
    Name,
    Overlapping,
    Placement,
    ResumeFile,
)

import crunch

ROUTES = ("walk", "stdin-lines", "stdin-null")
MISSING = b"t/missing\xff.txt"  # named on stdin only: its FileNotFoundError quotes the name


def strict_json(line: bytes) -> Any:
    """A record line as a strict JSON reader sees it (no NaN, no Infinity)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a record line: {line!r}")

    return json.loads(line.decode("utf-8"), parse_constant=refuse)


def run(args: list[str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        crunch_cmd(*args),
        cwd=cwd,
        env=env(),
        input=stdin,
        capture_output=True,
        timeout=90,
        check=False,
    )


# ------------------------------------------------------------------------------------ names
@pytest.fixture(scope="module")
def name_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Name]]:
    """A directory ``t`` with one file per name the file system accepts; content = the name."""
    root = tmp_path_factory.mktemp("names")
    (root / "t").mkdir()
    made = []
    for case in NAMES:
        try:
            with open(os.fsencode(root / "t") + b"/" + case.raw, "xb") as f:
                f.write(case.raw)
        except OSError:
            continue  # a file system that refuses the name (not one of ours on Linux)
        made.append(case)
    return root, made


@functools.cache
def _names_run(root: Path, names: tuple[Name, ...], mode: str, route: str) -> dict[str, Any]:
    out = f"out-{mode}-{route}.jsonl"
    args = ["process", "--mode", mode, "--workers", "2", "-o", out]
    stdin = b""
    if route == "walk":
        args.insert(1, "t")
    else:
        usable = [n for n in names if route == "stdin-null" or n.on_lines]
        paths = [b"t/" + n.raw for n in usable] + [MISSING]
        sep = b"\0" if route == "stdin-null" else b"\n"
        stdin = sep.join(paths) + sep
        args[1:1] = ["-"] + (["--null"] if route == "stdin-null" else [])
    first = run(args, root, stdin)
    written = (root / out).read_bytes()
    again = run([*args, "--resume"], root, stdin)
    return {
        "first": first,
        "lines": written.splitlines(),
        "again": again,
        "after_resume": (root / out).read_bytes(),
        "written": written,
    }


def names_run(name_dir: tuple[Path, list[Name]], mode: str, route: str) -> dict[str, Any]:
    root, made = name_dir
    return _names_run(root, tuple(made), mode, route)


# Every route in every local mode; in dask mode (a local cluster) the walk: the key travels
# to the worker and back as in process mode.
MODE_ROUTES = [(mode, route) for mode in LOCAL_MODES for route in ROUTES] + [("dask", "walk")]


def _mode_route_marks(mode: str) -> Any:
    return pytest.mark.dask if mode == "dask" else ()


def _name_params() -> list[Any]:
    unfit = pytest.mark.skip(reason="a line of stdin cannot carry this name")
    return [
        pytest.param(
            mode,
            route,
            case,
            id=f"{mode}-{route}-{case.id}",
            marks=unfit
            if route == "stdin-lines" and not case.on_lines
            else _mode_route_marks(mode),
        )
        for mode, route in MODE_ROUTES
        for case in NAMES
    ]


@pytest.mark.parametrize(("mode", "route", "case"), _name_params())
def test_every_name_gets_one_record_that_maps_back_to_its_file(
    name_dir: tuple[Path, list[Name]], mode: str, route: str, case: Name
) -> None:
    """README "Output": the key of any file name, whatever its bytes, gives the name back."""
    if case not in name_dir[1]:
        pytest.skip("the file system refused this name")
    got = names_run(name_dir, mode, route)
    mine = [strict_json(line) for line in got["lines"]]
    mine = [r for r in mine if os.fsencode(r["item"]) == b"t/" + case.raw]
    assert len(mine) == 1, (got["first"].stderr.decode(errors="replace"), got["lines"])
    record = mine[0]
    assert record["ok"] is True, record
    assert record["value"]["bytes"] == len(case.raw)
    assert record["value"]["sha256"] == hashlib.sha256(case.raw).hexdigest()


@pytest.mark.parametrize(
    ("mode", "route"),
    [pytest.param(m, r, id=f"{m}-{r}", marks=_mode_route_marks(m)) for m, r in MODE_ROUTES],
)
def test_names_run_whole_and_resume_matches_every_key(
    name_dir: tuple[Path, list[Name]], mode: str, route: str
) -> None:
    """No record is lost to an odd name, and --resume finds every one of them already done."""
    got = names_run(name_dir, mode, route)
    made = name_dir[1]
    expected = len(made) if route != "stdin-lines" else sum(n.on_lines for n in made)
    expected += route != "walk"  # the missing file named on stdin
    assert len(got["lines"]) == expected, got["first"].stderr.decode(errors="replace")
    assert got["first"].returncode == (0 if route == "walk" else 1)
    assert b"Traceback" not in got["first"].stderr
    # The resumed run finds every ok record done (it runs only the missing file again).
    assert got["again"].returncode == got["first"].returncode, got["again"].stderr
    after = got["after_resume"].splitlines()
    oks = sorted(line for line in got["lines"] if strict_json(line)["ok"])
    assert sorted(line for line in after if strict_json(line)["ok"]) == oks
    assert sorted(strict_json(line)["item"] for line in after) == sorted(
        strict_json(line)["item"] for line in got["lines"]
    )


@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_an_error_message_quoting_an_odd_name_is_kept(
    name_dir: tuple[Path, list[Name]], mode: str
) -> None:
    """README "Output": the original error is recorded, the name escaped, not a TypeError."""
    got = names_run(name_dir, mode, "stdin-null")
    records = [strict_json(line) for line in got["lines"]]
    (missing,) = [r for r in records if os.fsencode(r["item"]) == MISSING]
    assert missing["ok"] is False
    assert missing["error"]["type"] == "FileNotFoundError"
    # Python's own message (it quotes the name with repr), exactly as the worker raised it.
    assert missing["error"]["message"].endswith(repr(os.fsdecode(MISSING)))


# ----------------------------------------------------------------------------------- values
@functools.cache
def _values_run(root: Path, mode: str) -> tuple[subprocess.CompletedProcess[bytes], list[bytes]]:
    source = root / "cases.jsonl"
    source.write_text("".join(json.dumps(case.id) + "\n" for case in VALUES))
    out = f"values-{mode}.jsonl"
    args = ["process", "--jsonl", "cases.jsonl", "--task", "hostile:value", "-o", out]
    result = run([*args, "--mode", mode, "--workers", "2"], root)
    return result, (root / out).read_bytes().splitlines()


@pytest.fixture(scope="module")
def values_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("values")


@pytest.mark.parametrize("case", VALUES, ids=[c.id for c in VALUES])
@pytest.mark.parametrize("mode", LOCAL_MODES)
def test_every_value_is_recorded_exactly_or_fails_its_item(
    values_root: Path, mode: str, case: Any
) -> None:
    """A record line is strict JSON; NaN and infinities fail the item and say where."""
    if case.needs:
        pytest.importorskip(case.needs)
    result, lines = _values_run(values_root, mode)
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert len(lines) == len(VALUES)
    records = {r["item"]: r for r in map(strict_json, lines)}
    record = records[VALUES.index(case) + 1]
    if case.ok:
        assert record["ok"] is True, record
        assert record["value"] == json.loads(json.dumps(case.make()))
    else:
        assert record["ok"] is False, record
        assert record["error"]["type"] == case.type
        assert case.message_has in record["error"]["message"]
        if case.type == "ValueError":
            assert "JSON cannot represent" in record["error"]["message"]


def test_json_logs_carry_an_odd_name_escaped(tmp_path: Path) -> None:
    """--log-format json: the item.failed event of a non-UTF-8 name is a JSON line too."""
    result = run(
        ["process", "-", "--null", "--log-format", "json", "--mode", "sync"],
        tmp_path,
        stdin=MISSING + b"\0",
    )
    assert result.returncode == 1, result.stderr
    assert b"Traceback" not in result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]
    (failed,) = [e for e in events if e.get("event") == "item.failed"]
    assert os.fsencode(failed["item"]) == MISSING


def test_the_library_returns_python_values_unchanged() -> None:
    """README "The library": run/imap return the task's values; NaN stays NaN there."""
    batch = crunch.run(hostile.value, ["nan", "surrogate-in-value"], mode="sync")
    assert math.isnan(batch.succeeded[0])
    assert batch.succeeded[1] == ["b\udcff.txt", "\udc80"]


# ------------------------------------------------------------------------------- placements
def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` and its bytes (links are not followed)."""
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                files[str(path.relative_to(root))] = path.read_bytes()
    return files


def _placement_params() -> list[Any]:
    return [
        pytest.param(case, mode, id=f"{case.id}-{mode}")
        for case in PLACEMENTS
        # Which files are inputs is decided in the parent, the same in every mode: one case
        # also runs with worker processes.
        for mode in (("sync", "process") if case.id == "o-new-inside-the-walk" else ("sync",))
    ]


@pytest.mark.parametrize(("case", "mode"), _placement_params())
def test_output_placed_among_the_inputs(tmp_path: Path, case: Placement, mode: str) -> None:
    """README "Inputs": -o naming an input is refused before anything is written; crunch's
    own output inside a walked directory (or named on stdin) is never an input."""
    PLACEMENT_TREE(tmp_path)
    before = snapshot(tmp_path)
    with contextlib.ExitStack() as files:
        stdin: Any = subprocess.DEVNULL
        stdout: Any = subprocess.PIPE
        if case.stdin_from:
            stdin = files.enter_context(open(tmp_path / case.stdin_from, "rb"))
        if case.stdout_to:
            stdout = files.enter_context(open(tmp_path / case.stdout_to, "wb"))
        result = subprocess.run(
            crunch_cmd("process", *case.args, "--mode", mode, "--workers", "2"),
            cwd=tmp_path,
            env=env(),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=90,
            check=False,
        )
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr
    if case.refused:
        assert result.returncode == 2, stderr
        assert "-o " in stderr, stderr
        assert "destroy" in stderr, stderr
        assert snapshot(tmp_path) == before  # nothing truncated, nothing created
        return
    assert result.returncode == 0, stderr
    out = case.records_in or case.args[case.args.index("-o") + 1]
    lines = (tmp_path / out).read_bytes().splitlines()
    items = [strict_json(line)["item"] for line in lines]
    assert sorted(items) == sorted(case.keys), stderr
    for name, data in before.items():  # every input is as it was
        if name != os.path.normpath(out):
            assert (tmp_path / name).read_bytes() == data, name


@pytest.mark.parametrize("target", ["fifo", "/dev/stdout", "/dev/fd/1"])
def test_output_to_a_pipe_by_name(tmp_path: Path, target: str) -> None:
    """-o a named pipe, or standard output by name: the records arrive there whole, and
    nothing else does (crunch never reads it, and never mistakes standard error for it)."""
    PLACEMENT_TREE(tmp_path)
    got: list[bytes] = []
    reader = None
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")

        def read() -> None:
            with open(tmp_path / "fifo", "rb") as pipe:
                got.append(pipe.read())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
    result = run(["process", "t", "--mode", "sync", "-o", target], tmp_path)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    if reader is not None:
        reader.join(10)
        assert result.stdout == b""
    records = got[0] if got else result.stdout
    items = [strict_json(line)["item"] for line in records.splitlines()]
    assert sorted(items) == sorted(WALKED), (records, stderr)
    assert b'"item"' not in result.stderr


# --------------------------------------------------------------------------------- overlaps
def _overlap_params() -> list[Any]:
    return [
        pytest.param(case, mode, id=f"{case.id}-{mode}")
        for case in OVERLAPS
        # Which files are items is decided by the walk in the parent, the same in every mode.
        for mode in (LOCAL_MODES if case.id == "as-in-the-issue" else ("sync",))
    ]


@pytest.mark.parametrize(("case", "mode"), _overlap_params())
def test_overlapping_paths_give_one_item_per_file(
    tmp_path: Path, case: Overlapping, mode: str
) -> None:
    """README "Inputs": one item per file, keyed as first met; --resume has nothing to add."""
    OVERLAP_TREE(tmp_path)
    args = ["process", *case.args, "--mode", mode, "--workers", "2", "-o", "out.jsonl"]
    result = run(args, tmp_path, case.stdin)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    written = (tmp_path / "out.jsonl").read_bytes()
    items = [strict_json(line)["item"] for line in written.splitlines()]
    assert sorted(items) == sorted(case.keys)
    again = run([*args, "--resume"], tmp_path, case.stdin)
    assert again.returncode == 0, again.stderr.decode(errors="replace")
    assert (tmp_path / "out.jsonl").read_bytes() == written


# --------------------------------------------------------------------------- duplicate keys
def _keyed_params() -> list[Any]:
    return [
        pytest.param(case, way, mode, id=f"{case.id}-{way}-{mode}")
        for case in DUPLICATE_KEYS
        # A FILE is checked by the workers before anything runs, standard input by the parent
        # as it reads; one case also runs with process workers.
        for way in ("file", "stdin")
        for mode in (("sync", "process") if case.id == "late-repeat" else ("sync",))
    ]


@pytest.mark.parametrize(("case", "way", "mode"), _keyed_params())
def test_a_key_names_one_item(tmp_path: Path, case: Keyed, way: str, mode: str) -> None:
    """README "Inputs": a repeated --key value is refused, naming the key and both lines; a
    FILE before any item runs, standard input when the repeat is read (what was recorded
    before stays whole); never two records with one key."""
    data = "".join(line + "\n" for line in case.lines)
    (tmp_path / "in.jsonl").write_text(data)
    source = "in.jsonl" if way == "file" else "-"
    args = ["process", "--jsonl", source, "--key", case.field, "--task", "faults:add_offset"]
    args += ["--mode", mode, "--workers", "2", "-o", "out.jsonl"]
    result = run(args, tmp_path, data.encode() if way == "stdin" else b"")
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr
    records = [strict_json(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    keys = [r["item"] for r in records]
    assert len(keys) == len(set(keys)), keys
    items = sum(1 for line in case.lines if line.strip())
    if not case.repeated:
        assert result.returncode in (0, 1), stderr
        assert len(records) == items
        return
    assert result.returncode == 2, stderr
    first, second = case.at
    assert f"the key {case.repeated} names two items, line {first}" in stderr, stderr
    assert f"line {second}" in stderr
    counted = re.search(r"not run (\d+)", stderr)
    assert counted, stderr
    not_run = int(counted.group(1))
    if way == "file":
        assert "nothing was run" in stderr
        assert (records, not_run) == ([], items)
        return
    # Every item before the repeat was recorded or counted as not run; none after it was read.
    before = [(n, line) for n, line in enumerate(case.lines[: second - 1], 1) if line.strip()]
    assert set(keys) <= {_key_of_line(n, line, case.field) for n, line in before}
    assert len(records) + not_run == len(before)


@pytest.mark.parametrize("mode", ["sync", "process"])
def test_every_repeated_key_of_a_file_is_named_at_once(tmp_path: Path, mode: str) -> None:
    """README "Inputs": all the repeated keys of a FILE in one message, the first ten by name
    with every line, and the rest counted; nothing was run."""
    ids = [*range(40_000), *range(12), 5, 39_999]  # spans ranges the workers read apart
    (tmp_path / "in.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in ids))
    args = ["process", "--jsonl", "in.jsonl", "--key", "id", "--mode", mode, "-o", "out.jsonl"]
    result = run([*args, "--task", "faults:add_offset", "--workers", "2"], tmp_path)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert "the key 0 names two items, line 1 and line 40001" in stderr
    assert "the key 5 names 3 items, line 6, line 40006 and line 40013" in stderr
    assert "and 3 more repeated keys" in stderr  # 13 repeated: 0..11 and 39999
    assert (tmp_path / "out.jsonl").read_bytes() == b""
    assert re.search(r"not run 40014\b", stderr), stderr


def _key_of_line(lineno: int, line: str, field: str) -> Any:
    """The key crunch gives a --jsonl line (README "Inputs"), to check the test's own table."""
    try:
        value = json.loads(line)
    except ValueError:
        return lineno
    key = value.get(field) if isinstance(value, dict) else None
    ok = isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool))
    return key if ok else lineno


# ----------------------------------------------------------------------------- resume files
def _resume_params() -> list[Any]:
    return [
        pytest.param(case, mode, id=f"{case.id}-{mode}")
        for case in RESUME_FILES
        # The check runs the task in the run's mode: that case runs in each of them.
        for mode in (LOCAL_MODES if case.id == "written-by-another-task" else ("sync",))
    ]


@pytest.mark.parametrize(("case", "mode"), _resume_params())
def test_resume_takes_only_a_results_file_of_this_task(
    tmp_path: Path, case: ResumeFile, mode: str
) -> None:
    """README "--resume": another task's file, a file that is no results file, a key with two
    ok records are refused, untouched; otherwise FILE ends with one record per input."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("alpha\n")
    (tmp_path / "t" / "b.txt").write_text("beta\n")
    out = tmp_path / "out.jsonl"
    if case.made_by:
        made = run(["process", "t", *case.made_by, "-o", "out.jsonl"], tmp_path)
        assert made.returncode == 0, made.stderr
    else:
        out.write_bytes(case.content)
    before = out.read_bytes()
    args = ["process", "t", *case.args, "-o", "out.jsonl", "--resume", "--mode", mode]
    result = run(args, tmp_path)
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr
    if case.refused:
        assert result.returncode == 2, stderr
        assert case.refused in stderr
        assert "left unchanged" in stderr
        assert out.read_bytes() == before
        return
    assert result.returncode == 0, stderr
    items = [strict_json(line)["item"] for line in out.read_bytes().splitlines()]
    assert sorted(items) == sorted(case.keys)
    if case.removed:
        assert f"removed {case.removed} record" in stderr
    else:
        assert "removed" not in stderr
