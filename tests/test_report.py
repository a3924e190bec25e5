"""``crunch report`` and the summary it shares with ``crunch process`` (README: "crunch report").

Most tests read results files written by real runs of ``crunch process`` over inputs whose
behaviour ``report_tasks:act`` reads from them (ok, raise, crash, sleep past --timeout, fail
then succeed on retry); a golden test pins the whole text of a fixed file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from helpers import crunch_cmd, env

from crunch._cli import main
from crunch._histogram import LogHistogram, duration
from crunch._report import MAX_GROUPS, OTHER_SHAPE
from crunch._shapes import shape

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "report-golden.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_inputs(root: Path, behaviours: dict[str, str]) -> Path:
    """One input file per item for ``report_tasks:act``: its name and its behaviour."""
    root.mkdir(parents=True, exist_ok=True)
    for name, behaviour in behaviours.items():
        (root / name).write_text(behaviour + "\n")
    return root


def crunch(*args: str, cwd: Path, stdin: bytes = b"", **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        crunch_cmd(*args),
        cwd=cwd,
        env=env(**extra),
        input=stdin,
        capture_output=True,
        timeout=100,
        check=False,
    )


def report(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """``crunch report ARGS`` run in this process by click's runner (quicker than a process)."""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(main, ["report", *args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["crunch", "report", *args], result.exit_code, result.stdout_bytes, result.stderr_bytes
    )


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert b"Traceback" not in done.stderr, done.stderr.decode()


BEHAVIOURS = {
    **{f"ok{i}.txt": "ok" for i in range(8)},
    "r1.txt": "raise a",
    "r2.txt": "raise a b",
    "r3.txt": "raise a b c",
    "missing.txt": "missing colour",
    "slow.txt": "sleep 3",
    "crash.txt": "crash",
    "flaky.txt": "flaky 1",
    "flaky9.txt": "flaky 9",
}
FAILED = {"r1.txt", "r2.txt", "r3.txt", "missing.txt", "slow.txt", "crash.txt", "flaky9.txt"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A real process-mode run with errors, a crash, a timeout and retries: (its dir, result)."""
    root = tmp_path_factory.mktemp("run")
    write_inputs(root / "in", BEHAVIOURS)
    done = crunch(
        "process", "in", "--task", "report_tasks:act", "--timeout", "0.5", "--retries", "2",
        "-j", "2", "--no-progress", "-o", "out.jsonl", cwd=root,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    return root, done


# ------------------------------------------------------------------------------ the summary
def test_process_summary_counts_retried_items(tmp_path: Path) -> None:
    """The end-of-run summary says how many items took more than one attempt."""
    write_inputs(tmp_path / "in", {"a.txt": "ok", "b.txt": "flaky 1", "c.txt": "flaky 9"})
    done = crunch(
        "process", "in", "--task", "report_tasks:act", "--mode", "thread", "--retries", "2",
        "--no-progress", "-o", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "  ok 2, failed 1 (error 1), retried 2, not run 0\n" in done.stderr.decode()
    assert "c.txt: error: ConnectionError: connection reset on attempt 3" in done.stderr.decode()


def test_report_and_process_summary_say_the_same(run: tuple[Path, subprocess.CompletedProcess]):
    """The counts line of the report is the one the run printed at its end."""
    root, process = run
    done = report("out.jsonl", cwd=root)
    assert done.returncode == 1
    counts = done.stdout.decode().splitlines()[1].strip()
    retried = retried_in(root / "out.jsonl")
    assert counts == f"ok 9, failed 7 (crash 1, error 5, timeout 1), retried {retried}"
    assert f"  {counts}, not run 0\n" in process.stderr.decode()


def retried_in(path: Path) -> int:
    """Records with more than one attempt: flaky9's, always (3); flaky's, unless its failed
    first try was in a worker pool that the crash broke before the outcome came back (such a try
    is run again and not counted as an attempt)."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    attempts = {r["item"]: r["attempts"] for r in records}
    assert attempts["in/flaky9.txt"] == 3
    assert attempts["in/flaky.txt"] in (1, 2)
    return sum(n > 1 for n in attempts.values())


# ------------------------------------------------------------------------------ real runs
def test_text_report_of_a_real_run(run: tuple[Path, subprocess.CompletedProcess]) -> None:
    root, _ = run
    done = crunch("report", "out.jsonl", cwd=root)
    no_traceback(done)
    assert done.stderr == b""
    text = done.stdout.decode()
    assert text.startswith("out.jsonl: 16 records\n")
    failures = text.split("failures by kind, type and message: ")[1].split("\n\n")[0]
    assert failures.startswith("7 in 5 groups")
    rows = failures.splitlines()[1:]
    # The three ValueErrors differ in path and numbers: one group, listed first.
    assert re.fullmatch(
        r"  3  error    ValueError\s+cannot parse <path>: field <quoted> is <n> but expected <hex>",
        rows[0],
    )
    assert rows[1].split()[0] == "e.g."
    assert sorted(rows[1].replace(",", "").split()[1:]) == ["in/r1.txt", "in/r2.txt", "in/r3.txt"]
    groups = {tuple(r.split(None, 3)[1:]) for r in rows[2::2]}
    assert groups == {
        ("crash", "WorkerDied", "worker exited with code <n>"),
        ("error", "ConnectionError", "connection reset on attempt <n>"),
        ("error", "KeyError", "<quoted>"),
        ("timeout", "TimeoutError", "item exceeded the <n> s timeout"),
    }
    slowest = text.split("slowest 10:\n")[1].splitlines()
    assert slowest[0].split()[2:] == ["timeout", "in/slow.txt"]
    assert "seconds of 16 records: p50 " in text


def test_json_report_has_the_numbers_of_the_text(
    run: tuple[Path, subprocess.CompletedProcess],
) -> None:
    """--format json is one document with the same numbers as the text report."""
    root, _ = run
    text = report("out.jsonl", cwd=root).stdout.decode()
    done = report("out.jsonl", "--format", "json", cwd=root)
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    check_json_against_text(doc, text)
    assert doc["totals"] == {
        "records": 16,
        "ok": 9,
        "failed": 7,
        "failed_by_kind": {"crash": 1, "error": 5, "timeout": 1},
        "retried": retried_in(root / "out.jsonl"),
    }
    records = [orjson.loads(line) for line in (root / "out.jsonl").read_bytes().splitlines()]
    assert {r["item"] for r in records if not r["ok"]} == {f"in/{n}" for n in FAILED}
    assert doc["seconds"]["max"] == max(r["seconds"] for r in records)
    assert doc["slowest"][0]["item"] == "in/slow.txt"


def check_json_against_text(doc: dict, text: str) -> None:
    """Every number the text shows is the JSON document's."""
    lines = text.splitlines()
    totals = doc["totals"]
    assert lines[0] == f"{doc['file']}: {totals['records']} records"
    kinds = ", ".join(f"{k} {n}" for k, n in totals["failed_by_kind"].items())
    expected = f"ok {totals['ok']}, failed {totals['failed']}" + (f" ({kinds})" if kinds else "")
    if totals["retried"]:
        expected += f", retried {totals['retried']}"
    assert lines[1] == f"  {expected}"
    shown = doc["failures"][:10]
    rows = [line for line in lines if re.match(r"  +\d+  \S", line) and "e.g." not in line]
    for group, row in zip(shown, rows, strict=False):
        assert row.split(None, 3) == [
            str(group["count"]),
            group["kind"],
            group["type"],
            group["message"] or "(no message)",
        ]
    seconds = doc["seconds"]
    head = next(line for line in lines if line.startswith("seconds of "))
    assert head == (
        f"seconds of {seconds['count']} records: p50 {duration(seconds['p50'])}, "
        f"p90 {duration(seconds['p90'])}, p99 {duration(seconds['p99'])}, "
        f"max {duration(seconds['max'])} (mean {duration(seconds['mean'])})"
    )
    bars = lines[lines.index(head) + 1 :]
    assert [int(b.split("%")[0].split()[-2] if "%" in b else b.split()[-1]) for b in bars] == [
        row["count"] for row in seconds["histogram"]
    ]
    slow = text.split("slowest ")[1].splitlines()[1:] if doc["slowest"] else []
    for entry, line in zip(doc["slowest"], slow, strict=False):
        assert line.split(None, 3)[2:] == [entry["status"], entry["item"]]


def test_failed_keys_feed_a_rerun(run: tuple[Path, subprocess.CompletedProcess]) -> None:
    """`crunch report out.jsonl --failed | crunch process -` runs exactly the failed items."""
    root, _ = run
    lister = subprocess.Popen(
        crunch_cmd("report", "out.jsonl", "--failed"), cwd=root, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    rerun = subprocess.run(
        crunch_cmd("process", "-", "--task", "report_tasks:act", "-j", "2",
                   "--timeout", "0.5", "--no-progress", "-o", "rerun.jsonl"),
        cwd=root, env=env(), stdin=lister.stdout, capture_output=True, timeout=100, check=False,
    )  # fmt: skip
    assert lister.stdout is not None
    lister.stdout.close()
    assert lister.wait(timeout=30) == 0
    assert lister.stderr is not None
    assert lister.stderr.read() == b""
    records = [orjson.loads(line) for line in (root / "rerun.jsonl").read_bytes().splitlines()]
    assert sorted(r["item"] for r in records) == sorted(f"in/{n}" for n in FAILED)
    assert rerun.returncode == 1  # they fail again (flaky9 fails 9 times)
    null = report("out.jsonl", "--failed", "--null", cwd=root)
    assert null.returncode == 0
    assert sorted(null.stdout.split(b"\0")[:-1]) == sorted(f"in/{n}".encode() for n in FAILED)


def test_plot_writes_a_png(run: tuple[Path, subprocess.CompletedProcess]) -> None:
    pytest.importorskip("matplotlib")
    root, _ = run
    done = report("out.jsonl", "--plot", "report.png", cwd=root)
    no_traceback(done)
    assert done.returncode == 1  # the report's status: the file has failures
    assert done.stdout.decode().startswith("out.jsonl: 16 records")
    assert b"plot written to report.png" in done.stderr
    data = (root / "report.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert 10_000 < len(data) < 200_000


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    """Without the plot extra: exit 2, the command to install it, nothing written."""
    block = (
        "import sys; sys.modules['matplotlib'] = None; from crunch._cli import main; "
        "sys.argv[0] = 'crunch'; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", block, "report", str(GOLDEN), "--plot", "r.png"],
        cwd=tmp_path, env=env(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    no_traceback(done)
    assert done.returncode == 2
    assert "pip install 'crunch[plot]'" in done.stderr.decode()
    assert done.stdout == b""
    assert not (tmp_path / "r.png").exists()


# ------------------------------------------------------------------------------ golden
def test_golden_text_report() -> None:
    """The whole text for a fixed file: every section, torn and junk lines, odd keys."""
    done = report(GOLDEN.name, cwd=DATA)
    assert done.returncode == 1
    assert done.stdout.decode() == (DATA / "report-golden.txt").read_text(encoding="utf-8")


def test_golden_json_matches_its_text() -> None:
    text = report(GOLDEN.name, cwd=DATA).stdout.decode()
    doc = json.loads(report(GOLDEN.name, "--format", "json", cwd=DATA).stdout)
    check_json_against_text(doc, text.replace("caf\\xe9", "caf\udce9"))
    assert doc["not_records"] == {
        "count": 3,
        "lines": [
            {"line": 17, "reason": "not JSON"},
            {"line": 21, "reason": "not a JSON object"},
            {"line": 26, "reason": "not a result record"},
        ],
        "torn_last_line": 39,
    }
    assert doc["lines"] == 39
    exact = sorted(
        json.loads(line)["seconds"]
        for line in GOLDEN.read_bytes().splitlines()
        if line.startswith(b'{"item":"') and line.endswith(b"}")
    )
    assert doc["seconds"]["count"] == len(exact) == 34
    assert doc["seconds"]["max"] == exact[-1]
    assert doc["seconds"]["min"] == exact[0]
    assert math.isclose(doc["seconds"]["mean"], sum(exact) / len(exact))
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        nearest_rank = exact[math.ceil(q * len(exact)) - 1]
        assert doc["seconds"][name] == pytest.approx(nearest_rank, rel=0.03)


def test_failed_prints_the_original_bytes_of_a_name(tmp_path: Path) -> None:
    """A key kept as surrogate escapes comes out of --failed as the name's own bytes."""
    done = report(str(GOLDEN), "--failed", cwd=tmp_path)
    assert done.returncode == 0
    keys = done.stdout.split(b"\n")
    assert keys[-1] == b""
    assert b"data/odd/caf\xe9.txt" in keys
    assert len(keys) - 1 == 14
    assert b"3 lines" not in done.stderr  # 3 junk lines and a torn one: 4
    assert b"note: 4 lines of" in done.stderr


def test_failed_rerun_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """The printed bytes name the file again: crunch process - runs it."""
    name = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / name).write_text("raise x\n")
    line = '{"item": "%s", "ok": false, "error": {"kind": "error", "type": "E", "message": "m"}}'
    (tmp_path / "out.jsonl").write_text(line % "caf\\udce9.txt" + "\n", encoding="ascii")
    keys = report("out.jsonl", "--failed", cwd=tmp_path).stdout
    assert keys == b"caf\xe9.txt\n"
    rerun = crunch(
        "process", "-", "--task", "report_tasks:act", "--mode", "sync", "--no-progress",
        cwd=tmp_path, stdin=keys,
    )  # fmt: skip
    no_traceback(rerun)
    record = json.loads(rerun.stdout)
    assert record["item"] == name  # the same key as before: the same file
    assert record["error"]["message"].startswith(f"cannot parse {name}:")  # the task read it


# ------------------------------------------------------------------------------ damaged files
def test_torn_last_line_is_named_not_parsed(
    run: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    root, _ = run
    data = (root / "out.jsonl").read_bytes()
    lines = data.splitlines(keepends=True)
    torn = b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    (tmp_path / "torn.jsonl").write_bytes(torn)
    done = report("torn.jsonl", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 1
    text = done.stdout.decode()
    assert text.startswith("torn.jsonl: 15 records\n")
    assert f"the last line ({len(lines)}) is torn" in text
    doc = json.loads(report("torn.jsonl", "--format", "json", cwd=tmp_path).stdout)
    assert doc["not_records"]["torn_last_line"] == len(lines)
    assert doc["totals"]["records"] == 15


def test_junk_lines_are_counted_and_named(tmp_path: Path) -> None:
    good = b'{"item":"a","ok":true,"value":1,"seconds":0.5,"attempts":1}\n'
    junk = [
        b"garbage\n",
        b"[1, 2]\n",
        b'{"item": true, "ok": true}\n',
        b'{"item": "a", "ok": "yes"}\n',
        b'{"item": 1.5, "ok": false}\n',
        b"\xff\xfe not even text\n",
        b'{"item": "deep", "ok": true, "value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        b"   \n",  # blank: nothing, quietly
        b'{"item": "b", "ok": false, "error": "not an object", "seconds": -1}\n',
        b'{"item": "c", "ok": false, "seconds": 1e400}\n',  # read as infinity
        b'{"item": "d", "ok": false, "seconds": NaN}\n',  # NaN is not JSON
    ]
    (tmp_path / "junk.jsonl").write_bytes(good + b"".join(junk) + good)
    done = report("junk.jsonl", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 1
    text = done.stdout.decode()
    assert text.startswith("junk.jsonl: 4 records\n  ok 2, failed 2 (unknown 2)\n")
    assert (
        "  8 lines are not a record: line 2 (not JSON), 3 (not a JSON object), "
        "4 (not a result record), 5 (not a result record), 6 (not a result record), "
        "7 (not JSON), 8 (not JSON), 12 (not JSON)\n"
    ) in text
    assert "seconds of 2 records" in text  # a negative or infinite duration is not one


def test_a_run_still_being_written(tmp_path: Path) -> None:
    """Reporting the output of a run in progress: what is there so far, never a traceback."""
    write_inputs(tmp_path / "in", {f"s{i:02}.txt": "sleep 0.15" for i in range(24)})
    writer = subprocess.Popen(
        crunch_cmd("process", "in", "--task", "report_tasks:act", "-j", "2", "--mode", "thread",
                   "--chunk-size", "1", "--no-progress", "-o", "out.jsonl"),
        cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        seen = []
        while writer.poll() is None and len(seen) < 3:
            if (tmp_path / "out.jsonl").exists():
                done = crunch("report", "out.jsonl", "--format", "json", cwd=tmp_path)
                no_traceback(done)
                assert done.returncode in (0, 1)
                seen.append(json.loads(done.stdout)["totals"]["records"])
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
        writer.wait()
    assert seen == sorted(seen)
    assert all(n <= 24 for n in seen)
    final = crunch("report", "out.jsonl", cwd=tmp_path)
    assert final.returncode == 0
    assert final.stdout.startswith(b"out.jsonl: 24 records\n  ok 24, failed 0\n")


# ------------------------------------------------------------------------------ keys and exits
def test_failed_keys_of_a_jsonl_run_are_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text('{"x": 1}\nnot json\n{"x": 3}\n[\n')
    crunch(
        "process", "--jsonl", "items.jsonl", "--task", "report_tasks:act", "--mode", "sync",
        "--no-progress", "-o", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    done = report("out.jsonl", "--failed", cwd=tmp_path)
    assert done.returncode == 0
    keys = [int(k) for k in done.stdout.split()]
    assert 1 in keys
    assert 3 in keys
    assert (
        b"failed keys of a --jsonl run (line numbers or --key values) printed in decimal"
        in done.stderr
    )


def test_failed_refuses_keys_that_do_not_fit_on_a_line(tmp_path: Path) -> None:
    lines = [
        {"item": "a\nb", "ok": False, "error": {"kind": "error", "type": "E", "message": ""}},
        {"item": "plain", "ok": False, "error": {"kind": "error", "type": "E", "message": ""}},
    ]
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = report("out.jsonl", "--failed", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == b"plain\n"
    assert b"crunch: error: 1 failed key not printed: they hold a newline" in done.stderr
    assert b"--null" in done.stderr
    null = report("out.jsonl", "--failed", "--null", cwd=tmp_path)
    assert null.returncode == 0
    assert null.stdout == b"a\nb\0plain\0"


def test_usage_errors_exit_2_with_every_problem(tmp_path: Path) -> None:
    missing = report("nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.decode().splitlines()[0] == (
        "crunch: error: cannot read nope.jsonl: No such file or directory"
    )
    assert missing.stdout == b""
    directory = report(".", cwd=tmp_path)
    assert directory.returncode == 2
    assert b"cannot read .: Is a directory" in directory.stderr
    several = report("nope.jsonl", "--null", "--plot", "no/such/dir/r.png", cwd=tmp_path)
    assert several.returncode == 2
    err = several.stderr.decode()
    assert "3 problems" in err
    assert "--null only applies with --failed" in err
    assert "no such directory" in err
    assert "Try 'crunch report --help'" in err
    both = report(str(GOLDEN), "--failed", "--format", "json", cwd=tmp_path)
    assert both.returncode == 2
    assert b"cannot be combined with --format json" in both.stderr
    bad_top = report(str(GOLDEN), "--top", "-1", cwd=tmp_path)
    assert bad_top.returncode == 2
    for done in (missing, directory, several, both, bad_top):
        no_traceback(done)


def test_clean_and_empty_files_exit_0(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    empty = report("empty.jsonl", cwd=tmp_path)
    assert empty.returncode == 0
    assert empty.stdout.decode() == (
        "empty.jsonl: 0 records\n  ok 0, failed 0\n\nfailures: none\n\n"
        "seconds: no record has a duration\n"
    )
    clean = b'{"item":"a","ok":true,"value":1,"seconds":0.001,"attempts":1}\n'
    (tmp_path / "clean.jsonl").write_bytes(clean)
    assert report("clean.jsonl", cwd=tmp_path).returncode == 0
    from_stdin = report("-", "--format", "json", cwd=tmp_path, stdin=clean)
    assert from_stdin.returncode == 0
    assert json.loads(from_stdin.stdout)["file"] == "standard input"


def test_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`crunch report --failed | head -1` stops without a traceback."""
    record = '{"item":"k%d","ok":false,"error":{"kind":"error","type":"E","message":"m"}}\n'
    (tmp_path / "out.jsonl").write_text("".join(record % i for i in range(200_000)))
    lister = subprocess.Popen(
        crunch_cmd("report", "out.jsonl", "--failed"), cwd=tmp_path, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert lister.stdout is not None
    assert lister.stdout.readline() == b"k0\n"
    lister.stdout.close()
    _, err = lister.communicate(timeout=60)
    assert lister.returncode == 141
    assert err == b""


# ------------------------------------------------------------------------------ streaming
def big_file(path: Path, lines: int, shapes: int) -> None:
    """``lines`` records: every tenth failed, with ``shapes`` messages that do not fold."""
    rng = random.Random(5)
    with open(path, "wb") as f:
        for i in range(lines):
            seconds = round(rng.lognormvariate(-6, 2), 6)
            if i % 10:
                record = {"item": f"d/{i}.txt", "ok": True, "value": i, "seconds": seconds}
            else:
                word = "".join(chr(97 + int(c)) for c in str(i // 10 % shapes))
                message = f"bad field {word} in d/{i}.txt"
                error = {"kind": "error", "type": "ValueError", "message": message}
                record = {"item": f"d/{i}.txt", "ok": False, "error": error, "seconds": seconds}
            record["attempts"] = 1
            f.write(orjson.dumps(record) + b"\n")


def test_many_records_many_shapes(tmp_path: Path) -> None:
    """50,000 records with more message shapes than groups kept: the rest is counted."""
    big_file(tmp_path / "big.jsonl", 50_000, 2 * MAX_GROUPS)
    done = report("big.jsonl", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["totals"]["records"] == 50_000
    assert doc["totals"]["failed"] == 5_000
    groups = doc["failures"]
    assert len(groups) == MAX_GROUPS + 1
    assert sum(g["count"] for g in groups) == 5_000
    other = next(g for g in groups if g["message"] == OTHER_SHAPE)
    # Failure j has shape j % 2000; the shapes met after the first MAX_GROUPS go to "other".
    assert other["count"] == sum(1 for j in range(5_000) if j % (2 * MAX_GROUPS) >= MAX_GROUPS)
    assert all(len(g["examples"]) <= 3 for g in groups)
    assert doc["seconds"]["count"] == 50_000
    assert len(doc["slowest"]) == 10


@pytest.mark.slow
def test_a_million_records_in_bounded_memory(tmp_path: Path) -> None:
    """1 M records: reported, and the report's memory does not follow the file's size."""
    big_file(tmp_path / "big.jsonl", 1_000_000, 50)
    size = (tmp_path / "big.jsonl").stat().st_size
    code = (
        "import resource, sys; from crunch._cli import main; sys.argv[0] = 'crunch'\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "    raise\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "big.jsonl", "--format", "json"],
        cwd=tmp_path, env=env(), capture_output=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    assert json.loads(done.stdout)["totals"]["records"] == 1_000_000
    peak_kib = int(done.stderr.split()[-1])
    assert peak_kib * 1024 < min(size, 150 * 2**20), (peak_kib, size)


# ------------------------------------------------------------------------------ the parts
@pytest.mark.parametrize(
    ("message", "folded"),
    [
        (
            "cannot parse data/a.txt: field 'size' is 3 but expected 0x1f",
            "cannot parse <path>: field <quoted> is <n> but expected <hex>",
        ),
        ("'colour'", "<quoted>"),
        (
            "worker killed by SIGSEGV (segmentation fault)",
            "worker killed by SIGSEGV (segmentation fault)",
        ),
        ("worker exited with code 3", "worker exited with code <n>"),
        (
            "[Errno 2] No such file or directory: '/tmp/x y.txt'",
            "[Errno <n>] No such file or directory: <quoted>",
        ),
        ("open /var/lib/x.db failed at /src/a.py:12", "open <path> failed at <path>:<n>"),
        (
            "'(' was never closed (syntax_error.py, line 6)",
            "<quoted> was never closed (<path>, line <n>)",
        ),
        ("digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "digest <hex>"),
        ("id 123e4567-e89b-12d3-a456-426614174000 taken", "id <hex> taken"),
        (
            "x86_64 sha256 at 1,024 items/s, and/or -1.5e-3",
            "x86_64 sha256 at <n> items/s, and/or <n>",
        ),
        ("can't read data/sub/x", "can't read <path>"),
        ("\n\n  the first line that says something  \nnext", "the first line that says something"),
        ("", ""),
    ],
)
def test_message_shapes(message: str, folded: str) -> None:
    assert shape(message) == folded


def test_long_messages_are_cut() -> None:
    assert len(shape("word " * 1000)) == 200


def test_histogram_percentiles_are_within_3_percent() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(-5, 2.5) for _ in range(20_000)] + [0.0] * 50
    hist = LogHistogram()
    for v in values:
        hist.add(v)
    values.sort()
    for q in (0.01, 0.1, 0.5, 0.9, 0.99, 0.999):
        exact = values[math.ceil(q * len(values)) - 1]
        assert hist.quantile(q) == pytest.approx(exact, rel=0.03)
    assert hist.quantile(1.0) == values[-1]
    assert hist.quantile(1e-9) == 0.0
    assert sum(n for _, _, n in hist.rows()) == len(values)


def test_histogram_rows_and_edges() -> None:
    hist = LogHistogram()
    for v in (0.001, 0.00316, 0.0031623, 0.0099999, 2e7):
        hist.add(v)
    rows = hist.rows()
    assert rows[0][:2] == pytest.approx((0.001, 10**-2.5))
    assert [n for _, _, n in rows if n] == [2, 2, 1]
    assert rows[-1][1] == math.inf
    assert hist.quantile(0.5) == pytest.approx(10**-2.5, rel=0.03)
    assert LogHistogram().quantile(0.5) is None
    assert LogHistogram().rows() == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (None, "-"),
        (0.000012, "12 µs"),
        (0.0009996, "1 ms"),
        (0.0123, "12.3 ms"),
        (2.000311, "2 s"),
        (86400.0, "86,400 s"),
        (1e-7, "0.1 µs"),
    ],
)
def test_durations_read_well(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_ctrl_c_stops_quietly(tmp_path: Path) -> None:
    """SIGINT while the report is reading (here: a pipe that stays open) exits 130, no traceback."""
    lister = subprocess.Popen(
        crunch_cmd("report", "-"), cwd=tmp_path, env=env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert lister.stdin is not None
    lister.stdin.write(b'{"item":"a","ok":true,"value":1,"seconds":0.5,"attempts":1}\n')
    lister.stdin.flush()
    wchan = Path(f"/proc/{lister.pid}/wchan")
    deadline = time.monotonic() + 60
    while "pipe" not in wchan.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # until it waits on the pipe: started, and reading
    lister.send_signal(signal.SIGINT)
    out, err = lister.communicate(timeout=30)
    lister.stdin.close()
    assert lister.returncode == 130
    assert out == b""
    assert err == b""


def test_top_sets_how_much_is_listed() -> None:
    none = report(GOLDEN.name, "--top", "0", cwd=DATA).stdout.decode()
    assert "slowest" not in none
    assert "  and 9 more groups (14 failures): --top N shows more" in none
    two = report(GOLDEN.name, "--top", "2", cwd=DATA).stdout.decode()
    assert "slowest 2:\n" in two
    assert "  and 7 more groups (8 failures)" in two
    doc = json.loads(report(GOLDEN.name, "--top", "2", "--format", "json", cwd=DATA).stdout)
    assert len(doc["slowest"]) == 2
    assert len(doc["failures"]) == 9  # the document has every group


def test_crunch_null_in_the_environment_is_for_crunch_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CRUNCH_NULL=1 (for `crunch process - --null`) does not break a plain report."""
    monkeypatch.setenv("CRUNCH_NULL", "1")
    assert report(GOLDEN.name, cwd=DATA).returncode == 1  # the report, with its failures
    assert report(GOLDEN.name, "--failed", cwd=DATA).stdout.count(b"\0") == 14
    monkeypatch.delenv("CRUNCH_NULL")
    assert report(GOLDEN.name, "--null", cwd=DATA).returncode == 2  # given, it is a mistake
