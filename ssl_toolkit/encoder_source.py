"""Weights → an :class:`~ssl_toolkit.encoder.Encoder`: ``read_encoder``, the one loader behind ``load_encoder``,
``embed``, ``export`` and the HEAR module (a run, checkpoint, encoder file, export, official BYOL-A weights or
``"random"``; the weights' card names the architecture, ``encoder`` / ``frontend`` only for weights without one)."""

from __future__ import annotations

import os
import re
from typing import Optional

from .encoder import Encoder
from .eval.errors import EvalError
from .params import is_int_at_least


def read_encoder(
    checkpoint: str | os.PathLike,
    label: str,
    *,
    device: str = "cpu",
    trainable: bool = False,
    freeze_bn: bool = False,
    encoder: Optional[dict] = None,
    frontend: Optional[list] = None,
    seed: int = 0,
) -> Encoder:
    """:func:`ssl_toolkit.load_encoder` for an entry point whose errors name the checkpoint as ``label``
    (``--checkpoint`` for the commands)."""
    from .devices import resolve_device
    from .eval.checkpoints import resolve_checkpoint
    from .eval.models import make_models, training_unit_sec
    from .eval.schema import ModelSpec
    from .recipe import Component, import_components

    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"load_encoder: checkpoint must be a path or 'random', got {type(checkpoint).__name__}")
    for flag, value in (("trainable", trainable), ("freeze_bn", freeze_bn)):
        if not isinstance(value, bool):
            raise TypeError(f"load_encoder: {flag} must be True or False, got {value!r}")
    if not is_int_at_least(seed, 0):
        raise ValueError(f"load_encoder: seed must be a non-negative int, got {seed!r}")
    if encoder is not None and not isinstance(encoder, dict):
        raise TypeError(f"load_encoder: encoder must be a mapping like {{'name': 'audiontt2020'}}, got {encoder!r}")
    if frontend is not None and not (
        isinstance(frontend, (list, tuple)) and all(isinstance(c, dict) for c in frontend)
    ):
        raise TypeError(
            f"load_encoder: frontend must be a list of op specs like [{{'name': 'log_mel'}}], got {frontend!r}"
        )
    try:
        dev = resolve_device(device)
    except ValueError as e:
        raise EvalError(f"{label} {e}") from None
    import_components()
    spec = ModelSpec(
        encoder=Component(encoder) if encoder else None,
        frontend=[Component(c) for c in frontend] if frontend is not None else None,
    )
    try:
        source = resolve_checkpoint(os.fspath(checkpoint))
        if source.card is not None:
            import_components(list(source.card.imports))  # the card's own components, with their defaults
        differ = source.card.disagreements(encoder, frontend) if source.card is not None else []
        if differ:
            given = "--encoder / --frontend" if label == "--checkpoint" else "encoder= / frontend="
            raise EvalError(
                f"{label} {os.fspath(checkpoint)}: the weights carry their architecture, and {'; '.join(differ)}: "
                f"{given} are for weights without one (a bare state dict); drop them"
            )
        model, _ = make_models(source, spec, seed=seed, want_random=False, prenorm="checkpoint")
    except EvalError as e:
        message = re.sub(r"^--checkpoint:? ", f"{label} ", str(e))
        if label != "--checkpoint" and ": name the encoder" in message:  # the commands' hint names recipe keys
            message = (
                message.split(": name the encoder")[0] + ": pass encoder={'name': ..., ...} (a registry name "
                "and its parameters, as a recipe's model.encoder), or a run directory / checkpoint"
            )
        raise EvalError(message) from None
    card = source.card
    enc = Encoder(
        model.encoder,
        model.frontend,
        encoder_spec=model.encoder_spec,
        frontend_spec=model.frontend_spec,
        unit_sec=training_unit_sec(source.recipe),
        imports=card.imports if card else (),
        recipe_name=(card.recipe_name if card else "") or str((source.recipe or {}).get("name") or ""),
        recipe=source.recipe,
        source={
            "spec": os.fspath(checkpoint),
            "kind": source.kind,
            "path": str(source.path) if source.path else None,
            "sha256": source.checksum or None,
            "card_origin": model.source,
            "notes": list(source.notes),
        },
        freeze_bn=freeze_bn,
    )
    for p in enc.backbone.parameters():
        p.requires_grad_(trainable)
    enc.train(trainable)
    return enc.to(dev)
