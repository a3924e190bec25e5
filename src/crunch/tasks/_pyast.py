"""The ``pyast`` task: the shape of a Python file, from its syntax tree.

The file's bytes go to ``ast.parse`` (so a PEP 263 coding line is honoured). The value is
``{"lines", "functions", "async_functions", "classes", "imports", "max_depth"}``:

- ``lines``: ``\\n`` bytes, as in ``stats``;
- ``functions``, ``async_functions``, ``classes``: every ``def``, ``async def`` and ``class`` at
  any depth (methods and nested ones included);
- ``imports``: ``import`` and ``from ... import`` statements;
- ``max_depth``: the deepest nesting of compound statements, as the AST has it: a top-level
  ``def`` is depth 1, an ``if`` in it depth 2, and an ``elif`` is an ``if`` inside the ``else``,
  one level deeper. The compound statements are ``if``, ``for``, ``async for``, ``while``,
  ``try``, ``try``/``except*``, ``with``, ``async with``, ``def``, ``async def``, ``class`` and
  ``match``; an ``except`` handler or a ``case`` block is part of its ``try`` or ``match``, not a
  level of its own. A file without compound statements has depth 0.

A file that does not parse fails with the ``SyntaxError`` that ``ast.parse`` raised, whose
message ends with the file name and line number (``invalid syntax (bad.py, line 3)``); a null
byte, which ``ast.parse`` reports without a line, gets the line of the first one. The tree is
walked without recursion, so deep nesting cannot overflow the stack. No combiner.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from crunch.tasks import Task

_COMPOUND: tuple[type[ast.stmt], ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.Try,
    ast.With,
    ast.AsyncWith,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Match,
)
if hasattr(ast, "TryStar"):  # Python 3.11+: try/except*
    _COMPOUND += (ast.TryStar,)


def _parse(data: bytes, filename: str) -> ast.Module:
    """``ast.parse``, with the line number added to a null-byte error that lacks one."""
    try:
        return ast.parse(data, filename=filename)
    except SyntaxError as exc:
        if exc.lineno is None and b"\x00" in data:
            null = data.index(b"\x00")
            line = data.count(b"\n", 0, null) + 1
            column = null - (data.rfind(b"\n", 0, null) + 1) + 1
            raise SyntaxError(exc.msg, (filename, line, column, None)) from exc
        raise


def shape(tree: ast.AST) -> dict[str, int]:
    """Counts of defs, async defs, classes and imports, and the compound-statement depth."""
    functions = async_functions = classes = imports = max_depth = 0
    # Statements live only in the statement lists of other statements (bodies, else blocks,
    # except handlers, match cases), never inside expressions, so only those lists are walked.
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _COMPOUND):
            depth += 1
            max_depth = max(max_depth, depth)
            if isinstance(node, ast.FunctionDef):
                functions += 1
            elif isinstance(node, ast.AsyncFunctionDef):
                async_functions += 1
            elif isinstance(node, ast.ClassDef):
                classes += 1
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports += 1
            continue
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                stack.extend(
                    (child, depth)
                    for child in value
                    if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case)
                )
    return {
        "functions": functions,
        "async_functions": async_functions,
        "classes": classes,
        "imports": imports,
        "max_depth": max_depth,
    }


def pyast(item: Path | str) -> dict[str, Any]:
    """Return ``{"lines", "functions", ..., "max_depth"}`` for the Python file ``item``."""
    path = Path(item)
    data = path.read_bytes()
    tree = _parse(data, str(path))
    return {"lines": data.count(b"\n"), **shape(tree)}


TASK = Task(
    name="pyast",
    summary="defs, async defs, classes, imports and nesting depth of Python source",
    fn=pyast,
    combiner=None,
)
