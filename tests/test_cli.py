"""The `crunch` command through CliRunner (README, "The command"): options, records, exits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from crunch._cli import main


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small input tree, with the test's temporary directory as the working directory."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"one two\nthree\n")
    (root / "b.txt").write_bytes(b"four\n")
    (root / "sub" / "c.txt").write_bytes(b"five six seven")
    (root / ".hidden.txt").write_bytes(b"secret\n")
    return root


def invoke(*args: str, env: dict[str, str] | None = None, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def records(text: str | bytes) -> list[dict]:
    return [orjson.loads(line) for line in (text.splitlines() if text else [])]


def test_stats_records_on_stdout_summary_on_stderr(tree: Path) -> None:
    """Default task stats: one record per file on stdout, keys as reached, summary on stderr."""
    result = invoke("process", "in/", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    got = {r["item"]: r for r in records(result.stdout)}
    assert set(got) == {"in/a.txt", "in/b.txt", "in/sub/c.txt"}
    a = got["in/a.txt"]
    assert a["ok"] is True
    assert a["attempts"] == 1
    assert a["seconds"] >= 0
    assert a["value"] == {
        "bytes": 14,
        "lines": 2,
        "words": 3,
        "sha256": hashlib.sha256(b"one two\nthree\n").hexdigest(),
    }
    assert "3 items" in result.stderr
    assert "ok 3, failed 0" in result.stderr


def test_keys_are_normalised_like_pathlib(tree: Path) -> None:
    """`./in` and `in//` give the same keys as `in`."""
    result = invoke("process", "./in", "--mode", "sync")
    assert {r["item"] for r in records(result.stdout)} == {"in/a.txt", "in/b.txt", "in/sub/c.txt"}


def test_hidden_glob_and_exclude(tree: Path) -> None:
    """--hidden includes dot files; --glob keeps matches; --exclude prunes."""
    hidden = invoke("process", "in", "--hidden", "--mode", "sync")
    assert "in/.hidden.txt" in {r["item"] for r in records(hidden.stdout)}
    globbed = invoke("process", "in", "--glob", "**/c.txt", "--mode", "sync")
    assert [r["item"] for r in records(globbed.stdout)] == ["in/sub/c.txt"]
    excluded = invoke("process", "in", "--exclude", "sub", "--mode", "sync")
    assert {r["item"] for r in records(excluded.stdout)} == {"in/a.txt", "in/b.txt"}


def test_output_file(tree: Path) -> None:
    """-o FILE gets the records and stdout stays empty."""
    result = invoke("process", "in", "-o", "out.jsonl", "--mode", "thread")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert len(records(Path("out.jsonl").read_bytes())) == 3


def test_paths_from_stdin(tree: Path) -> None:
    """'-' reads paths one a line, or NUL-separated with --null."""
    lines = invoke("process", "-", "--mode", "sync", input=b"in/a.txt\nin/b.txt\n")
    assert [r["item"] for r in records(lines.stdout)] == ["in/a.txt", "in/b.txt"]
    nul = invoke("process", "-", "--null", "--mode", "sync", input=b"in/a.txt\0in/sub/c.txt\0")
    assert [r["item"] for r in records(nul.stdout)] == ["in/a.txt", "in/sub/c.txt"]


def test_jsonl_items_with_key_and_a_broken_line(tmp_path: Path) -> None:
    """--jsonl: one item per line keyed by --key; a bad line fails alone, keyed by its number."""
    source = tmp_path / "items.jsonl"
    source.write_text('{"id": "x", "n": 1}\n\n{"id": "y", "n": 2}\n{oops\n{"n": 3}\n')
    result = invoke(
        "process",
        "--jsonl",
        str(source),
        "--key",
        "id",
        "--task",
        "faults:add_offset",
        "--mode",
        "thread",
    )
    assert result.exit_code == 1
    got = {r["item"]: r for r in records(result.stdout)}
    assert got["x"]["value"]["value"] == {"id": "x", "n": 1}
    assert got["y"]["ok"]
    assert got[4]["error"]["type"] == "JSONDecodeError"
    assert got[5]["error"]["type"] == "KeyError"
    assert len(got) == 4


def test_jsonl_keys_default_to_line_numbers(tmp_path: Path) -> None:
    """Without --key, an item's key is its 1-based line number (blank lines still count)."""
    source = tmp_path / "items.jsonl"
    source.write_text("1\n\n2\n")
    result = invoke("process", "--jsonl", str(source), "--task", "faults:square", "--ordered")
    assert [(r["item"], r["value"]) for r in records(result.stdout)] == [(1, 1), (3, 4)]


def test_task_options_are_json_or_strings(tmp_path: Path) -> None:
    """-O values parse as JSON when they can, else stay strings; quoted JSON stays a string."""
    source = tmp_path / "items.jsonl"
    source.write_text("5\n")
    result = invoke(
        "process",
        "--jsonl",
        str(source),
        "--task",
        "faults:add_offset",
        "-O",
        "offset=20",
        "-O",
        "label=plain",
    )
    [record] = records(result.stdout)
    assert record["value"] == {"value": 25, "label": "plain", "label_type": "str"}
    quoted = invoke(
        "process", "--jsonl", str(source), "--task", "faults:add_offset", "-O", 'label="7"'
    )
    assert records(quoted.stdout)[0]["value"]["label"] == "7"
    number = invoke(
        "process", "--jsonl", str(source), "--task", "faults:add_offset", "-O", "label=7"
    )
    assert records(number.stdout)[0]["value"]["label_type"] == "int"


def test_task_from_a_file(tree: Path) -> None:
    """--task path/to/file.py:function loads the function from the file, in worker processes."""
    Path("mytask.py").write_text("def size(path):\n    return path.stat().st_size * 10\n")
    result = invoke("process", "in", "--task", "mytask.py:size", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    assert {r["item"]: r["value"] for r in records(result.stdout)}["in/b.txt"] == 50


def test_init_runs_in_each_worker(tmp_path: Path) -> None:
    """--init module:function runs in every worker before its first item."""
    source = tmp_path / "items.jsonl"
    source.write_text("1\n2\n3\n")
    result = invoke(
        "process",
        "--jsonl",
        str(source),
        "--task",
        "faults:was_initialized",
        "--init",
        "faults:mark_init",
        "--workers",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert all(r["value"] is True for r in records(result.stdout))


def test_unknown_task_lists_known_ones_and_the_closest(tree: Path) -> None:
    """An unknown task name exits 2 naming the known tasks and the closest match."""
    result = invoke("process", "in", "--task", "wordfrq")
    assert result.exit_code == 2
    assert "did you mean 'wordfreq'" in result.stderr
    assert "stats" in result.stderr
    assert "pyast" in result.stderr
    assert result.stdout == ""


def test_every_missing_path_is_reported_before_work(tree: Path) -> None:
    """All missing PATHs are named in one message; nothing runs; exit 2."""
    result = invoke("process", "in", "nope1", "nope2/x.txt", "-o", "out.jsonl")
    assert result.exit_code == 2
    assert "nope1" in result.stderr
    assert "nope2/x.txt" in result.stderr
    assert not Path("out.jsonl").exists()


def test_all_usage_problems_at_once(tree: Path) -> None:
    """Several bad options are reported together."""
    result = invoke(
        "process", "in", "--workers", "0", "--chunk-size", "x", "-O", "nope", "--resume"
    )
    assert result.exit_code == 2
    for needle in ("--workers", "--chunk-size", "-O 'nope'", "--resume needs -o"):
        assert needle in result.stderr


def test_failures_exit_1_and_are_summarised(tree: Path) -> None:
    """Failed items give exit 1, records of kind error, and the summary's first failures."""
    for i in range(4):
        (tree / f"n{i}.txt").write_text("x")
    result = invoke("process", "in", "--task", "faults:fail_on_odd_name", "--workers", "2")
    assert result.exit_code == 1
    failed = {r["item"] for r in records(result.stdout) if not r["ok"]}
    assert failed == {"in/n1.txt", "in/n3.txt"}
    assert "failed 2 (error 2)" in result.stderr
    assert "odd file n1.txt" in result.stderr


def test_fail_fast_halts_and_counts_not_run(tmp_path: Path) -> None:
    """--fail-fast stops starting items after the first failure: exit 1, some not run."""
    source = tmp_path / "items.jsonl"
    source.write_text("\n".join(str(i) for i in range(3000)) + "\n")
    result = invoke(
        "process",
        "--jsonl",
        str(source),
        "--task",
        "faults:always_value_error",
        "--fail-fast",
        "--mode",
        "thread",
        "--workers",
        "2",
    )
    assert result.exit_code == 1
    assert "halted" in result.stderr
    assert len(records(result.stdout)) < 3000


def test_ordered_records(tmp_path: Path) -> None:
    """--ordered writes records in input order."""
    source = tmp_path / "items.jsonl"
    source.write_text("\n".join(str(i) for i in range(500)) + "\n")
    result = invoke(
        "process", "--jsonl", str(source), "--task", "faults:square", "--ordered", "--workers", "2"
    )
    assert [r["item"] for r in records(result.stdout)] == list(range(1, 501))


def test_retries_count_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--retries re-runs ConnectionError items; the record counts every attempt."""
    monkeypatch.setenv("CRUNCH_TEST_CALLS", str(tmp_path / "calls"))
    source = tmp_path / "items.jsonl"
    source.write_text("1\n2\n")
    result = invoke(
        "process",
        "--jsonl",
        str(source),
        "--task",
        "faults:flaky",
        "--retries",
        "2",
        "--mode",
        "thread",
    )
    assert result.exit_code == 0
    assert {r["attempts"] for r in records(result.stdout)} == {3}
    refused = invoke("process", "--jsonl", str(source), "--retry-on", "ValueError")
    assert refused.exit_code == 2
    assert "never retried" in refused.stderr


def test_resume_runs_only_failed_and_missing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--resume: ok items are not run again; afterwards the file has one record per item."""
    calls = tree.parent / "calls"
    monkeypatch.setenv("CRUNCH_TEST_CALLS", str(calls))
    first = invoke(
        "process", "in", "--task", "faults:record_path", "-o", "out.jsonl", "--mode", "sync"
    )
    assert first.exit_code == 0
    # Forge history: b.txt failed last time, c.txt never ran, and the last line is torn.
    lines = Path("out.jsonl").read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if b"sub/c.txt" not in line]
    kept = [
        line
        if b"b.txt" not in line
        else orjson.dumps({"item": "in/b.txt", "ok": False, "error": {"kind": "error"}}) + b"\n"
        for line in kept
    ]
    Path("out.jsonl").write_bytes(b"".join(kept) + b'{"item": "in/sub/c.t')
    calls.write_text("")
    again = invoke(
        "process",
        "in",
        "--task",
        "faults:record_path",
        "-o",
        "out.jsonl",
        "--resume",
        "--mode",
        "sync",
    )
    assert again.exit_code == 0, again.stderr
    # in/a.txt runs once more, alone, only to check that the file was written by this task
    # (README, "--resume"); its record stays the one the file had.
    assert sorted(calls.read_text().split()) == ["in/a.txt", "in/b.txt", "in/sub/c.txt"]
    final = records(Path("out.jsonl").read_bytes())
    assert [r for r in final if r["item"] == "in/a.txt"] == records(lines[0])
    assert sorted(r["item"] for r in final) == ["in/a.txt", "in/b.txt", "in/sub/c.txt"]
    assert all(r["ok"] for r in final)


def test_reduce_prints_one_exact_value(tree: Path) -> None:
    """--reduce prints only the combined value; records go to -o when given."""
    (tree / "a.txt").write_text("the cat the dog\n")
    (tree / "b.txt").write_text("The end\n")
    (tree / "sub" / "c.txt").write_text("dog dog\n")
    result = invoke(
        "process", "in", "--task", "wordfreq", "--reduce", "-O", "top=2", "-o", "recs.jsonl"
    )
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout) == {"words": 8, "top": [["dog", 3], ["the", 3]]}
    assert len(records(Path("recs.jsonl").read_bytes())) == 3


def test_reduce_refused_without_combiner_or_with_resume(tree: Path) -> None:
    """--reduce with a task that cannot reduce, or with --resume, exits 2."""
    assert invoke("process", "in", "--reduce").exit_code == 2
    both = invoke("process", "in", "--task", "wordfreq", "--reduce", "--resume", "-o", "x.jsonl")
    assert both.exit_code == 2
    assert "--resume" in both.stderr


def test_split_equals_unsplit(tree: Path) -> None:
    """A file cut by --split-size gives the same record as the whole file."""
    (tree / "big.txt").write_text("".join(f"word{i % 37} line {i}\n" for i in range(3000)))
    whole = invoke("process", "in/big.txt", "--task", "wordfreq")
    split = invoke(
        "process", "in/big.txt", "--task", "wordfreq", "--split-size", "1KiB", "--workers", "2"
    )
    assert records(split.stdout)[0]["value"] == records(whole.stdout)[0]["value"]
    assert len(records(split.stdout)) == 1


def test_progress_bar_and_json_logs(tree: Path) -> None:
    """--progress draws on stderr; --log-format json gives JSON events sharing one run_id."""
    result = invoke(
        "process",
        "in",
        "--progress",
        "--log-format",
        "json",
        "--log-level",
        "info",
        "--mode",
        "sync",
    )
    assert result.exit_code == 0
    assert "3/3" in result.stderr
    events = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"run.start", "run.end"}
    assert len({e["run_id"] for e in events}) == 1
    quiet = invoke("process", "in", "--no-progress", "--mode", "sync")
    assert "3/3" not in quiet.stderr


def test_environment_variables_set_options(tree: Path) -> None:
    """CRUNCH_<OPTION> sets an option: CRUNCH_TASK and CRUNCH_WORKERS are read."""
    result = invoke("process", "in", env={"CRUNCH_TASK": "checksum", "CRUNCH_MODE": "sync"})
    assert records(result.stdout)[0]["value"]["algorithm"] == "sha256"
    bad = invoke("process", "in", env={"CRUNCH_WORKERS": "0"})
    assert bad.exit_code == 2
    assert "--workers" in bad.stderr


def test_tasks_version_and_help() -> None:
    """`crunch tasks` lists tasks; --version prints it; every command's help has examples."""
    tasks = invoke("tasks")
    assert tasks.exit_code == 0
    for name in ("stats", "checksum", "wordfreq", "jsonl", "pyast", "burn", "sleep"):
        assert name in tasks.stdout
    assert "crunch, version" in invoke("--version").stdout
    for command in ("process", "tasks", "gen", "bench"):
        assert "Example" in invoke(command, "--help").stdout


def test_gen_is_deterministic(tmp_path: Path) -> None:
    """`crunch gen` with the same seed writes the same bytes."""
    for name in ("one", "two"):
        result = invoke(
            "gen",
            str(tmp_path / name),
            "--kind",
            "mixed",
            "--files",
            "6",
            "--seed",
            "3",
            "--size",
            "20KiB",
        )
        assert result.exit_code == 0
    one = sorted(
        p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file()
    )
    assert len(one) == 6
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
