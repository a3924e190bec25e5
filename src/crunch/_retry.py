"""Which failures ``--retry-on`` (``retry_on=``) retries, and how its names are checked.

A failure carries the names of its exception's classes along the MRO (``class_names``):
builtins bare (``ConnectionError``, ``OSError``, ``Exception``, ``BaseException``), any other
class by its module and qualified name (``requests.exceptions.ConnectionError``). A failed
item is retried when one of those names is in ``retry_on`` and none is a validation error
(``NEVER_RETRIED``): a ``ValueError`` says the input is wrong, and running it again fails the
same way, so ``--retry-on Exception`` retries every error *except* those (README, "The
command": Execution).

``resolve_retry_on`` checks the names in the parent, before any item runs:

- a bare name must be a builtin exception class (``NotAnException`` is refused: the parent
  cannot know a class that only exists in a task's module, and a misspelt name would silently
  retry nothing);
- a dotted name ``module.Name`` is imported and must be an exception class; it is kept under
  the class's own module (``requests.ConnectionError`` is ``requests.exceptions.ConnectionError``);
- the library also takes exception classes themselves;
- naming a validation error, or a subclass of one (``json.JSONDecodeError``), is refused.
"""

from __future__ import annotations

import builtins
import importlib
from typing import Any

# Validation errors say the *input* is wrong; running it again cannot help.
NEVER_RETRIED: frozenset[str] = frozenset(
    {"ValueError", "TypeError", "KeyError", "IndexError", "AttributeError", "UnicodeError"}
)


def class_name(cls: type) -> str:
    """``OSError`` for a builtin, ``module.Qual.Name`` for anything else."""
    module = cls.__module__
    if module == "builtins":
        return cls.__name__
    if module == "__mp_main__":  # the main module, as process-mode workers import it
        module = "__main__"
    return f"{module}.{cls.__qualname__}"


def class_names(cls: type) -> tuple[str, ...]:
    """The names ``retry_on`` is matched against: every class of the MRO but ``object``."""
    return tuple(class_name(c) for c in cls.__mro__ if c is not object)


def retryable(names: tuple[str, ...] | frozenset[str], retry_on: frozenset[str]) -> bool:
    """True when a failure with these class names is one ``retry_on`` asks to retry."""
    return not retry_on.isdisjoint(names) and NEVER_RETRIED.isdisjoint(names)


def resolve_retry_on(value: Any) -> tuple[str, ...]:
    """The canonical names of ``value`` (a name, a class, or several); ``ValueError`` listing
    every name that is wrong."""
    given = (value,) if isinstance(value, (str, type)) else tuple(value)
    names: list[str] = []
    problems: list[str] = []
    for entry in given:
        try:
            cls = _exception_class(entry)
        except LookupError as exc:
            problems.append(str(exc))
            continue
        never = NEVER_RETRIED.intersection(class_names(cls))
        if never:
            shown = entry if isinstance(entry, str) else class_name(cls)
            why = "" if class_name(cls) in NEVER_RETRIED else f" (it is a {min(never)})"
            problems.append(
                f"{shown} is never retried{why}: a validation error fails the same way again"
            )
            continue
        if class_name(cls) not in names:
            names.append(class_name(cls))
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(names)


def _exception_class(entry: object) -> type:
    if isinstance(entry, type):
        if issubclass(entry, BaseException):
            return entry
        raise LookupError(f"{entry.__name__} is not an exception class")
    if not isinstance(entry, str) or not entry:
        raise LookupError(f"{entry!r} is not an exception class or its name")
    if "." not in entry:
        found = getattr(builtins, entry, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
        raise LookupError(
            f"{entry!r} is not a builtin exception; name any other exception class as "
            "module.Name (e.g. requests.exceptions.ConnectionError)"
        )
    module_name, _, attribute = entry.rpartition(".")
    try:
        found = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the answer
        raise LookupError(
            f"{entry!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    found = getattr(found, attribute, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    if found is None:
        raise LookupError(f"{entry!r}: module {module_name!r} has no {attribute!r}")
    raise LookupError(f"{entry!r} is not an exception class")
