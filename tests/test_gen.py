"""The synthetic data generator (crunch gen): determinism, kinds, sizes, streaming, data/."""

from __future__ import annotations

import ast
import json
import tracemalloc
from pathlib import Path

import pytest

from crunch._gen import KINDS, generate

DATA = Path(__file__).resolve().parent.parent / "data"


def generate_data_sample(directory: Path) -> list[Path]:
    """How data/ was made (data/README.md says the same); the hand-written files are data/odd/."""
    return generate(directory, "mixed", files=24, seed=1, size=1_000_000)


def contents(paths: list[Path], root: Path) -> dict[str, bytes]:
    """The files' bytes by path relative to root."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in paths}


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_same_bytes(kind, tmp_path):
    """Two runs with the same arguments write the same files with the same bytes."""
    first = generate(tmp_path / "a", kind, files=5, seed=42, size=60_000)
    second = generate(tmp_path / "b", kind, files=5, seed=42, size=60_000)
    assert contents(first, tmp_path / "a") == contents(second, tmp_path / "b")


@pytest.mark.parametrize("kind", KINDS)
def test_different_seed_gives_different_bytes(kind, tmp_path):
    """Another seed gives the same file names but different contents in every file."""
    first = contents(generate(tmp_path / "a", kind, files=3, seed=1, size=30_000), tmp_path / "a")
    second = contents(generate(tmp_path / "b", kind, files=3, seed=2, size=30_000), tmp_path / "b")
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] != second[name]


def test_a_file_does_not_depend_on_the_number_of_files(tmp_path):
    """File i has the same content prefix whether 2 or 5 files are made (one RNG per file)."""
    few = generate(tmp_path / "a", "text", files=2, seed=9, size=20_000)
    many = generate(tmp_path / "b", "text", files=5, seed=9, size=50_000)
    for small, large in zip(few, many[:2], strict=True):
        a, b = small.read_bytes(), large.read_bytes()
        shorter = min(len(a), len(b))
        assert a[: shorter // 2] == b[: shorter // 2]


@pytest.mark.parametrize("kind", KINDS)
def test_total_size_is_about_the_requested_size(kind, tmp_path):
    """size is the approximate total of the set: at least it, and not much more."""
    paths = generate(tmp_path, kind, files=6, seed=5, size=300_000)
    total = sum(path.stat().st_size for path in paths)
    assert 300_000 <= total <= 300_000 * 1.1
    sizes = [path.stat().st_size for path in paths]
    assert len(set(sizes)) > 1  # varied, not all equal


def test_tiny_size_still_gives_one_line_per_file(tmp_path):
    """With size 0 every file still holds at least one whole line or record."""
    for path in generate(tmp_path, "mixed", files=3, seed=0, size=0):
        data = path.read_bytes()
        assert data
        assert data.endswith(b"\n")


def test_names_sort_in_generation_order(tmp_path):
    """Zero-padded names: the name order of the files is the order they were made."""
    paths = generate(tmp_path, "jsonl", files=12, seed=0, size=12_000)
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    assert paths[0].name == "records-0000.jsonl"
    assert all(p.parent == tmp_path for p in paths)


def test_text_kind_is_utf8_prose_of_varied_lines(tmp_path):
    """text files decode as UTF-8, end with a newline, and have blank, short and long lines."""
    (path,) = generate(tmp_path, "text", files=1, seed=3, size=400_000)
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    assert text.endswith("\n")
    assert "" in lines[:-1]
    assert max(map(len, lines)) > 1000
    assert any(not line.isascii() for line in lines)


def test_jsonl_kind_has_varied_value_types(tmp_path):
    """jsonl records are JSON objects with unique ids and fields of every JSON type."""
    (path,) = generate(tmp_path, "jsonl", files=1, seed=3, size=200_000)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(isinstance(record, dict) for record in records)
    assert [r["id"] for r in records] == list(range(1, len(records) + 1))
    types = {type(value).__name__ for record in records for value in record.values()}
    assert types == {"int", "float", "str", "bool", "NoneType", "list", "dict"}
    assert len({frozenset(record) for record in records}) > 5  # fields vary


def test_py_kind_compiles_and_has_varied_shape(tmp_path):
    """py files compile and hold defs, async defs, classes, imports, match, try* and nesting."""
    seen: set[str] = set()
    for seed in range(3):
        for path in generate(tmp_path / str(seed), "py", files=3, seed=seed, size=90_000):
            source = path.read_bytes()
            compile(source, str(path), "exec")
            seen |= {type(node).__name__ for node in ast.walk(ast.parse(source))}
    wanted = {
        "FunctionDef",
        "AsyncFunctionDef",
        "ClassDef",
        "Import",
        "ImportFrom",
        "If",
        "For",
        "AsyncFor",
        "While",
        "Try",
        "TryStar",
        "With",
        "AsyncWith",
        "Match",
        "Await",
        "Lambda",
        "ListComp",
    }
    assert wanted <= seen


def test_mixed_kind_uses_subdirectories(tmp_path):
    """mixed puts text, jsonl and py files in their subdirectories, nested ones included."""
    paths = generate(tmp_path, "mixed", files=12, seed=0, size=60_000)
    folders = {path.parent.relative_to(tmp_path).as_posix() for path in paths}
    assert folders == {"text", "text/notes", "jsonl", "py", "py/pkg"}
    suffixes = {path.suffix for path in paths}
    assert suffixes == {".txt", ".jsonl", ".py"}


def test_zero_files_and_bad_arguments(tmp_path):
    """files=0 makes nothing; an unknown kind or a negative count is a clear error."""
    assert generate(tmp_path / "none", "text", files=0) == []
    with pytest.raises(ValueError, match="unknown kind 'csv'"):
        generate(tmp_path, "csv")
    with pytest.raises(ValueError, match="files"):
        generate(tmp_path, "text", files=-1)
    with pytest.raises(ValueError, match="size"):
        generate(tmp_path, "text", size=-1)
    with pytest.raises(TypeError, match="seed"):
        generate(tmp_path, "text", seed="1")  # ty: ignore[invalid-argument-type]


def peak_memory_of_generate(directory: Path, size: int) -> tuple[int, int]:
    """(total bytes written, peak traced allocation) of generating a mixed set of ``size``."""
    tracemalloc.start()
    try:
        paths = generate(directory, "mixed", files=3, seed=0, size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sum(path.stat().st_size for path in paths), peak


def test_generation_streams_in_small_memory(tmp_path):
    """A 20 MB set needs a few MiB, no more than a 2 MB one: files are streamed in blocks."""
    _, small_peak = peak_memory_of_generate(tmp_path / "small", 2_000_000)
    total, peak = peak_memory_of_generate(tmp_path / "large", 20_000_000)
    assert total >= 20_000_000
    assert peak < 8 * 1024 * 1024
    assert peak < small_peak + 2 * 1024 * 1024


def test_committed_sample_is_reproducible(tmp_path):
    """The generated part of data/ is exactly what generate() makes with the documented args."""
    paths = generate_data_sample(tmp_path)
    for path in paths:
        relative = path.relative_to(tmp_path)
        assert (DATA / relative).read_bytes() == path.read_bytes(), relative
