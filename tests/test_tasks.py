"""The built-in tasks (README, "Built-in tasks"), each checked against an independent one."""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
import re
import shutil
import subprocess
import time
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crunch._gen import generate
from crunch.tasks import Task
from crunch.tasks import _burn as burn
from crunch.tasks import _checksum as checksum
from crunch.tasks import _jsonl as jsonl
from crunch.tasks import _pyast as pyast
from crunch.tasks import _sleep as sleep
from crunch.tasks import _stats as stats
from crunch.tasks import _wordfreq as wordfreq
from crunch.tasks._stats import file_stats

BUILTINS = {
    "stats": stats,
    "checksum": checksum,
    "wordfreq": wordfreq,
    "jsonl": jsonl,
    "pyast": pyast,
    "burn": burn,
    "sleep": sleep,
}
SPLITTERS = {"wordfreq", "jsonl"}

SAMPLES = {
    "empty": b"",
    "no_final_newline": b"one two\nthree",
    "crlf": b"alpha beta\r\ngamma\r\n\r\n",
    "binary": bytes(range(256)) * 3,
    "whitespace_only": b" \t\n\r\x0b\x0c \n",
    "blank_lines": b"\n\n\n",
    "unicode": "naïve café\nİstanbul ΣΑΣ 東京\n".encode(),
    "long_line": b"word " * 5000,
}


@pytest.fixture(params=sorted(SAMPLES))
def sample(request, tmp_path) -> tuple[Path, bytes]:
    """A file holding one of SAMPLES, with its bytes."""
    data = SAMPLES[request.param]
    path = tmp_path / request.param
    path.write_bytes(data)
    return path, data


# --- registration ------------------------------------------------------------------------------


def test_the_builtins_crunch_loads_directly_are_those_pyproject_registers():
    """_taskspec.BUILTIN (looked up without an entry-point scan) matches the entry points."""
    from crunch._taskspec import BUILTIN

    ours = {ep.name: ep.value for ep in entry_points(group="crunch.tasks") if ep.name in BUILTIN}
    assert ours == BUILTIN
    assert set(BUILTIN) == set(BUILTINS)


def test_a_plugin_cannot_take_a_builtins_name(tmp_path, monkeypatch):
    """README "Task": a plugin that registers a built-in's name does not replace it."""
    dist = tmp_path / "impostor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: impostor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crunch.tasks]\nchecksum = impostor_mod:TASK\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from crunch._taskspec import registered, resolve_task

    assert resolve_task("checksum") is BUILTINS["checksum"].TASK
    assert registered()["checksum"].value == "crunch.tasks._checksum:TASK"


def test_entry_points_name_every_builtin_task():
    """Each crunch.tasks entry point loads a Task whose name is the entry point's name."""
    found = {ep.name: ep.load() for ep in entry_points(group="crunch.tasks")}
    assert set(BUILTINS) <= set(found)
    for name, module in BUILTINS.items():
        task = found[name]
        assert task is module.TASK
        assert isinstance(task, Task)
        assert task.name == name
        assert task.summary
        assert "\n" not in task.summary


def test_split_and_reduce_flags():
    """wordfreq and jsonl split and reduce; the other tasks have no combiner."""
    for name, module in BUILTINS.items():
        assert module.TASK.splits is (name in SPLITTERS)
        assert module.TASK.reduces is (name in SPLITTERS)


def test_task_functions_pickle_by_reference():
    """Every fn and combiner part round-trips through pickle (they are module-level)."""
    for module in BUILTINS.values():
        task = module.TASK
        parts = [task.fn]
        if task.combiner is not None:
            parts += [task.combiner.unit, task.combiner.merge, task.combiner.finish]
        for part in parts:
            assert pickle.loads(pickle.dumps(part)) is part


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_unknown_option_is_a_type_error(name, tmp_path):
    """Passing an option a task does not take raises TypeError."""
    path = tmp_path / "f"
    path.write_bytes(b"{}\n")
    with pytest.raises(TypeError):
        BUILTINS[name].TASK.fn(path, no_such_option=1)


@pytest.mark.parametrize("name", ["stats", "checksum", "wordfreq", "jsonl", "pyast"])
def test_values_are_json_serializable(name, tmp_path):
    """Each file task returns a value that survives a JSON round trip unchanged."""
    path = tmp_path / "f.py"
    path.write_bytes(b'import os\n{"a": 1}\n')
    value = BUILTINS[name].TASK.fn(path)
    assert json.loads(json.dumps(value)) == value


# --- stats -------------------------------------------------------------------------------------


def test_stats_matches_direct_computation(sample):
    """stats gives len, count of b"\\n", len(split()) and hashlib's sha256 of the bytes."""
    path, data = sample
    assert stats.stats(path) == {
        "bytes": len(data),
        "lines": data.count(b"\n"),
        "words": len(data.split()),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@pytest.mark.skipif(shutil.which("wc") is None, reason="needs wc")
def test_stats_lines_and_bytes_agree_with_wc(sample):
    """stats' lines and bytes equal what the real wc -l and wc -c print."""
    path, _ = sample
    out = subprocess.run(["wc", "-l", "-c", str(path)], capture_output=True, text=True, check=True)
    wc_lines, wc_bytes = map(int, out.stdout.split()[:2])
    value = stats.stats(path)
    assert (value["lines"], value["bytes"]) == (wc_lines, wc_bytes)


@pytest.mark.skipif(shutil.which("wc") is None, reason="needs wc")
def test_stats_words_agree_with_wc_on_ascii_text(tmp_path):
    """On ASCII text (where wc -w and bytes.split agree), stats' words equal wc -w."""
    path = tmp_path / "text"
    path.write_bytes(b"  lead\tand trail  \r\nmiddle\x0bline\x0cfeed\n\n last")
    out = subprocess.run(["wc", "-w", str(path)], capture_output=True, text=True, check=True)
    assert stats.stats(path)["words"] == int(out.stdout.split()[0]) == 7


@given(data=st.binary(max_size=400), block_size=st.integers(1, 50))
@settings(max_examples=150, deadline=None)
def test_stats_words_do_not_depend_on_block_boundaries(tmp_path_factory, data, block_size):
    """Words spanning a read-block boundary are counted once, whatever the block size."""
    path = tmp_path_factory.mktemp("stats") / "f"
    path.write_bytes(data)
    value = file_stats(path, block_size=block_size)
    assert value["words"] == len(data.split())
    assert value["lines"] == data.count(b"\n")
    assert value["sha256"] == hashlib.sha256(data).hexdigest()


# --- checksum ----------------------------------------------------------------------------------


def test_checksum_default_is_sha256(sample):
    """checksum without options is the sha256 hex digest of the file's bytes."""
    path, data = sample
    assert checksum.checksum(path) == {
        "algorithm": "sha256",
        "digest": hashlib.sha256(data).hexdigest(),
    }


@pytest.mark.parametrize("algorithm", checksum.valid_algorithms())
def test_checksum_every_algorithm_matches_hashlib(algorithm, tmp_path):
    """Every algorithm checksum offers gives hashlib.new(name)'s digest (shake: 32 or 64 bytes)."""
    data = b"crunch\n" * 1000 + bytes(range(256))
    path = tmp_path / "f"
    path.write_bytes(data)
    h = hashlib.new(algorithm, data)
    expected = {"shake_128": lambda: h.hexdigest(32), "shake_256": lambda: h.hexdigest(64)}.get(
        algorithm, h.hexdigest
    )()
    assert checksum.checksum(path, algorithm=algorithm) == {
        "algorithm": algorithm,
        "digest": expected,
    }


def test_checksum_offers_the_common_algorithms():
    """The guaranteed hashlib algorithms are all valid names."""
    assert set(hashlib.algorithms_guaranteed) <= set(checksum.valid_algorithms())


def test_checksum_name_is_case_insensitive(tmp_path):
    """SHA1 and sha1 name the same algorithm, reported in lower case."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert checksum.checksum(path, algorithm="SHA1") == {
        "algorithm": "sha1",
        "digest": hashlib.sha1(b"x").hexdigest(),
    }


@pytest.mark.parametrize("bad", ["sha-256", "nope", "", 5, None])
def test_checksum_unknown_algorithm_lists_valid_names(bad, tmp_path):
    """An unknown algorithm raises ValueError naming it and listing the valid names."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="valid names") as info:
        checksum.checksum(path, algorithm=bad)
    assert repr(bad) in str(info.value)
    assert "sha256" in str(info.value)
    assert "md5" in str(info.value)


def test_checksum_shake_length_option(tmp_path):
    """-O length=N sets a shake digest's length and is refused for fixed-length algorithms."""
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    value = checksum.checksum(path, algorithm="shake_256", length=10)
    assert value["digest"] == hashlib.shake_256(b"abc").hexdigest(10)
    with pytest.raises(ValueError, match="fixed length"):
        checksum.checksum(path, algorithm="sha256", length=10)
    with pytest.raises(ValueError, match="positive"):
        checksum.checksum(path, algorithm="shake_128", length=0)


# --- wordfreq ----------------------------------------------------------------------------------


def reference_wordfreq(text: str, top: int | None = 20) -> dict:
    """The wordfreq value computed with Counter and re on the whole text."""
    counts = Counter(word.lower() for word in re.findall(r"\w+", text))
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
    if top is not None:
        ranked = ranked[:top]
    return {"words": sum(counts.values()), "top": [list(pair) for pair in ranked]}


@pytest.mark.parametrize("top", [0, 1, 5, 20, None])
def test_wordfreq_matches_counter_and_re(top, tmp_path):
    """wordfreq's total and top N equal Counter + re over the lowercased \\w+ runs."""
    text = (
        "The cat and the hat. THE END, the end!\r\n"
        "Straße STRASSE straße; naïve café Café CAFÉ\n"
        "İstanbul ǅemal ΣΑΣ σας_42 x_y 3.14 don't\n"
        "tie tie b b a a\n"
    )
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    assert wordfreq.wordfreq(path, top=top) == reference_wordfreq(text, top)


def test_wordfreq_ties_are_ordered_by_word(tmp_path):
    """Words of equal count come in word order."""
    path = tmp_path / "t.txt"
    path.write_text("pear apple fig apple fig pear zoo")
    assert wordfreq.wordfreq(path, top=4)["top"] == [
        ["apple", 2],
        ["fig", 2],
        ["pear", 2],
        ["zoo", 1],
    ]


def test_wordfreq_of_samples(sample):
    """wordfreq agrees with Counter + re on every sample that is UTF-8, and fails on others."""
    path, data = sample
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            wordfreq.wordfreq(path)
    else:
        assert wordfreq.wordfreq(path) == reference_wordfreq(text)


def test_wordfreq_invalid_utf8_fails_with_file_offset(tmp_path):
    """Invalid UTF-8 raises UnicodeDecodeError naming the offending line's file offset."""
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine line\nsecond fine\ncaf\xe9 au lait\n")
    with pytest.raises(UnicodeDecodeError, match="starts at byte 22 of the file") as info:
        wordfreq.wordfreq(path)
    assert info.value.object[info.value.start : info.value.end] == b"\xe9"
    # the same error from a unit that starts later, as in a split run
    with pytest.raises(UnicodeDecodeError, match="starts at byte 22 of the file"):
        wordfreq.unit(path, 15, None)


@pytest.mark.parametrize("top", [-1, 1.5, "5", True])
def test_wordfreq_rejects_bad_top(top, tmp_path):
    """top must be a non-negative int (or None)."""
    path = tmp_path / "t.txt"
    path.write_text("a b")
    with pytest.raises(ValueError, match="top"):
        wordfreq.wordfreq(path, top=top)


def test_wordfreq_reduce_across_files(tmp_path):
    """Merging the states of several files gives the top N of the whole corpus."""
    texts = ["a b c a", "b b d", "A. a! E"]
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"{i}.txt")
        paths[-1].write_text(text)
    state = wordfreq.unit(paths[0])
    for path in paths[1:]:
        state = wordfreq.merge(state, wordfreq.unit(path))
    assert wordfreq.finish(state, top=3) == reference_wordfreq(" ".join(texts), 3)


# --- jsonl -------------------------------------------------------------------------------------


def test_jsonl_counts_records_invalid_lines_and_types(tmp_path):
    """jsonl counts valid records, lists invalid line numbers and counts each field's types."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        b'{"a": 1, "b": "x", "c": null}\n'
        b"\n"
        b'{"a": 1.5, "b": ["y"], "d": {"e": true}}\r\n'
        b"   \t\n"
        b"{not json}\n"
        b'[1, 2, 3]\n"just a string"\n'
        b'{"a": true, "a": false}\n'  # duplicate key: the last one wins, counted once
        b'{"a": 123456789, "b": -0.0, "big": 1e300}\n'
        b"\xff\xfe\n"
        b'{"trailing": "no newline"}'
    )
    assert jsonl.jsonl(path) == {
        "records": 7,
        "invalid": [5, 10],
        "invalid_count": 2,
        "keys": {
            "a": {"bool": 1, "float": 1, "int": 2},
            "b": {"float": 1, "list": 1, "str": 1},
            "big": {"float": 1},
            "c": {"null": 1},
            "d": {"dict": 1},
            "trailing": {"str": 1},
        },
    }


def test_jsonl_empty_and_blank_files(tmp_path):
    """An empty file and a file of blank lines have no records and no invalid lines."""
    empty = {"records": 0, "invalid": [], "invalid_count": 0, "keys": {}}
    for name, data in (("empty", b""), ("blank", b"\n \n\t\r\n\n")):
        path = tmp_path / name
        path.write_bytes(data)
        assert jsonl.jsonl(path) == empty


def test_jsonl_generated_records_match_stdlib_json(tmp_path):
    """On generated JSON Lines, jsonl's key types equal a count made with the json module."""
    (path,) = generate(tmp_path, "jsonl", files=1, seed=3, size=60_000)
    keys: dict[str, Counter] = {}
    records = 0
    for line in path.read_text().splitlines():
        records += 1
        for field, value in json.loads(line).items():
            name = {type(None): "null", dict: "dict"}.get(type(value), type(value).__name__)
            keys.setdefault(field, Counter())[name] += 1
    value = jsonl.jsonl(path)
    assert value["records"] == records
    assert value["invalid_count"] == 0
    assert value["keys"] == {field: dict(counts) for field, counts in keys.items()}


# --- pyast -------------------------------------------------------------------------------------

COMPOUND_NAMES = {
    "If",
    "For",
    "AsyncFor",
    "While",
    "Try",
    "TryStar",
    "With",
    "AsyncWith",
    "FunctionDef",
    "AsyncFunctionDef",
    "ClassDef",
    "Match",
}


def reference_shape(source: bytes) -> dict:
    """pyast's value computed by a recursive walk over every AST node, by class name."""
    tree = ast.parse(source)

    def depth(node: ast.AST) -> int:
        here = 1 if type(node).__name__ in COMPOUND_NAMES else 0
        return here + max((depth(child) for child in ast.iter_child_nodes(node)), default=0)

    names = Counter(type(node).__name__ for node in ast.walk(tree))
    return {
        "lines": source.count(b"\n"),
        "functions": names["FunctionDef"],
        "async_functions": names["AsyncFunctionDef"],
        "classes": names["ClassDef"],
        "imports": names["Import"] + names["ImportFrom"],
        "max_depth": depth(tree),
    }


SOURCE = b'''\
"""A module."""
import os
import sys, json
from pathlib import Path


class Outer:
    class Inner:
        def method(self):
            import re
            return [lambda: 1 for _ in ()]

    async def amethod(self):
        async with self as s:
            async for x in s:
                await x


def f(x):
    if x:
        pass
    elif x > 1:
        pass
    elif x > 2:
        while True:
            break
    else:
        for i in x:
            try:
                pass
            except* ValueError:
                pass
    match x:
        case [a, *_]:
            with open(a) as fh:
                def nested():
                    from os import path
        case _:
            pass
'''


def test_pyast_counts_and_depth_by_hand(tmp_path):
    """pyast counts every def, async def, class and import, and elif nests one level deeper."""
    path = tmp_path / "m.py"
    path.write_bytes(SOURCE)
    expected = {
        "lines": SOURCE.count(b"\n"),
        "functions": 3,  # method, f, nested
        "async_functions": 1,
        "classes": 2,
        "imports": 5,  # import os; import sys, json; from pathlib; import re; from os
        # f > if > elif > elif > else's for > try* = 6; f > match > with > def nested = 4
        "max_depth": 6,
    }
    assert pyast.pyast(path) == expected
    assert reference_shape(SOURCE) == expected


@pytest.mark.parametrize(
    ("source", "depth"),
    [
        (b"", 0),
        (b"x = 1\nprint(x)\n", 0),
        (b"if a:\n    pass\n", 1),
        (b"if a:\n    pass\nelif b:\n    pass\n", 2),
        (b"if a:\n    pass\nelse:\n    if b:\n        pass\n", 2),
        (b"try:\n    pass\nexcept E:\n    if x:\n        pass\n", 2),
        (b"match x:\n    case 1:\n        if y:\n            pass\n", 2),
        (b"class A:\n    def f(self):\n        with a:\n            pass\n", 3),
        (b"f = lambda: [x for x in y if x]\n", 0),
    ],
)
def test_pyast_max_depth_examples(source, depth, tmp_path):
    """max_depth counts compound statements only; handlers and cases are not levels."""
    path = tmp_path / "m.py"
    path.write_bytes(source)
    assert pyast.pyast(path)["max_depth"] == depth == reference_shape(source)["max_depth"]


def test_pyast_deep_nesting(tmp_path):
    """Ninety nested ifs give max_depth 90."""
    source = "".join("    " * i + f"if x{i}:\n" for i in range(90)) + "    " * 90 + "pass\n"
    path = tmp_path / "deep.py"
    path.write_text(source)
    assert pyast.pyast(path)["max_depth"] == 90


def test_pyast_matches_independent_walk_on_generated_modules(tmp_path):
    """On generated modules of varied shape, pyast equals a recursive walk of the AST."""
    for path in generate(tmp_path, "py", files=4, seed=11, size=80_000):
        assert pyast.pyast(path) == reference_shape(path.read_bytes())


def test_pyast_honours_pep263_coding_line(tmp_path):
    """A latin-1 file with a coding line parses; without the line the same bytes fail."""
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\ns = 'caf\xe9'\ndef f():\n    return s\n")
    assert pyast.pyast(path) == {
        "lines": 4,
        "functions": 1,
        "async_functions": 0,
        "classes": 0,
        "imports": 0,
        "max_depth": 1,
    }
    path.write_bytes(b"s = 'caf\xe9'\n")
    with pytest.raises(SyntaxError):
        pyast.pyast(path)


def test_pyast_syntax_error_names_the_line(tmp_path):
    """A file that does not parse raises SyntaxError whose message has its line number."""
    path = tmp_path / "bad.py"
    path.write_bytes(b"x = 1\n\ndef f(:\n    pass\n")
    with pytest.raises(SyntaxError) as info:
        pyast.pyast(path)
    assert info.value.lineno == 3
    assert "line 3" in str(info.value)
    assert "bad.py" in str(info.value)


def test_pyast_null_byte_error_names_the_line(tmp_path):
    """A null byte, which ast.parse reports without a line, fails with the line of the byte."""
    path = tmp_path / "nul.py"
    path.write_bytes(b"x = 1\ny = 2\nz = '\x00'\n")
    with pytest.raises(SyntaxError, match="line 3"):
        pyast.pyast(path)


def test_pyast_empty_file(tmp_path):
    """An empty Python file is all zeros."""
    path = tmp_path / "empty.py"
    path.write_bytes(b"")
    assert pyast.pyast(path) == dict.fromkeys(
        ["lines", "functions", "async_functions", "classes", "imports", "max_depth"], 0
    )


# --- burn and sleep ----------------------------------------------------------------------------


@pytest.mark.parametrize("item", [None, 3, "x", {"a": [1]}, Path("no/such/file")])
def test_burn_and_sleep_take_any_item(item):
    """burn and sleep accept any item and return {"ms": ms}, independent of timing."""
    assert burn.burn(item, ms=0.5) == {"ms": 0.5}
    assert burn.burn(item) == {"ms": 10}
    assert sleep.sleep(item, ms=1) == {"ms": 1}


def test_burn_spends_cpu_time():
    """burn(ms=40) spends CPU time of the order of 40 ms in the calling thread."""
    burn.burn(None, ms=1)  # calibrate first
    began = time.thread_time()
    burn.burn(None, ms=40)
    spent = time.thread_time() - began
    assert 0.008 < spent < 0.4


def test_sleep_waits_without_cpu():
    """sleep(ms=30) takes at least 30 ms of wall time and little CPU."""
    began, cpu = time.perf_counter(), time.thread_time()
    sleep.sleep(None, ms=30)
    assert time.perf_counter() - began >= 0.03
    assert time.thread_time() - cpu < 0.02


@pytest.mark.parametrize("ms", [-1, "10", None, True, float("nan"), float("inf")])
def test_burn_and_sleep_reject_bad_ms(ms):
    """ms must be a finite non-negative number."""
    with pytest.raises(ValueError, match="ms"):
        burn.burn(None, ms=ms)
    with pytest.raises(ValueError, match="ms"):
        sleep.sleep(None, ms=ms)
