"""Declared valid values of component parameters, read by recipe validation from the builders' annotations.

A registered builder annotates each numeric parameter with a range, e.g. ``hidden_dim: PositiveInt`` or
``p: Probability``, and each parameter with a fixed set of values with a ``Literal``; a pair like a crop
``scale: (0.08, 1.0)`` is ``Annotated[Sequence[float], Pair("(0, 1]")]``. A recipe value outside gets the usual
file/key/expected error before anything is built (tests/test_params.py checks every registered builder
declares one for every int and float parameter).
"""

from __future__ import annotations

import math
import numbers
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

from .paths import expand_path
from .quoting import short_repr


def is_int_at_least(value: Any, low: int) -> bool:
    """Whether ``value`` is an integer (numpy's too, never a bool) of at least ``low``: an argument check of the
    Python API, where recipes go through :class:`Range`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= low


@dataclass(frozen=True)
class Range:
    """A numeric interval written like ``[1, inf)``: brackets closed, parentheses open."""

    interval: str

    def __post_init__(self):
        text = self.interval.strip()
        if text[0] not in "[(" or text[-1] not in "])" or text.count(",") != 1:
            raise ValueError(f"a range looks like '[0, 1)', got {self.interval!r}")
        low, high = (float(v) for v in text[1:-1].split(","))
        if not low <= high:
            raise ValueError(f"empty range {self.interval!r}")

    def bounds(self) -> tuple[float, float]:
        low, high = (float(v) for v in self.interval.strip()[1:-1].split(","))
        return low, high

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        low, high = self.bounds()
        text = self.interval.strip()
        return ((value >= low) if text[0] == "[" else (value > low)) and (
            (value <= high) if text[-1] == "]" else (value < high)
        )

    def check(self, value: Any) -> str | None:
        """None when ``value`` lies in the range, else what was expected."""
        return None if self.contains(value) else f"expected a value in {self.interval}, got {short_repr(value)}"


@dataclass(frozen=True)
class Pair:
    """Two numbers ``[low, high]`` with low <= high, both in ``interval``."""

    interval: str

    def check(self, value: Any) -> str | None:
        inside = Range(self.interval)
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(inside.contains(v) for v in value)):
            return f"expected a pair [low, high] of numbers in {self.interval}, got {short_repr(value)}"
        if value[0] > value[1]:
            return f"expected low <= high, got {short_repr(list(value))}"
        return None


REFERENCE_CHECKS: dict[str, Callable[[Path, dict, Optional[dict]], Optional[str]]] = {}
"""Extra checks of a :class:`Reference` kind beyond existence, registered by the module that reads such files
(``eval_recipe``: ``ssl_toolkit/training/probe_monitor.py``); each gets the resolved path, the sibling parameters
and the whole recipe tree (or None) and returns None or what is wrong."""


@dataclass(frozen=True)
class Reference:
    """A parameter that names a ``file``, a folder (``dir``), either (``path``) or an eval recipe (``eval_recipe``):
    resolved (``~``, ``$VARS``; relative to the working directory, or to the folder of the sibling parameter
    ``base`` — the folder itself, or a file's folder) and checked when the recipe is validated, before any work."""

    kind: str
    base: Optional[str] = None

    def resolve(self, value: str | os.PathLike, siblings: Optional[dict] = None) -> Path:
        path = expand_path(value)
        anchor = (siblings or {}).get(self.base) if self.base else None
        if anchor is not None and not path.is_absolute():
            folder = expand_path(anchor)
            path = (folder if folder.is_dir() else folder.parent) / path
        return path

    def check(self, value: Any, siblings: Optional[dict] = None, context: Optional[dict] = None) -> Optional[str]:
        """None when ``value`` names what it should (or is None / not a path), else what is wrong."""
        if value is None or not isinstance(value, (str, os.PathLike)):
            return None
        path = self.resolve(value, siblings)
        where = "" if str(path) == str(value) and path.is_absolute() else f" (resolved to {path.absolute()})"
        want = {"file": "a file", "eval_recipe": "an eval recipe file", "dir": "a folder"}.get(
            self.kind, "a file or folder"
        )
        if not path.exists():
            return f"{short_repr(str(value))}: no such file or folder{where}; expected {want}"
        if self.kind in ("file", "eval_recipe") and not path.is_file():
            return f"{short_repr(str(value))} is a folder{where}; expected {want}"
        if self.kind == "dir" and not path.is_dir():
            return f"{short_repr(str(value))} is a file{where}; expected {want}"
        if not os.access(path, os.R_OK):
            return f"{short_repr(str(value))}: not readable (permission denied){where}"
        extra = REFERENCE_CHECKS.get(self.kind)
        return extra(path, siblings or {}, context) if extra is not None else None


def reference_of(hint: Any) -> Optional[Reference]:
    """The :class:`Reference` marker of a parameter annotation (``Optional[...]`` included), or None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next((r for r in map(reference_of, typing.get_args(hint)) if r is not None), None)
    return next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Reference)), None)


def constraints_of(hint: Any) -> list:
    """The :class:`Range`/:class:`Pair` markers of an ``Annotated`` hint (none for a plain type)."""
    return [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, (Range, Pair))]


def declaration(hint: Any) -> tuple[Any, list, bool]:
    """``(base type, constraints, optional)`` of a parameter annotation: ``Optional[PositiveInt]`` gives
    ``(int, [Range('[1, inf)')], True)``; a union of several types is returned whole."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(inner) < len(typing.get_args(hint))
        if len(inner) != 1:
            return hint, [], optional
        hint = inner[0]
    base = hint.__origin__ if hasattr(hint, "__metadata__") else hint
    return base, constraints_of(hint), optional


PositiveInt = Annotated[int, Range("[1, inf)")]
NonNegativeInt = Annotated[int, Range("[0, inf)")]
PositiveFloat = Annotated[float, Range("(0, inf)")]
NonNegativeFloat = Annotated[float, Range("[0, inf)")]
Probability = Annotated[float, Range("[0, 1]")]
Rate = Annotated[float, Range("[0, 1)")]
"""A decay or dropout rate: 1 would freeze (or drop) everything."""
Finite = Annotated[float, Range("(-inf, inf)")]
"""Any real number (NaN and ±inf refused)."""
FilePath = Annotated[str, Reference("file")]
DirPath = Annotated[str, Reference("dir")]
AnyPath = Annotated[str, Reference("path")]
"""A file or a folder that must exist when the recipe is checked."""
