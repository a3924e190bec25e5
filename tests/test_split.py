"""Splitting files into line-aligned ranges: sizes, ranges, unit reads, and split == unsplit."""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crunch._sizes import parse_size
from crunch.tasks import _jsonl as jsonl
from crunch.tasks import _wordfreq as wordfreq
from crunch.tasks._ranges import (
    count_lines,
    iter_unit_blocks,
    iter_unit_lines,
    split_ranges,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file that every hypothesis example of a module overwrites."""
    return tmp_path_factory.mktemp("split") / "input"


def line_starts(data: bytes) -> list[int]:
    """Offsets at which the lines of ``data`` start (computed the obvious way)."""
    return [i for i in range(len(data)) if i == 0 or data[i - 1] == 0x0A]


def split_run(combiner_module, path: Path, split_size: int, **options):
    """finish(merge(unit(r1), unit(r2), ...)) over the ranges of ``split_ranges``."""
    ranges = split_ranges(path.stat().st_size, split_size)
    states = [combiner_module.unit(path, start, end, **options) for start, end in ranges]
    return combiner_module.finish(functools.reduce(combiner_module.merge, states), **options)


# --- parse_size --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        ("0", 0),
        ("4MiB", 4 * 1024 * 1024),
        ("64MB", 64_000_000),
        ("1.5GiB", 1536 * 1024 * 1024),
        ("4M", 4 * 1024 * 1024),
        ("2k", 2048),
        ("1kb", 1000),
        ("1KB", 1000),
        (" 2 KiB ", 2048),
        (".5KiB", 512),
        ("10B", 10),
        ("1TiB", 1 << 40),
        ("1.3KiB", 1331),
        (4096, 4096),
    ],
)
def test_parse_size_reads_units(text, expected):
    """parse_size understands plain bytes, decimal units, binary units and fractions."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "4XB", "-1", "1.2.3", "4 MiB extra", "MiB", "1e6"])
def test_parse_size_rejects_bad_text_naming_it(text):
    """A size parse_size cannot read raises ValueError whose message quotes the text."""
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_size(text)


def test_parse_size_rejects_other_types():
    """parse_size raises TypeError for what is neither a string nor an int, and for negatives."""
    with pytest.raises(TypeError):
        parse_size(None)  # ty: ignore[invalid-argument-type]
    with pytest.raises(TypeError):
        parse_size(True)
    with pytest.raises(ValueError, match="negative"):
        parse_size(-5)


# --- split_ranges ------------------------------------------------------------------------------


def test_split_ranges_examples():
    """Ranges are consecutive slices of split_size bytes with an open-ended last one."""
    assert split_ranges(0, 4) == [(0, None)]
    assert split_ranges(4, 4) == [(0, None)]
    assert split_ranges(5, 4) == [(0, 4), (4, None)]
    assert split_ranges(10, 4) == [(0, 4), (4, 8), (8, None)]
    assert split_ranges(12, 4) == [(0, 4), (4, 8), (8, None)]


def test_split_ranges_rejects_non_positive_split_size():
    """A split size of zero or less is a ValueError, not an endless list."""
    with pytest.raises(ValueError, match="split size"):
        split_ranges(10, 0)


@given(size=st.integers(0, 10_000), split_size=st.integers(1, 3000))
@SETTINGS
def test_split_ranges_cover_the_file(size, split_size):
    """Ranges start at 0, follow each other without gap, and each is at most split_size long."""
    ranges = split_ranges(size, split_size)
    assert ranges[0][0] == 0
    assert ranges[-1][1] is None
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start
    for start, end in ranges[:-1]:
        assert end is not None
        assert end - start == split_size
    assert size - ranges[-1][0] <= split_size or size == 0


# --- unit reads --------------------------------------------------------------------------------


def test_long_line_belongs_to_the_range_of_its_first_byte(tmp_path):
    """A line longer than the split size is read wholly by the unit its first byte is in."""
    path = tmp_path / "f"
    long_line = b"x" * 100 + b"\n"
    path.write_bytes(b"a\n" + long_line + b"b\nc")
    ranges = split_ranges(path.stat().st_size, 10)
    units = [list(iter_unit_lines(path, s, e, block_size=7)) for s, e in ranges]
    assert units[0] == [b"a\n", long_line]
    assert ranges[-1] == (100, None)
    assert all(unit == [] for unit in units[1:-1])
    assert units[-1] == [b"b\n", b"c"]  # "b" starts at 103, in [100, EOF)


def test_empty_file_has_no_lines(tmp_path):
    """An empty file yields no lines and no blocks, and count_lines of b"" is 0."""
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert list(iter_unit_lines(path, 0, None)) == []
    assert list(iter_unit_blocks(path, 0, None)) == []
    assert count_lines(b"") == 0
    assert count_lines(b"a") == 1
    assert count_lines(b"a\n") == 1
    assert count_lines(b"a\n\nb") == 3


file_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.one_of(
            st.binary(max_size=5),
            st.sampled_from([b"", b"\r", b" ", b"word word"]),
            st.binary(min_size=30, max_size=120),
        ).map(lambda b: b.replace(b"\n", b"")),
        max_size=25,
    ).flatmap(
        lambda lines: st.sampled_from([b"\n", b"\r\n"]).flatmap(
            lambda sep: st.booleans().map(
                lambda final: sep.join(lines) + (sep if final and lines else b"")
            )
        )
    ),
)


@given(data=file_bytes, split_size=st.integers(1, 80), block_size=st.integers(1, 40))
@SETTINGS
def test_units_read_exactly_the_lines_starting_in_their_range(
    scratch, data, split_size, block_size
):
    """Each unit reads the lines starting in [start, end); together they are the file, in order."""
    scratch.write_bytes(data)
    starts = line_starts(data)
    everything = []
    for start, end in split_ranges(len(data), split_size):
        stop = len(data) if end is None else end
        expected = [
            data[s : [*starts, len(data)][i + 1]] for i, s in enumerate(starts) if start <= s < stop
        ]
        lines = list(iter_unit_lines(scratch, start, end, block_size=block_size))
        assert lines == expected
        blocks = list(iter_unit_blocks(scratch, start, end, block_size=block_size))
        assert b"".join(block for _, block in blocks) == b"".join(expected)
        for offset, block in blocks:
            assert data[offset : offset + len(block)] == block
            assert offset in starts
        everything += lines
    assert b"".join(everything) == data
    assert len(everything) == count_lines(data)


# --- split run == unsplit run ------------------------------------------------------------------

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n"), min_size=0, max_size=12
)
text_lines = st.one_of(
    st.lists(words, max_size=6).map(" ".join),
    st.sampled_from(["", "İstanbul Straße ǅemal ΣΑΣ", "don't stop_me now 42", "\r", "\t \x0b"]),
    st.lists(words, min_size=20, max_size=40).map(" ".join),  # longer than most split sizes
)


@given(
    lines=st.lists(text_lines, max_size=20),
    final_newline=st.booleans(),
    split_size=st.integers(1, 64),
    top=st.sampled_from([0, 1, 3, 20, None]),
)
@SETTINGS
def test_wordfreq_split_equals_unsplit(scratch, lines, final_newline, split_size, top):
    """wordfreq merged over line-aligned units equals the unsplit run and Counter + re."""
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    scratch.write_bytes(text.encode())
    whole = wordfreq.wordfreq(scratch, top=top)
    assert split_run(wordfreq, scratch, split_size, top=top) == whole
    counts = Counter(word.lower() for word in re.findall(r"\w+", text))
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
    expected_top = [[w, c] for w, c in (ranked if top is None else ranked[:top])]
    assert whole == {"words": sum(counts.values()), "top": expected_top}


def type_name(value) -> str:
    """JSON type name of a value from the stdlib json module (checked in bool-first order)."""
    if value is None:
        return "null"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, kind):
            return name
    return "list" if isinstance(value, list) else "dict"


def reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def reference_jsonl(data: bytes) -> dict:
    """The jsonl value computed independently with the stdlib json module."""
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    records = 0
    invalid: list[int] = []
    keys: dict[str, Counter] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip(b" \t\r"):
            continue
        try:
            value = json.loads(line, parse_constant=reject_constant)
        except ValueError:
            invalid.append(number)
            continue
        records += 1
        if isinstance(value, dict):
            for field, field_value in value.items():
                keys.setdefault(field, Counter())[type_name(field_value)] += 1
    return {
        "records": records,
        "invalid": invalid[:10],
        "invalid_count": len(invalid),
        "keys": {field: dict(sorted(keys[field].items())) for field in sorted(keys)},
    }


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
jsonl_lines = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "id", "ü"]), json_values, max_size=4).map(
        json.dumps
    ),
    json_values.map(json.dumps),
    st.sampled_from(
        ["", "   ", "\t", "\r", "\x0c", "{", "nope", '{"a": 1,}', "[1,", "NaN", "{'a': 1}"]
    ),
    st.text(max_size=150).map(lambda s: json.dumps({"long": s})),  # longer than the split size
)


@given(
    lines=st.lists(jsonl_lines, max_size=30),
    final_newline=st.booleans(),
    crlf=st.booleans(),
    split_size=st.integers(1, 64),
)
@SETTINGS
def test_jsonl_split_equals_unsplit(scratch, lines, final_newline, crlf, split_size):
    """jsonl merged over units equals the unsplit run and a stdlib json count, line numbers too."""
    sep = "\r\n" if crlf else "\n"
    data = (sep.join(lines) + (sep if final_newline and lines else "")).encode()
    scratch.write_bytes(data)
    whole = jsonl.jsonl(scratch)
    assert split_run(jsonl, scratch, split_size) == whole
    assert whole == reference_jsonl(data)


def test_jsonl_invalid_line_numbers_are_the_files_after_many_units(tmp_path):
    """Invalid lines far into a file split into many units keep the whole file's line numbers."""
    lines = [json.dumps({"n": i}) for i in range(200)]
    for bad in (57, 120, 121, 199):
        lines[bad - 1] = "{broken"
    lines[10] = ""
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join(lines) + "\n")
    value = split_run(jsonl, path, 33)
    assert value["invalid"] == [57, 120, 121, 199]
    assert value["invalid_count"] == 4
    assert value["records"] == 195
    assert value == jsonl.jsonl(path)


def test_jsonl_lists_at_most_ten_invalid_lines_but_counts_all(tmp_path):
    """Of 25 invalid lines, the first 10 numbers are listed and all 25 counted, split or not."""
    path = tmp_path / "bad.jsonl"
    path.write_text("".join("{}\nnot json\n" for _ in range(25)))
    for value in (jsonl.jsonl(path), split_run(jsonl, path, 5)):
        assert value["invalid"] == list(range(2, 21, 2))
        assert value["invalid_count"] == 25
        assert value["records"] == 25


@pytest.mark.parametrize("module", [jsonl, wordfreq], ids=["jsonl", "wordfreq"])
def test_merge_does_not_depend_on_grouping(module, tmp_path):
    """merge is associative: ((a+b)+c)+... and a+(b+(c+...)) finish to the same value."""
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\nbad\n\n{"a": "x", "b": null}\n[1]\nbad again\n{"b": 2.5}\n')
    ranges = split_ranges(path.stat().st_size, 12)
    assert len(ranges) >= 3
    left = functools.reduce(module.merge, [module.unit(path, s, e) for s, e in ranges])
    right = functools.reduce(
        lambda acc, state: module.merge(state, acc),
        reversed([module.unit(path, s, e) for s, e in ranges]),
    )
    assert module.finish(left) == module.finish(right) == module.finish(module.unit(path))
