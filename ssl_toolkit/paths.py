"""Paths named in recipes: ``~`` and ``$VAR``/``${VAR}`` expanded, nothing else (no globbing, no URLs)."""

from __future__ import annotations

import os
from pathlib import Path


def expand_path(path: str | os.PathLike) -> Path:
    """A recipe path with ``~`` and ``$VAR``/``${VAR}`` expanded, and nothing else."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))
