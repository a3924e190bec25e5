"""Input sources on real files, directories, links, pipes and FIFOs (crunch._sources)."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crunch import _sources as sources
from crunch._results import InvalidItem
from crunch._sources import check_paths, glob_to_regex, jsonl_items, stdin_paths, walk


def _permissions_enforced() -> bool:
    """False when this process may read anything anyway (root with CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as base:
        locked = Path(base, "locked")
        locked.mkdir(mode=0)
        try:
            os.listdir(locked)
        except PermissionError:
            return True
        finally:
            locked.chmod(0o700)
        return False


needs_permissions = pytest.mark.skipif(
    not _permissions_enforced(), reason="this user can read anything (root)"
)


def make(base: Path, *paths: str) -> None:
    """Create files (and their parent directories) under ``base``; a path ending in / is a dir."""
    for rel in paths:
        target = base / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rel)


def keys(pairs: Iterable[tuple[Any, Any]]) -> list[Any]:
    return [key for key, _ in pairs]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` so that roots can be given as relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- walk: order and keys ---------------------------------------------------------------------


def test_walk_is_depth_first_in_name_order_with_files_and_dirs_interleaved(in_tmp: Path) -> None:
    """Entries of each directory come sorted by name, files and subdirectories together."""
    make(in_tmp, "data/b.txt", "data/a/z.txt", "data/a/y/k.txt", "data/c/x.txt")
    make(in_tmp, "data/a.txt", "data/B.txt")
    assert keys(walk(["data"])) == [
        "data/B.txt",
        "data/a/y/k.txt",
        "data/a/z.txt",
        "data/a.txt",
        "data/b.txt",
        "data/c/x.txt",
    ]


def test_walk_roots_are_walked_in_the_order_given(in_tmp: Path) -> None:
    """Several roots are walked one after the other, as given, not merged or sorted."""
    make(in_tmp, "z/1.txt", "a/2.txt", "m.txt")
    assert keys(walk(["z", "m.txt", "a"])) == ["z/1.txt", "m.txt", "a/2.txt"]


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("data", ["data/a.txt", "data/sub/b.txt"]),
        ("data/", ["data/a.txt", "data/sub/b.txt"]),
        ("./data", ["data/a.txt", "data/sub/b.txt"]),
        ("./data/", ["data/a.txt", "data/sub/b.txt"]),
        ("data//sub", ["data/sub/b.txt"]),
        ("data/./sub/", ["data/sub/b.txt"]),
        (".", ["data/a.txt", "data/sub/b.txt"]),
        ("./data/a.txt", ["data/a.txt"]),
    ],
)
def test_walk_keys_are_normalised_as_pathlib_does(
    in_tmp: Path, root: str, expected: list[str]
) -> None:
    """A key is the path as reached from the root given, normalised, with / separators."""
    make(in_tmp, "data/a.txt", "data/sub/b.txt")
    pairs = list(walk([root]))
    assert keys(pairs) == expected
    assert [str(item) for _, item in pairs] == expected
    assert [item for _, item in pairs] == [Path(key) for key in expected]


def test_walk_items_are_paths_that_open_the_file(in_tmp: Path) -> None:
    """Each item is Path(key), and it reads the file the key names."""
    make(in_tmp, "data/sub/b.txt")
    [(key, item)] = walk(["./data/"])
    assert item == Path(key)
    assert str(item) == key
    assert isinstance(item, Path)
    assert item.read_text() == "data/sub/b.txt"


def test_the_engines_walk_yields_the_same_keys_without_paths(in_tmp: Path) -> None:
    """walk_keys (what crunch.files and the command hand the engine) yields walk's keys in
    walk's order, None where walk has Path(key), and the same InvalidItem where it has one;
    with_paths turns it back into walk."""
    make(in_tmp, "data/a.txt", "data/sub/b.txt", "data/.hidden", "top.txt")
    (in_tmp / "data" / "gone").symlink_to("nowhere")
    roots = ["./data/", "top.txt", ".", "missing"]
    options: dict[str, Any] = {"follow_symlinks": True, "excludes": ["*.py"]}
    pairs = list(walk(roots, **options))
    bare = list(sources.walk_keys(roots, **options))
    assert [key for key, _ in bare] == [key for key, _ in pairs]
    assert [key for key, _ in pairs] == [
        "data/a.txt", "data/gone", "data/sub/b.txt", "top.txt", "missing",
    ]  # fmt: skip
    for (_, item), (key, bare_item) in zip(pairs, bare, strict=True):
        if isinstance(item, InvalidItem):
            assert bare_item == item
        else:
            assert bare_item is None
            assert item == Path(key)
    assert list(sources.with_paths(sources.walk_keys(roots, **options))) == pairs


def test_files_source_gives_workers_keys_and_the_caller_paths(in_tmp: Path) -> None:
    """crunch.files: the engine gets plain keys (a pair for an entry that is not the file at
    its key); iterating it gives the Path of each file, as walk does."""
    make(in_tmp, "d/a.txt", "d/b/c.txt")
    (in_tmp / "d" / "z").symlink_to("nowhere")
    source = sources.files("d", follow_symlinks=True)
    keys = list(source.keys())
    assert keys[:2] == ["d/a.txt", "d/b/c.txt"]
    assert keys[2][0] == "d/z"
    assert isinstance(keys[2][1], InvalidItem)
    items = list(sources.files("d", follow_symlinks=True))
    assert items[:2] == [Path("d/a.txt"), Path("d/b/c.txt")]
    assert items[2] == keys[2][1]


def test_walk_absolute_root_gives_absolute_keys(tmp_path: Path) -> None:
    """An absolute root gives absolute keys, still normalised."""
    make(tmp_path, "d/a.txt")
    assert keys(walk([f"{tmp_path}//d/"])) == [f"{tmp_path.as_posix()}/d/a.txt"]


def test_walk_of_an_empty_directory_yields_nothing(in_tmp: Path) -> None:
    """A directory with no files yields no items (and no error)."""
    make(in_tmp, "empty/", "nested/deeper/")
    assert list(walk(["empty", "nested"])) == []


def test_walk_is_lazy_and_compiles_patterns_at_the_call(in_tmp: Path) -> None:
    """Nothing is listed before the first next(): files made after the call are seen."""
    make(in_tmp, "data/")
    items = walk(["data"], globs=["*.txt"])
    make(in_tmp, "data/late.txt")
    assert keys(items) == ["data/late.txt"]


def test_walk_survives_a_deep_tree(in_tmp: Path) -> None:
    """Deep nesting does not hit the recursion limit (the walk keeps its own stack)."""
    deep = Path("data") / "/".join(["d"] * 120)
    (in_tmp / deep).mkdir(parents=True)
    (in_tmp / deep / "leaf.txt").write_text("x")
    assert keys(walk(["data"])) == [f"{deep.as_posix()}/leaf.txt"]


# --- walk: hidden entries ---------------------------------------------------------------------


def test_walk_skips_hidden_files_and_directories(in_tmp: Path) -> None:
    """Entries whose name starts with a dot are skipped, with everything below them."""
    make(in_tmp, "data/a.txt", "data/.secret", "data/.git/config", "data/sub/.hidden")
    assert keys(walk(["data"])) == ["data/a.txt"]


def test_walk_hidden_true_includes_hidden_entries(in_tmp: Path) -> None:
    """With hidden=True dot entries are walked like any other, in name order."""
    make(in_tmp, "data/a.txt", "data/.secret", "data/.git/config")
    assert keys(walk(["data"], hidden=True)) == [
        "data/.git/config",
        "data/.secret",
        "data/a.txt",
    ]


def test_walk_uses_a_hidden_root_named_by_the_caller(in_tmp: Path) -> None:
    """A root is never skipped for its own name: walk(['.config']) walks it."""
    make(in_tmp, ".config/app.toml", ".rc")
    assert keys(walk([".config", ".rc"])) == [".config/app.toml", ".rc"]


# --- walk: symbolic links ---------------------------------------------------------------------


@pytest.fixture
def linked(in_tmp: Path) -> Path:
    """data/ holding a real file, a link to a file and a link to a directory outside data/."""
    make(in_tmp, "data/real.txt", "outside/secret.txt", "outside/deep/x.txt")
    (in_tmp / "data/file_link.txt").symlink_to("../outside/secret.txt")
    (in_tmp / "data/dir_link").symlink_to("../outside")
    return in_tmp


def test_walk_skips_symlinks_by_default(linked: Path) -> None:
    """Links to files and to directories met in the walk are skipped: nothing outside is read."""
    assert keys(walk(["data"])) == ["data/real.txt"]


def test_walk_follows_symlinks_when_asked(linked: Path) -> None:
    """With follow_symlinks links are walked as what they point to, keyed by the link's path;
    a file met again through another link (file_link.txt is dir_link/secret.txt) is one item,
    under the key met first."""
    assert keys(walk(["data"], follow_symlinks=True)) == [
        "data/dir_link/deep/x.txt",
        "data/dir_link/secret.txt",
        "data/real.txt",
    ]


def test_walk_uses_a_root_that_is_a_symlink(linked: Path) -> None:
    """A root given by the caller is used even when it is a link, to a directory or a file."""
    (linked / "root_link").symlink_to("outside")
    assert keys(walk(["root_link", "data/real.txt"])) == [
        "root_link/deep/x.txt",
        "root_link/secret.txt",
        "data/real.txt",
    ]
    assert keys(walk(["data/file_link.txt"])) == ["data/file_link.txt"]
    # The same file named again through a link is not a second item.
    assert keys(walk(["root_link", "data/file_link.txt"])) == [
        "root_link/deep/x.txt",
        "root_link/secret.txt",
    ]


def test_walk_link_to_an_ancestor_terminates_and_yields_each_file_once(in_tmp: Path) -> None:
    """A link loop is detected: the walk ends, every file appears once, and a warning says so."""
    make(in_tmp, "data/a.txt", "data/sub/b.txt")
    (in_tmp / "data/sub/up").symlink_to("..")
    (in_tmp / "data/sub/self").symlink_to(".")
    warnings: list[str] = []
    found = keys(walk(["data"], follow_symlinks=True, warnings=warnings))
    assert found == ["data/a.txt", "data/sub/b.txt"]
    assert len(warnings) == 2
    assert all("link loop" in w for w in warnings)
    assert any(w.startswith("data/sub/up:") for w in warnings)


def test_walk_loop_through_a_root_that_is_a_link_terminates(in_tmp: Path) -> None:
    """A loop back to a root reached through a link is caught by (st_dev, st_ino), not names."""
    make(in_tmp, "real/a.txt")
    (in_tmp / "entry").symlink_to("real")
    (in_tmp / "real/back").symlink_to("../entry")
    assert keys(walk(["entry"], follow_symlinks=True)) == ["entry/a.txt"]


def test_walk_two_links_to_one_directory_give_each_file_once(in_tmp: Path) -> None:
    """Links to the same non-ancestor directory: its files are items once, under the first
    key met (find -L would list them twice; crunch runs one item per file)."""
    make(in_tmp, "shared/s.txt", "data/")
    (in_tmp / "data/one").symlink_to("../shared")
    (in_tmp / "data/two").symlink_to("../shared")
    assert keys(walk(["data"], follow_symlinks=True)) == ["data/one/s.txt"]


def test_walk_dangling_link_is_skipped_or_fails_when_followed(in_tmp: Path) -> None:
    """A broken link is skipped by default; followed, it is an InvalidItem naming the target."""
    make(in_tmp, "data/a.txt")
    (in_tmp / "data/broken").symlink_to("nowhere.txt")
    assert keys(walk(["data"])) == ["data/a.txt"]
    pairs = list(walk(["data"], follow_symlinks=True))
    assert keys(pairs) == ["data/a.txt", "data/broken"]
    invalid = pairs[1][1]
    assert isinstance(invalid, InvalidItem)
    assert invalid.type == "FileNotFoundError"
    assert "data/broken" in invalid.message
    assert "nowhere.txt" in invalid.message


# --- walk: unreadable and special entries -----------------------------------------------------


def test_walk_directory_that_vanishes_mid_walk_fails_that_entry_only(in_tmp: Path) -> None:
    """A subdirectory that cannot be listed is yielded as an InvalidItem and the walk goes on."""
    make(in_tmp, "data/a.txt", "data/m/gone.txt", "data/z.txt")
    items = walk(["data"])
    assert next(items)[0] == "data/a.txt"  # the listing of data/ is taken now
    shutil.rmtree(in_tmp / "data/m")
    rest = list(items)
    assert keys(rest) == ["data/m", "data/z.txt"]
    invalid = rest[0][1]
    assert isinstance(invalid, InvalidItem)
    assert invalid.type == "FileNotFoundError"
    assert invalid.message == "data/m: no such file or directory"


@needs_permissions
def test_walk_unlistable_subdirectory_is_a_permission_error_item(in_tmp: Path) -> None:
    """A subdirectory without read permission becomes a PermissionError item; the walk goes on."""
    make(in_tmp, "data/a.txt", "data/locked/x.txt", "data/z.txt")
    (in_tmp / "data/locked").chmod(0)
    try:
        pairs = list(walk(["data"]))
    finally:
        (in_tmp / "data/locked").chmod(0o755)
    assert keys(pairs) == ["data/a.txt", "data/locked", "data/z.txt"]
    assert pairs[1][1] == InvalidItem("PermissionError", "data/locked: permission denied")


def test_walk_missing_root_is_an_invalid_item(in_tmp: Path) -> None:
    """Used without check_paths, a missing root becomes one failed item, not a crash."""
    assert list(walk(["nope/"])) == [
        ("nope", InvalidItem("FileNotFoundError", "nope: no such file or directory"))
    ]


def test_walk_skips_a_fifo_met_in_the_walk_but_uses_a_fifo_root(in_tmp: Path) -> None:
    """Special files met in the walk are skipped with a warning; one named as a root is used."""
    make(in_tmp, "data/a.txt")
    os.mkfifo(in_tmp / "data/pipe")
    warnings: list[str] = []
    assert keys(walk(["data"], warnings=warnings)) == ["data/a.txt"]
    assert len(warnings) == 1
    assert warnings[0].startswith("data/pipe: skipped, not a regular file")
    assert keys(walk(["data/pipe"])) == ["data/pipe"]


# --- walk: --glob and --exclude ---------------------------------------------------------------


@pytest.fixture
def tree(in_tmp: Path) -> Path:
    make(
        in_tmp,
        "src/os.py",
        "src/README.md",
        "src/pkg/mod.py",
        "src/pkg/data.json",
        "src/pkg/sub/deep.py",
        "src/build/gen.py",
        "src/build/out/bin.o",
    )
    return in_tmp


def test_glob_double_star_matches_files_at_the_top_too(tree: Path) -> None:
    """**/*.py matches os.py directly under the root as well as nested .py files."""
    assert keys(walk(["src"], globs=["**/*.py"])) == [
        "src/build/gen.py",
        "src/os.py",
        "src/pkg/mod.py",
        "src/pkg/sub/deep.py",
    ]


def test_glob_star_does_not_cross_a_slash(tree: Path) -> None:
    """*.py matches only files directly under the root; pkg/*.py only files directly in pkg."""
    assert keys(walk(["src"], globs=["*.py"])) == ["src/os.py"]
    assert keys(walk(["src"], globs=["pkg/*.py"])) == ["src/pkg/mod.py"]
    assert keys(walk(["src"], globs=["*/*.py"])) == ["src/build/gen.py", "src/pkg/mod.py"]


def test_globs_keep_a_file_matching_any_of_them(tree: Path) -> None:
    """Several globs are alternatives: a file is kept when it matches one of them."""
    assert keys(walk(["src"], globs=["*.md", "pkg/**"])) == [
        "src/README.md",
        "src/pkg/data.json",
        "src/pkg/mod.py",
        "src/pkg/sub/deep.py",
    ]


def test_glob_matches_the_path_relative_to_each_root(tree: Path) -> None:
    """Patterns are anchored at the root given, whatever that root is called."""
    assert keys(walk(["src/pkg"], globs=["*.py"])) == ["src/pkg/mod.py"]
    assert keys(walk(["src"], globs=["src/*.py"])) == []


def test_glob_applies_to_a_root_file_by_its_name(tree: Path) -> None:
    """For a root that is a file the relative path matched is its name."""
    assert keys(walk(["src/pkg/mod.py", "src/README.md"], globs=["*.py"])) == ["src/pkg/mod.py"]


def test_exclude_drops_matching_files(tree: Path) -> None:
    """A file matching any --exclude is dropped."""
    assert keys(walk(["src/pkg"], excludes=["*.json", "sub/deep.py"])) == ["src/pkg/mod.py"]


@pytest.mark.parametrize("pattern", ["build", "build/", "build/**", "**/build"])
def test_exclude_matching_a_directory_prunes_it(tree: Path, pattern: str) -> None:
    """An exclude matching a directory (as dir or dir/) prunes it: it is not even listed."""
    os.mkfifo(tree / "src/build/pipe")  # would be warned about if build/ were entered
    warnings: list[str] = []
    found = keys(walk(["src"], globs=["**/*.py"], excludes=[pattern], warnings=warnings))
    assert found == ["src/os.py", "src/pkg/mod.py", "src/pkg/sub/deep.py"]
    assert warnings == []


def test_exclude_with_trailing_slash_matches_directories_only(tree: Path) -> None:
    """'*/' prunes every top-level directory but keeps the top-level files."""
    assert keys(walk(["src"], excludes=["*/"])) == ["src/README.md", "src/os.py"]


def test_exclude_wins_over_glob(tree: Path) -> None:
    """A file that matches a glob and an exclude is dropped."""
    assert keys(walk(["src"], globs=["**/*.py"], excludes=["**/deep.py", "build"])) == [
        "src/os.py",
        "src/pkg/mod.py",
    ]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.py", "os.py", True),
        ("**/*.py", "a/b/os.py", True),
        ("*.py", "a/os.py", False),
        ("a/**", "a", False),
        ("a/**", "a/b/c", True),
        ("**", "a/b", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a**b", "axyb", True),
        ("a**b", "ax/yb", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "/.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "c.txt", True),
        ("[!ab].txt", "a.txt", False),
        ("[^ab].txt", "a.txt", False),
        ("[a-c]", "b", True),
        ("[+-0]", "/", False),  # a range spanning "/" still never matches it
        ("[!x]", "/", False),
        ("[]]", "]", True),
        ("[z-a]", "b", False),  # an inverted range is empty
        ("[", "[", True),  # unclosed: literal
        (r"\*", "*", True),
        (r"\*", "a", False),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("/top.txt", "top.txt", True),
        ("./top.txt", "top.txt", True),
        ("*.PY", "a.py", False),  # case-sensitive
        ("*", "line\nbreak", True),
    ],
)
def test_glob_to_regex_examples(pattern: str, path: str, matches: bool) -> None:
    """The translation follows the documented rules on hand-picked cases."""
    assert (re.fullmatch(glob_to_regex(pattern), path, re.DOTALL) is not None) == matches


def reference_match(pattern: list[str], path: list[str]) -> bool:
    """Brute-force glob matching by components: '**' spans directories, fnmatch within one."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:  # a trailing ** matches one or more components
            return len(path) >= 1
        return any(reference_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    component = re.sub(r"\*+", "*", head)
    return fnmatchcase(path[0], component) and reference_match(rest, path[1:])


components = st.text(alphabet="ab.", min_size=1, max_size=3)
pattern_parts = st.one_of(
    st.just("**"),
    st.text(alphabet="ab*?.", min_size=1, max_size=4).filter(lambda s: s != "**"),
)


@given(
    pattern=st.lists(pattern_parts, min_size=1, max_size=4),
    path=st.lists(components, min_size=1, max_size=5),
)
def test_glob_to_regex_agrees_with_a_brute_force_matcher(
    pattern: list[str], path: list[str]
) -> None:
    """For random patterns and paths the regex agrees with a component-by-component matcher."""
    regex = glob_to_regex("/".join(pattern))
    got = re.fullmatch(regex, "/".join(path), re.DOTALL) is not None
    while len(pattern) > 1 and pattern[0] == ".":  # a leading "./" is ignored
        pattern = pattern[1:]
    assert got == reference_match(pattern, path)


PRUNE_TREE = ["a.b", "a/b", "a/a/b.a", "b/a", "b/b/b", "b/b/a/a", "ab/a.a", "ab/b/ba"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(pattern=st.lists(pattern_parts, min_size=1, max_size=3).map("/".join))
def test_pruning_never_drops_a_file_the_exclude_would_keep(tmp_path: Path, pattern: str) -> None:
    """Pruning a directory that matches as dir/ removes only files the pattern removes anyway."""
    root = tmp_path / "prune"
    if not root.exists():
        make(root, *PRUNE_TREE)
    regex = re.compile(glob_to_regex(pattern), re.DOTALL)

    def kept(rel: str) -> bool:
        parts = rel.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        return not regex.fullmatch(rel) and not any(regex.fullmatch(a) for a in ancestors)

    expected = [f"{root.as_posix()}/{rel}" for rel in sorted(PRUNE_TREE) if kept(rel)]
    assert sorted(keys(walk([str(root)], excludes=[pattern]))) == expected


# --- check_paths ------------------------------------------------------------------------------


def test_check_paths_reports_every_missing_path_at_once(in_tmp: Path) -> None:
    """All problems come back together, one message per path, in the order given."""
    make(in_tmp, "data/a.txt", "file.txt")
    problems = check_paths(["data", "data/missing.txt", "-", "gone/", "file.txt/x", "file.txt"])
    assert problems == [
        "data/missing.txt: no such file or directory",
        "gone/: no such file or directory",
        "file.txt/x: not a directory",
    ]


def test_check_paths_accepts_existing_files_dirs_links_and_stdin(in_tmp: Path) -> None:
    """Readable files, directories, links to them and '-' give no problem."""
    make(in_tmp, "data/a.txt")
    (in_tmp / "link").symlink_to("data")
    assert check_paths(["-", "data", "data/a.txt", "link", "./data/"]) == []


def test_check_paths_reports_a_broken_link_and_each_path_once(in_tmp: Path) -> None:
    """A dangling link is named as such; a path given twice is reported once."""
    (in_tmp / "dangling").symlink_to("nowhere")
    assert check_paths(["dangling", "dangling", ""]) == [
        "dangling: broken symbolic link",
        "'': no such file or directory",
    ]


@needs_permissions
def test_check_paths_reports_unreadable_files_and_directories(in_tmp: Path) -> None:
    """A file without read permission and a directory that cannot be listed are reported."""
    make(in_tmp, "locked.txt", "locked_dir/x.txt")
    (in_tmp / "locked.txt").chmod(0)
    (in_tmp / "locked_dir").chmod(0)
    try:
        problems = check_paths(["locked.txt", "locked_dir"])
    finally:
        (in_tmp / "locked_dir").chmod(0o755)
    assert problems == [
        "locked.txt: permission denied",
        "locked_dir: cannot list directory: permission denied",
    ]


def test_check_paths_does_not_block_on_a_fifo(in_tmp: Path) -> None:
    """A FIFO path (as made by <(cmd)) is checked without opening it, so it does not hang."""
    os.mkfifo(in_tmp / "pipe")
    assert check_paths(["pipe"]) == []


# --- stdin_paths ------------------------------------------------------------------------------


def test_stdin_lines_strip_newline_and_cr_and_skip_blank_lines() -> None:
    """One path a line: \\n and a trailing \\r removed, blanks skipped, spaces kept, normalised."""
    stream = io.BytesIO(b"a.txt\n./data//b.txt\r\n\n  spaced name .txt\nlast")
    assert list(stdin_paths(stream)) == [
        ("a.txt", Path("a.txt")),
        ("data/b.txt", Path("data/b.txt")),
        ("  spaced name .txt", Path("  spaced name .txt")),
        ("last", Path("last")),
    ]


def test_stdin_null_mode_splits_on_nul_only() -> None:
    """With null=True names may hold newlines and a trailing \\r; empty entries are skipped."""
    stream = io.BytesIO(b"a\nb.txt\0./c.txt\r\0\0d")
    assert keys(stdin_paths(stream, null=True)) == ["a\nb.txt", "c.txt\r", "d"]


def test_stdin_undecodable_names_survive() -> None:
    """Names that are not UTF-8 are decoded with os.fsdecode and encode back to the same bytes."""
    [(key, path)] = stdin_paths(io.BytesIO(b"caf\xe9.txt\n"))
    assert os.fsencode(path) == b"caf\xe9.txt"
    assert os.fsencode(key) == b"caf\xe9.txt"


def first_item_before_eof(items: Iterator[Any]) -> Any:
    """next(items) in a thread, failing (instead of hanging) if it waits for more input."""
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(next(items)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert got, "the source waited for more input before yielding its first item"
    return got[0]


@pytest.mark.parametrize(("null", "sep"), [(False, b"\n"), (True, b"\0")])
def test_stdin_is_read_incrementally(null: bool, sep: bytes) -> None:
    """The first path is yielded while the writer is still open: stdin is not read whole first."""
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb", buffering=0) as writer:
        items = stdin_paths(reader, null=null)
        writer.write(b"first.txt" + sep)
        assert first_item_before_eof(items)[0] == "first.txt"
        writer.write(b"second.txt" + sep)
        writer.close()
        assert keys(items) == ["second.txt"]


def test_stdin_null_mode_joins_a_name_split_across_reads() -> None:
    """A name cut in two by the pipe's chunks comes out whole."""
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb", buffering=0) as writer:
        items = stdin_paths(reader, null=True)
        writer.write(b"one\0tw")
        assert first_item_before_eof(items)[0] == "one"
        writer.write(b"o\0three")
        writer.close()
        assert keys(items) == ["two", "three"]


# --- jsonl_items ------------------------------------------------------------------------------


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_jsonl_keys_are_line_numbers_counting_blank_lines(tmp_path: Path) -> None:
    """Without a key field the key is the 1-based physical line number; blank lines skipped."""
    f = write_lines(tmp_path / "in.jsonl", '{"a": 1}', "", "   ", "[1, 2]", '"text"', "null")
    assert list(jsonl_items(f)) == [(1, {"a": 1}), (4, [1, 2]), (5, "text"), (6, None)]


def test_jsonl_keys_by_field_keep_json_types(tmp_path: Path) -> None:
    """With key_field the key is that field's value: the int 7 and the string '7' stay apart."""
    f = write_lines(tmp_path / "in.jsonl", '{"id": 7, "v": 1}', '{"id": "7", "v": 2}')
    assert list(jsonl_items(f, key_field="id")) == [
        (7, {"id": 7, "v": 1}),
        ("7", {"id": "7", "v": 2}),
    ]


def test_jsonl_malformed_line_is_a_json_decode_error_item(tmp_path: Path) -> None:
    """A line that is not JSON becomes InvalidItem('JSONDecodeError', 'line N: ...') at its line."""
    f = write_lines(tmp_path / "in.jsonl", "1", "", '{"a": ', "3")
    pairs = list(jsonl_items(f))
    assert keys(pairs) == [1, 3, 4]
    invalid = pairs[1][1]
    assert isinstance(invalid, InvalidItem)
    assert invalid.type == "JSONDecodeError"
    assert invalid.message.startswith("line 3: ")
    assert len(invalid.message) > len("line 3: ")


def test_jsonl_missing_key_field_is_a_key_error_item(tmp_path: Path) -> None:
    """A line lacking the key field, or not an object, becomes a KeyError item at its line."""
    f = write_lines(tmp_path / "in.jsonl", '{"id": "a"}', '{"name": "b"}', "[1]", '{"id": "c"}')
    assert list(jsonl_items(f, key_field="id")) == [
        ("a", {"id": "a"}),
        (2, InvalidItem("KeyError", "line 2: no field 'id'")),
        (3, InvalidItem("KeyError", "line 3: no field 'id' (the line is not an object)")),
        ("c", {"id": "c"}),
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("true", "a boolean"),
        ("1.5", "a float"),
        ("1e20", "a float"),
        ("null", "null"),
        ("[1]", "a list"),
        ("{}", "an object"),
        (
            "123456789012345678901234567890",
            "an integer too large for 64 bits (write it as a string)",
        ),
    ],
)
def test_jsonl_key_that_is_not_str_or_int_fails_the_line(
    tmp_path: Path, value: str, kind: str
) -> None:
    """A key value other than a string or an integer is a TypeError item, never stringified."""
    f = write_lines(tmp_path / "in.jsonl", f'{{"id": {value}}}')
    assert list(jsonl_items(f, key_field="id")) == [
        (
            1,
            InvalidItem(
                "TypeError",
                f"line 1: field 'id' is {kind}; a key must be a string or an integer",
            ),
        )
    ]


def test_jsonl_handles_crlf_bom_and_a_last_line_without_newline(tmp_path: Path) -> None:
    """CRLF endings, a UTF-8 BOM and a missing final newline are all read as data."""
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n2')
    assert list(jsonl_items(f)) == [(1, {"a": 1}), (3, 2)]


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    """The first item is yielded while the file (a FIFO) is still being written."""
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    proceed = threading.Event()

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as w:
            w.write(b'{"n": 1}\n')
            proceed.wait(timeout=10)
            w.write(b'{"n": 2}\n')

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    items = jsonl_items(fifo)
    assert first_item_before_eof(items) == (1, {"n": 1})
    proceed.set()
    assert list(items) == [(2, {"n": 2})]
    thread.join(timeout=10)
