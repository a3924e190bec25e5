"""Turning ``--task`` and ``--init`` text into callables the workers can run.

- a NAME: a built-in task, or one from the ``crunch.tasks`` entry-point group (a plugin
  cannot replace a built-in: its name always means the built-in);
- ``package.module:function`` (a function, or a ``Task`` object);
- ``path/to/file.py:function``: loaded from the file. Workers load it again from the same
  path (``FileFunction`` pickles as the path and the name, not the code), so process mode works
  without putting the file on ``sys.path``. Such a file is *run*: only name files you trust.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from crunch._exceptions import UsageError
from crunch.tasks import Task

GROUP = "crunch.tasks"

# The built-in tasks, as pyproject.toml registers them (tests/test_tasks.py checks the two
# agree). A built-in name is loaded directly: no scan of the installed distributions' entry
# points (a good part of a short run's start-up), and no plugin can take a built-in's name.
BUILTIN = {
    name: f"crunch.tasks._{name}:TASK"
    for name in ("burn", "checksum", "jsonl", "pyast", "sleep", "stats", "wordfreq")
}


class _Builtin:
    """A built-in task, with the face of an entry point (``name``, ``value``, ``load``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = BUILTIN[name]

    def load(self) -> Any:
        module, _, attribute = self.value.partition(":")
        return getattr(importlib.import_module(module), attribute)


def registered() -> dict[str, Any]:
    """The tasks by name: the ``crunch.tasks`` entry points, the built-ins taking precedence."""
    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=GROUP)}
    found.update((name, _Builtin(name)) for name in BUILTIN)
    return found


def all_tasks() -> tuple[list[Task], list[str]]:
    """Every registered task that loads, in name order, and a message for each that does not."""
    tasks: list[Task] = []
    broken: list[str] = []
    for name, ep in sorted(registered().items()):
        try:
            tasks.append(_load_registered(name, ep))
        except UsageError as exc:
            broken.append(str(exc))
    return tasks, broken


def _load_registered(name: str, ep: Any) -> Task:
    """The task of entry point ``ep``; ``UsageError`` in one line when its plugin is broken."""
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the plugin raised
        dist = getattr(getattr(ep, "dist", None), "name", None)
        source = f"entry point {ep.value!r}" + (f" of {dist!r}" if dist else "")
        raise UsageError(
            f"task {name!r}: its plugin ({source}) cannot be loaded: {_failure_text(exc)}"
        ) from None
    return _as_task(name, obj)


def _failure_text(exc: BaseException) -> str:
    """``Type: message (file.py, line N)``, on one line, for an error raised while importing."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError):
        return text  # its message names the file and line already
    where = None
    tb = exc.__traceback__
    while tb is not None:  # the deepest frame of real source: where the module raised
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<"):
            where = f"{Path(filename).name}, line {tb.tb_lineno}"
        tb = tb.tb_next
    if where is not None and not isinstance(exc, ModuleNotFoundError):
        text += f" ({where})"
    return text


def resolve_task(spec: str) -> Task:
    """The task named by ``spec``; an unknown name lists the known ones and the closest match."""
    if spec in BUILTIN:
        return _load_registered(spec, _Builtin(spec))
    if ":" not in spec:
        tasks = registered()
        if spec not in tasks:
            known = sorted(tasks)
            close = difflib.get_close_matches(spec, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"unknown task {spec!r}{hint}. Known tasks: {', '.join(known)}; "
                "or give module:function or path/to/file.py:function"
            )
        return _load_registered(spec, tasks[spec])
    return _as_task(spec, load_callable(spec, what="task"))


def load_callable(spec: str, *, what: str) -> Any:
    """Import ``module:function`` or ``file.py:function``; errors say what was not found."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"{what} {spec!r}: expected module:function or path/to/file.py:function")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"{what} {spec!r}: no such file {target!r}")
        function = FileFunction(str(path.resolve()), name)
        try:
            function.load()  # fail now, in the parent, if the file or the name is wrong
        except UsageError as exc:
            raise UsageError(f"{what} {spec!r}: {exc}") from None
        return function
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        raise UsageError(f"{what} {spec!r}: cannot import module {target!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the module raised
        raise UsageError(
            f"{what} {spec!r}: importing module {target!r} failed: {_failure_text(exc)}"
        ) from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise UsageError(f"{what} {spec!r}: module {target!r} has no {name!r}") from None


def _as_task(name: str, obj: Any) -> Task:
    if isinstance(obj, Task):
        return obj
    if not callable(obj):
        raise UsageError(f"task {name!r} is neither a function nor a crunch Task")
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return Task(name=name, summary=doc[0] if doc else "", fn=obj)


@functools.cache
def _load_file_module(path: str) -> Any:
    module_name = f"crunch_task_{abs(hash(path)):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load Python file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the file raised
        del sys.modules[module_name]
        raise UsageError(f"loading {path!r} failed: {_failure_text(exc)}") from None
    return module


class FileFunction:
    """A function from a ``.py`` file, picklable as (path, name) and loaded where it runs."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self.__qualname__ = name
        self.__doc__ = None

    def load(self) -> Any:
        module = _load_file_module(self.path)
        try:
            target = getattr(module, self.name)
        except AttributeError:
            raise UsageError(f"{self.path} has no {self.name!r}") from None
        self.__doc__ = getattr(target, "__doc__", None)
        return target

    @property
    def __wrapped__(self) -> Any:
        """The function itself (loading the file), so that ``async def`` shows through."""
        return self.load()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileFunction, (self.path, self.name))
