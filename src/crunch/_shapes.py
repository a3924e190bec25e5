"""The *shape* of a failure message: what stays the same when one bug fails many items.

``shape(message)`` takes the message's first line and folds what differs from item to item
into placeholders, so that the failures of one bug group as one line:

    quoted values    'size', "a b"                       -> <quoted>
    paths            /tmp/x.txt, ./a, data/sub/b.json     -> <path>
    hex              0x7f3a, a 40-hex digest, a UUID      -> <hex>
    numbers          6, -1.5, 1e-3, 1,024                 -> <n>

``cannot parse data/a.txt: field 'size' is 3, expected 0x1f`` becomes
``cannot parse <path>: field <quoted> is <n>, expected <hex>``. A relative path is one with
two or more ``/`` or a last part with an extension (``data/a.txt``), so ``and/or`` or
``items/s`` are left alone; a bare file name is folded only where Python's ``SyntaxError`` puts
it, ``(name.py, line 6)``; a number glued to a letter (``sha256``, ``x86_64``) is a name and is
left alone too.
"""

from __future__ import annotations

import re

MAX_SHAPE = 200  # characters kept of a folded message

_QUOTED = re.compile(r"""(?<![\w'"])(?:'[^'\n]*'|"[^"\n]*")(?![\w'"])""")
_PATH_CHARS = r"""[^\s'",;:()\[\]{}<>]"""
_ROOTED_PATH = re.compile(rf"(?<![\w/.~-])(?:~|\.{{1,2}})?/{_PATH_CHARS}+|\b[A-Za-z]:\\\S+")
_RELATIVE_PATH = re.compile(r"(?<![\w/.~-])[\w.-]+(?:/[\w.-]+)+/?")
_HEX = re.compile(
    r"\b0[xX][0-9a-fA-F]+\b"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"
)
# Python's SyntaxError names the file as "(name.py, line 6)", with no directory.
_SOURCE_POSITION = re.compile(r"\((?!<path>)[^\s,()]+, line \d+\)")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


def _relative_path(match: re.Match[str]) -> str:
    text = match.group(0)
    parts = text.rstrip("/").split("/")
    if len(parts) >= 3 or "." in parts[-1].strip("."):
        return "<path>"
    return text


def shape(message: str) -> str:
    """The first line of ``message`` that says anything, with its varying parts folded."""
    line = next((s.strip() for s in message.splitlines() if s.strip()), "")[: MAX_SHAPE * 5]
    line = _QUOTED.sub("<quoted>", line)
    line = _ROOTED_PATH.sub("<path>", line)
    line = _RELATIVE_PATH.sub(_relative_path, line)
    line = _SOURCE_POSITION.sub("(<path>, line <n>)", line)
    line = _HEX.sub("<hex>", line)
    line = _NUMBER.sub("<n>", line)
    if len(line) > MAX_SHAPE:
        line = line[: MAX_SHAPE - 3] + "..."
    return line
