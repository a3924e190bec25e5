"""The public surface is what the README documents, and importing it stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import crunch

DOCUMENTED = {
    "run",
    "imap",
    "amap",
    "jsonl",
    "files",
    "BatchResult",
    "ItemResult",
    "Failure",
    "InvalidItem",
    "RunConfig",
    "CrunchError",
    "UsageError",
    "ConfigError",
    "TaskNotImportableError",
    "MissingExtraError",
    "SourceError",
    "DuplicateKeyError",
    "RunInterrupted",
    "ItemFailedError",
    "WorkerStartError",
    "__version__",
}


def test_all_is_the_documented_surface() -> None:
    """crunch.__all__ lists exactly the documented names, and each one exists."""
    assert set(crunch.__all__) == DOCUMENTED
    for name in crunch.__all__:
        assert getattr(crunch, name) is not None


# The public modules: everything else is private, its name (or a package's) starting with "_",
# behind the public namespace (trio's habit), and may change without notice.
PUBLIC_MODULES = {"crunch", "crunch.tasks"}
TASKS_API = {"Combiner", "Task"}  # what a plugin uses (README, "The library")


def test_every_module_but_the_public_ones_is_private() -> None:
    import pkgutil

    modules = {"crunch"} | {
        info.name for info in pkgutil.walk_packages(crunch.__path__, prefix="crunch.")
    }
    public = {
        name for name in modules if not any(part.startswith("_") for part in name.split(".")[1:])
    }
    assert public == PUBLIC_MODULES, sorted(public - PUBLIC_MODULES)


def test_crunch_tasks_exports_what_a_plugin_uses() -> None:
    import crunch.tasks

    assert set(crunch.tasks.__all__) == TASKS_API
    for name in TASKS_API:
        assert getattr(crunch.tasks, name) is not None


def test_the_modes_are_defined_once() -> None:
    """The type checker's literal and the run-time tuple name the same modes, in one order."""
    import typing

    from crunch._modes import MODES
    from crunch._settings import Mode

    assert typing.get_args(Mode) == MODES


# What each start-up path may load beyond what was loaded before it (click's habit: a list of
# what may load, not of what may not). crunch's own modules are named one by one; a package
# outside crunch is named by its top-level name, so that a Python release that reorganises
# its insides (pathlib._local in 3.13) does not matter, while a new package does. A module
# added here needs the reason it is worth its import time at that point.

# `import crunch`: nothing but the package (its names load when first used).
IMPORT_CRUNCH = {"crunch", "__future__"}

# `crunch process --help`, once click is imported: the entry point, the command line, and what
# click's help formatting loads (shutil for the terminal width, with its compression modules).
CLI_HELP = {"crunch", "crunch._entry", "crunch._streams", "crunch._cli", "crunch._modes"}
CLI_HELP_PACKAGES = {
    "click",
    "gc",  # the entry point's teardown (crunch._entry)
    *("shutil", "fnmatch", "bz2", "_bz2", "lzma", "_lzma", "zlib", "_compression"),
    *("textwrap", "locale", "_locale"),
}

# The forkserver's preload, once the server has imported multiprocessing.forkserver: what every
# worker runs (crunch._backends._forkserver_preload says why), and nothing of the parent's side:
# no asyncio, engine, pydantic, orjson, click, structlog or tqdm.
PRELOAD = {
    "crunch",
    "crunch._failures",
    "crunch._retry",
    "crunch._runner",
    "crunch._transit",
    "crunch._units",
    "crunch._slots",
    "crunch._worker",
    "crunch._backends",
    "crunch._backends._forkserver_preload",
    "crunch._backends._groups",
    "crunch._exceptions",
    "crunch._results",
}
PRELOAD_PACKAGES = {
    "__future__",
    # the pool's worker loop, its queues and locks, the slot table's shared memory
    *("concurrent", "multiprocessing", "queue", "_queue", "heapq", "_heapq", "logging"),
    *("ctypes", "_ctypes", "mmap", "string", "_string"),
    # results and failures: named records, a failure's traceback, the paths workers make
    *("dataclasses", "copy", "inspect", "ast", "_ast", "dis", "opcode", "_opcode"),
    *("_opcode_metadata", "token", "tokenize", "_tokenize", "linecache", "typing", "_typing"),
    *("traceback", "textwrap", "_colorize", "gc"),
    *("pathlib", "urllib", "ipaddress", "ntpath", "glob", "pwd", "grp"),
}


def _loaded(setup: str, action: str) -> set[str]:
    """The modules that ``action`` loads in a fresh interpreter, after ``setup``."""
    code = (
        f"import sys\n{setup}\n_before = set(sys.modules)\n{action}\n"
        "print(sorted(set(sys.modules) - _before), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(ast.literal_eval(out.stderr.strip().splitlines()[-1]))


def _outside(loaded: set[str], modules: set[str], packages: frozenset[str] = frozenset()) -> list:
    return sorted(m for m in loaded if m not in modules and m.split(".")[0] not in packages)


def test_import_crunch_loads_only_the_package() -> None:
    unexpected = _outside(_loaded("", "import crunch"), IMPORT_CRUNCH)
    assert not unexpected, f"`import crunch` loads modules not on its list: {unexpected}"


def test_help_loads_only_the_command_line() -> None:
    """`crunch process --help` loads no engine, pydantic, orjson, structlog, tqdm or dask."""
    action = (
        "from crunch._entry import main\n"
        "sys.argv = ['crunch', 'process', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded("import click", action)
    unexpected = _outside(loaded, CLI_HELP, frozenset(CLI_HELP_PACKAGES))
    assert not unexpected, f"`crunch process --help` loads modules not on its list: {unexpected}"
    assert "crunch._cli" in loaded


def test_the_worker_preload_loads_only_what_workers_run() -> None:
    setup = "from multiprocessing.forkserver import main"  # what the server itself runs
    loaded = _loaded(setup, "import crunch._backends._forkserver_preload")
    unexpected = _outside(loaded, PRELOAD, frozenset(PRELOAD_PACKAGES))
    assert not unexpected, f"the forkserver's preload loads modules not on its list: {unexpected}"
    assert "crunch._worker" in loaded


# A one-file run loads none of these: its options are plainly valid (no pydantic), it logs
# nothing (no structlog), it draws no bar (no tqdm); sync mode starts no process.
NOT_FOR_A_PLAIN_RUN = {"pydantic", "structlog", "tqdm", "dask", "distributed", "matplotlib"}


@pytest.mark.parametrize("mode", ["sync", "process"])
def test_a_plain_run_loads_no_more_than_it_uses(mode: str, tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text("abc\n")
    action = (
        "from crunch._entry import main\n"
        f"sys.argv = ['crunch', 'process', {str(one)!r}, '--mode', {mode!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code"
    )
    loaded = _loaded("", action)
    heavy = {m for m in loaded if m.split(".")[0] in NOT_FOR_A_PLAIN_RUN} | (
        {"crunch._config"} & loaded
    )
    if mode == "sync":
        heavy |= {m for m in loaded if m.split(".")[0] == "multiprocessing"}
    assert not heavy, f"a one-file run in {mode} mode loads {sorted(heavy)}"


def test_python_dash_m_crunch() -> None:
    """`python -m crunch --version` works."""
    out = subprocess.run(
        [sys.executable, "-m", "crunch", "--version"], capture_output=True, text=True, check=True
    )
    assert "crunch, version" in out.stdout
