"""Bounded quoting of user-supplied values and of caught errors in error messages.

An error quotes what it was given, but a value can be huge (a YAML alias bomb expands to billions of items,
an override can paste a whole file): :func:`short_repr` costs and prints at most a few dozen items.
"""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


def short_repr(value: Any) -> str:
    """``repr(value)`` with containers cut to a few items, strings to 80 characters (``...`` marks a cut)."""
    return _REPR.repr(value)


def first_line(error: BaseException) -> str:
    """The first line of a caught exception's message, or its type's name when it has none (a decoder's error
    quoted in one line: a bad file's reason)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
