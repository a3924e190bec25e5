"""The public surface is what the README documents, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

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


def test_import_crunch_is_light() -> None:
    """`import crunch` loads neither click, tqdm, dask, pydantic nor the engine."""
    code = (
        "import sys, crunch; heavy = {'click', 'tqdm', 'distributed', 'dask', 'pydantic',"
        " 'crunch.scheduler', 'matplotlib'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_does_not_import_the_engine() -> None:
    """`crunch --help` imports click but not the engine, pydantic, tqdm or dask."""
    code = (
        "import sys; from crunch.cli import main\n"
        "try:\n    main(['process', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'tqdm', 'distributed', 'pydantic', 'crunch.scheduler', 'structlog'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]"
    assert "Examples" in out.stdout


def test_python_dash_m_crunch() -> None:
    """`python -m crunch --version` works."""
    out = subprocess.run(
        [sys.executable, "-m", "crunch", "--version"], capture_output=True, text=True, check=True
    )
    assert "crunch, version" in out.stdout
