"""The one owner of the files a run writes: training checkpoints, ``encoder.pt`` and ``encoder.safetensors``.

A training checkpoint (:class:`TrainingState`) holds what exact resume needs (method, views, optimizer,
scaler, RNG states, data position, log window, hook states), the resolved recipe it was made with, and the
weights card (:mod:`ssl_toolkit.weights_card`). ``encoder.pt`` holds the online encoder's state dict and
the card. Everything is tensors and plain containers: every file loads with ``weights_only=True``.
``encoder.safetensors`` holds the same weights in the safetensors format, the card as JSON in its header.

Files are written to a temporary file in the same folder, flushed and fsynced, then moved into place with
``os.replace``, so a crash or a full disk mid-write leaves the previous file intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import random
import re
import signal
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .atomic import atomic_write, signals_deferred
from .engine.bootstrap import ENCODER_STATE_PREFIX

CHECKPOINT_FORMAT = "ssl_toolkit.checkpoint/2"
"""/2 adds the weights card and hook states to /1; both load."""
READABLE_CHECKPOINT_FORMATS = ("ssl_toolkit.checkpoint/1", CHECKPOINT_FORMAT)
ENCODER_FORMAT = "ssl_toolkit.encoder/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded, with its path and the reason."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` into ``path`` atomically; a data worker's death (SIGCHLD) is noticed only after the write."""
    with signals_deferred(signal.SIGCHLD):
        return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``; any failure becomes a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as e:  # is_zipfile would call an unreadable file corrupt
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror}") from None
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
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror or e}") from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0]})") from None


_STEP = re.compile(r"step_(\d+)\.pt$")


def checkpoint_candidates(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run, newest first: last.pt, then step_*.pt by decreasing step."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    periodic = sorted(
        (p for p in folder.glob("step_*.pt") if _STEP.search(p.name)),
        key=lambda p: int(_STEP.search(p.name).group(1)),  # type: ignore[union-attr]  # filtered above
        reverse=True,
    )
    last = folder / "last.pt"
    return ([last] if last.exists() else []) + periodic


def prune_periodic(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints (last.pt stays)."""
    periodic = [p for p in checkpoint_candidates(run_dir) if p.name != "last.pt"]
    for old in periodic[max(keep, 0) :]:
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
        parts.append(
            "shape mismatch "
            + ", ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong[:limit])
        )
    return "; ".join(parts)


# ----------------------------------------------------------------------------- RNG states
def rng_state() -> dict:
    """The global RNG states (torch, CUDA, numpy, Python) as tensors and plain containers."""
    np_state: tuple = np.random.get_state(legacy=True)  # type: ignore[assignment]  # the tuple form (legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------------------- the training state
@dataclasses.dataclass
class TrainingState:
    """A training checkpoint: exact-resume state, the recipe it was made with and the weights card."""

    recipe: dict
    step: int
    epoch: int
    batches_done: int
    method: dict
    views: dict
    optimizer: dict = dataclasses.field(default_factory=dict)
    scaler: dict = dataclasses.field(default_factory=dict)
    rng: Optional[dict] = None
    skipped: list = dataclasses.field(default_factory=list)
    """[path, reason] of every bad file skipped so far."""
    window: list = dataclasses.field(default_factory=lambda: [0.0, 0])
    """[sum of step losses, steps] of the open log window."""
    elapsed_s: float = 0.0
    """Training seconds up to this checkpoint, summed over the sessions that led to it (0 in older checkpoints)."""
    card: Optional[dict] = None
    data_items: Optional[int] = None
    """Items of the training dataset (None for a stream of shards of unknown length, or an older checkpoint)."""
    hooks: dict = dataclasses.field(default_factory=dict)
    format: str = CHECKPOINT_FORMAT

    @staticmethod
    def is_one(obj: Any) -> bool:
        return isinstance(obj, dict) and obj.get("format") in READABLE_CHECKPOINT_FORMATS and "method" in obj

    @classmethod
    def from_dict(cls, obj: Any, path: str | os.PathLike = "") -> "TrainingState":
        if not cls.is_one(obj):
            raise CheckpointError(f"{path}: not an ssl_toolkit training checkpoint")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "TrainingState":
        return cls.from_dict(load_checkpoint(path, map_location), path)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_save(dataclasses.asdict(self), path)

    def encoder_state(self) -> dict:
        """The online encoder's state dict (the representation the run produces)."""
        return encoder_state_of(self.method)


def encoder_state_of(method_state: dict) -> dict:
    """The online encoder's entries of a method state dict, with the encoder's own key names."""
    n = len(ENCODER_STATE_PREFIX)
    return {k[n:]: v for k, v in method_state.items() if k.startswith(ENCODER_STATE_PREFIX)}


# ----------------------------------------------------------------------------- encoder.pt
def save_encoder(path: str | os.PathLike, state_dict: dict, card: Optional[dict]) -> Path:
    """``encoder.pt``: ``{"format", "state_dict", "card"}`` (load the weights with
    ``torch.load(path, weights_only=True)["state_dict"]``)."""
    return atomic_save({"format": ENCODER_FORMAT, "state_dict": state_dict, "card": card}, path)


def save_encoder_safetensors(path: str | os.PathLike, state_dict: dict, card: Optional[dict]) -> Path:
    """``encoder.safetensors``: the same weights as ``encoder.pt`` in the safetensors format (no pickle at all),
    with ``format`` and the weights card (JSON) in its header metadata."""
    import json

    from safetensors.torch import save

    from .weights_card import plain_card

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    metadata = {"format": ENCODER_FORMAT, "card": json.dumps(plain_card(card) if card else card, default=str)}
    return atomic_write(path, lambda f: f.write(save(tensors, metadata=metadata)))


def load_encoder_safetensors(path: str | os.PathLike) -> tuple[dict, Optional[dict]]:
    """``(state_dict, card or None)`` of a ``.safetensors`` file (this toolkit's, or any other's: no card);
    CheckpointError for an unreadable file."""
    import json

    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - safetensors' own errors for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    try:
        card = json.loads(metadata["card"]) if "card" in metadata else None
    except ValueError:
        raise CheckpointError(f"{path}: the weights card in the header is not JSON") from None
    return state, card


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of tensors (a module's state dict)."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def encoder_file_contents(obj: Any) -> Optional[tuple[dict, Optional[dict]]]:
    """``(state_dict, card or None)`` of a loaded encoder file — this format, or a bare state dict as
    earlier versions wrote — else None."""
    if isinstance(obj, dict) and obj.get("format") == ENCODER_FORMAT:
        return dict(obj["state_dict"]), obj.get("card")
    if is_state_dict(obj):
        return dict(obj), None
    return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks (what results, manifests and exports record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
