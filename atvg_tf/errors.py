"""The project's user-facing error: bad input or a fixable environment problem, not a bug.

The command line shows an `AtvgError` (and an `OSError`) as one line with exit code 2; anything
else is a bug and is shown with its traceback so it can be reported. Module-specific errors
(`AudioError`, `NoFaceError`, ...) derive from `AtvgError`, and from the built-in type callers
caught before (`ValueError`, `FileNotFoundError`), so existing `except` clauses keep working.
"""

from __future__ import annotations


class AtvgError(Exception):
    """A problem the user can fix; the message names it and says how."""


class InputError(AtvgError, ValueError):
    """A bad option or input value (a wrong file type, an out-of-range setting, ...)."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (what the command line and the web page show)."""
    text = " ".join(str(error).split())
    return text or error.__class__.__name__
