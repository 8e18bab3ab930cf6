"""``model.init_from``: start pretraining from given weights instead of random ones.

The file is read as ``eval --checkpoint`` reads it (:func:`ssl_toolkit.eval.checkpoints.resolve_checkpoint`: official
BYOL-A v1/v2 files, an ``encoder.pt`` / ``.safetensors``, a run directory or training checkpoint, a bare state
dict such as torchvision's ResNet weights). Its encoder tensors go into the online encoder before step 0 and every
EMA target's encoder is set to the same values (BYOL's targets start as copies of the online network); heads,
optimizer and schedule stay fresh. A classifier the encoder does not have (torchvision's ``fc.*``) is dropped.
With ``init_strict: true`` any other mismatch is an error naming the first keys and both shapes; with ``false``
the tensors whose names and shapes match are loaded and the rest is logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ..checkpoint import state_dict_mismatch

if TYPE_CHECKING:
    from ..engine.build import TrainableMethod

CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "heads.")
"""Classifier keys of image-classification files, dropped when the encoder has no module of that name."""


class InitError(ValueError):
    """``model.init_from`` cannot be used; the message names the key and the file."""


def read_init_weights(spec: str, expected_sha256: str | None = None) -> tuple[dict, Path, str]:
    """(encoder state dict, resolved path, sha256) of what ``model.init_from`` names."""
    from ..eval.checkpoints import resolve_checkpoint
    from ..eval.errors import EvalError

    try:
        source = resolve_checkpoint(spec)
    except EvalError as e:
        raise InitError(f"model.init_from: {str(e).removeprefix('--checkpoint: ').removeprefix('--checkpoint ')}")
    if source.kind == "random" or source.encoder_state is None or source.path is None:
        raise InitError(f"model.init_from: {spec!r} names no weights")
    if expected_sha256 and expected_sha256 != source.checksum:
        raise InitError(
            f"model.init_sha256: {source.path} has sha256 {source.checksum}, the recipe expects "
            f"{expected_sha256} (another file than the one this recipe was run with)"
        )
    return dict(source.encoder_state), source.path.resolve(), source.checksum


def fit_to(own: dict, state: dict, strict: bool, where: str) -> tuple[dict, list[str]]:
    """The tensors of ``state`` to load into a module whose state dict is ``own``, and what was left out."""
    extra = [k for k in state if k not in own]
    dropped = [
        k
        for k in extra
        if k.startswith(CLASSIFIER_PREFIXES) and not any(o.startswith(k.split(".", 1)[0] + ".") for o in own)
    ]
    state = {k: v for k, v in state.items() if k not in dropped}
    problem = state_dict_mismatch(own, state)
    if not problem:
        return state, [f"classifier {k} (not part of the encoder)" for k in dropped]
    if strict:
        raise InitError(
            f"model.init_from: {where} does not fit the recipe's model.encoder: {problem} (set "
            "model.init_strict: false to load only the tensors that match)"
        )
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    left = [
        f"{k} {tuple(v.shape)}: " + (f"model has {tuple(own[k].shape)}" if k in own else "not in the model")
        for k, v in state.items()
        if k not in fitting
    ]
    left += [f"{k}: not in the file (stays random)" for k in own if k not in state]
    return fitting, left + [f"classifier {k} (not part of the encoder)" for k in dropped]


def initialize_encoder(
    method: TrainableMethod, spec: str, strict: bool, expected_sha256: str | None, log: Callable[[str], None]
) -> tuple[Path, str]:
    """Load ``spec``'s weights into ``method``'s online encoder and copy them into its EMA targets' encoders;
    returns (resolved path, sha256)."""
    state, path, digest = read_init_weights(spec, expected_sha256)
    encoder = method.encoder
    own = encoder.state_dict()
    fitting, left = fit_to(own, state, strict, str(path))
    with torch.no_grad():
        encoder.load_state_dict(fitting, strict=set(fitting) == set(own))
        for target in method.targets:
            target.get_submodule("encoder").load_state_dict(encoder.state_dict())
    log(f"model.init_from: {len(fitting)} of {len(own)} encoder tensors from {path} (sha256 {digest[:12]}…)")
    for line in left[:10]:
        log(f"  not loaded: {line}")
    if len(left) > 10:
        log(f"  … and {len(left) - 10} more")
    return path, digest
