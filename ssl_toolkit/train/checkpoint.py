"""Atomic checkpoints that load with ``weights_only=True``.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced, then moved
into place with ``os.replace``, so a crash or a full disk mid-write leaves the previous file intact.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded, with its path and the reason."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``; any failure becomes a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (not a complete torch.save archive)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0]})") from None
        raise CheckpointError(
            f"{path}: refused — the file holds objects other than tensors and plain containers "
            f"(weights_only loading; it may carry code). Details: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0]})") from None


_STEP = re.compile(r"step_(\d+)\.pt$")


def checkpoint_candidates(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run, newest first: last.pt, then step_*.pt by decreasing step."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    periodic = sorted((p for p in folder.glob("step_*.pt") if _STEP.search(p.name)),
                      key=lambda p: int(_STEP.search(p.name).group(1)), reverse=True)
    last = folder / "last.pt"
    return ([last] if last.exists() else []) + periodic


def prune_periodic(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints (last.pt stays)."""
    periodic = [p for p in checkpoint_candidates(run_dir) if p.name != "last.pt"]
    for old in periodic[max(keep, 0):]:
        old.unlink(missing_ok=True)


def state_dict_mismatch(own: dict, state: dict, limit: int = 4) -> str:
    """How ``state`` fails to fit a module whose state dict is ``own`` ('' when it fits)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    parts = []
    if missing:
        parts.append(f"missing {missing[:limit]}{'…' if len(missing) > limit else ''}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:limit]}{'…' if len(unexpected) > limit else ''}")
    if wrong:
        parts.append("shape mismatch " + ", ".join(
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong[:limit]))
    return "; ".join(parts)
