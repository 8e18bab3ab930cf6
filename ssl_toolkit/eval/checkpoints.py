"""What ``--checkpoint`` names, read into a :class:`ModelSource`: the weights, their checksum, the weights card or
the recipe that describes them (:mod:`ssl_toolkit.eval.models` builds the encoder and front end from it).

Accepted: a run directory (its newest valid ``checkpoints/*.pt``, else ``encoder.pt``, else
``encoder.safetensors``), a folder written by ``ssl-toolkit export`` (its ``model.safetensors`` and
``recipe.yaml``), a training checkpoint ``*.pt``, an ``encoder.pt`` (this version's, or a bare state dict
as earlier versions wrote: a ``recipe.yaml`` beside it is used when present), an ``encoder.safetensors`` (its card
in the header) or any ``.safetensors`` state dict, an official BYOL-A weight file (``features.*``/``fc.*``;
the AudioNTT encoder is inferred from the tensor shapes), or the word ``random`` (the eval recipe's
``model`` with random initialization).

The card comes from the file (:mod:`ssl_toolkit.weights_card`); files written before cards existed get one derived
from the recipe they carry or that lies beside them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import checkpoint as ckpt
from ..recipe import RecipeError, import_components
from ..recipe.loading import read_recipe_file
from ..weights_card import WeightsCard, card_from_recipe
from .errors import EvalError

log = logging.getLogger("ssl_toolkit.eval")


EXPORT_WEIGHTS = "model.safetensors"
"""The weights file of a folder written by ``ssl-toolkit export`` (the model hubs' name)."""


@dataclass
class ModelSource:
    """Where the evaluated weights come from and what they are."""

    spec: str  # what the user passed
    kind: str  # random | checkpoint | encoder | official
    path: Optional[Path] = None  # the weight file
    checksum: str = ""  # sha256 of the weight file, or a description hash for random
    recipe: Optional[dict] = None  # the training recipe, when known
    encoder_state: Optional[dict] = None
    card: Optional[WeightsCard] = None
    card_origin: str = ""  # 'weights card' (stored in the file) | 'checkpoint recipe' (derived)
    notes: list[str] = field(default_factory=list)


def _load(path: Path) -> Any:
    try:
        return ckpt.load_checkpoint(path)
    except ckpt.CheckpointError as e:
        raise EvalError(f"--checkpoint: {e}") from None


def _sibling_recipe(path: Path) -> Optional[dict]:
    for cand in (path.parent / "recipe.yaml", path.parent.parent / "recipe.yaml"):
        if cand.is_file():
            try:
                tree = read_recipe_file(cand)
            except RecipeError:
                continue
            if isinstance(tree, dict) and "model" in tree:
                return tree
    return None


def resolve_checkpoint(spec: str) -> ModelSource:
    """Find and load what ``--checkpoint spec`` names (no model is built yet)."""
    if spec == "random":
        return ModelSource(spec=spec, kind="random")
    path = Path(os.path.expanduser(spec))
    if path.is_dir() and (path / EXPORT_WEIGHTS).is_file():
        return _from_safetensors(spec, path / EXPORT_WEIGHTS)
    if path.is_dir():
        candidates = ckpt.checkpoint_candidates(path)
        errors = []
        for cand in candidates:
            try:
                state = ckpt.load_checkpoint(cand)
            except ckpt.CheckpointError as e:
                errors.append(str(e))
                log.warning("%s; trying an older checkpoint", e)
                continue
            return _from_state(spec, cand, state)
        if (path / "encoder.pt").is_file():
            return _from_state(spec, path / "encoder.pt", _load(path / "encoder.pt"))
        if (path / "encoder.safetensors").is_file():
            return _from_safetensors(spec, path / "encoder.safetensors")
        detail = ("; ".join(errors)) if errors else "no checkpoints/*.pt, encoder.pt or encoder.safetensors in it"
        raise EvalError(f"--checkpoint {spec}: a directory but not a usable run directory ({detail})")
    if not path.exists():
        close = ""
        if path.parent.is_dir():
            from ..registry import did_you_mean

            close = did_you_mean(path.name, [p.name for p in path.parent.iterdir()])
        raise EvalError(
            f"--checkpoint {spec}: no such file or directory{close} "
            "(give a run directory, a checkpoint .pt, an encoder.pt / .safetensors, official weights, "
            "or 'random')"
        )
    if path.suffix == ".safetensors":
        return _from_safetensors(spec, path)
    if path.suffix.lower() in (".yaml", ".yml"):
        raise EvalError(
            f"--checkpoint {spec}: a recipe, not weights; train it (ssl-toolkit train {spec}) and give the run "
            "directory, or start from 'random' weights"
        )
    return _from_state(spec, path, _load(path))


def _card(obj: Any, path: Path) -> WeightsCard:
    try:
        return WeightsCard.from_dict(obj, str(path))
    except ValueError as e:
        raise EvalError(f"--checkpoint {e}") from None


def _derived_card(recipe: dict, views_state: Optional[dict], path: Path) -> WeightsCard:
    import_components(list(recipe.get("imports") or []))
    try:
        return card_from_recipe(recipe, views_state)
    except ValueError as e:
        raise EvalError(f"--checkpoint {path}: its recipe: {e}") from None


def _from_encoder_weights(spec: str, path: Path, checksum: str, weights: dict, card: Optional[dict]) -> ModelSource:
    """An encoder file's weights: with its card, else with the recipe beside it, else official BYOL-A or bare."""
    recipe = _sibling_recipe(path)
    if card is not None:  # the card names the model; the recipe beside it says how it was trained
        return ModelSource(
            spec,
            "encoder",
            path,
            checksum,
            recipe=recipe,
            encoder_state=weights,
            card=_card(card, path),
            card_origin="weights card",
        )
    looks_official = any(k.startswith(("features.", "fc.")) for k in weights) and path.stem != "encoder"
    src = ModelSource(
        spec,
        "official" if looks_official and recipe is None else "encoder",
        path,
        checksum,
        recipe=recipe,
        encoder_state=weights,
    )
    if recipe is not None:
        src.card, src.card_origin = _derived_card(recipe, None, path), "checkpoint recipe"
        src.notes.append(f"recipe from {path.parent}/recipe.yaml beside the weights")
    return src


def _from_safetensors(spec: str, path: Path) -> ModelSource:
    try:
        weights, card = ckpt.load_encoder_safetensors(path)
    except ckpt.CheckpointError as e:
        raise EvalError(f"--checkpoint: {e}") from None
    if not weights:
        raise EvalError(f"--checkpoint {path}: the safetensors file holds no tensors")
    return _from_encoder_weights(spec, path, ckpt.sha256_file(path), weights, card)


def _from_state(spec: str, path: Path, state: Any) -> ModelSource:
    checksum = ckpt.sha256_file(path)
    if ckpt.TrainingState.is_one(state):
        ts = ckpt.TrainingState.from_dict(state, path)
        enc = ts.encoder_state()
        if not enc:
            raise EvalError(f"--checkpoint {path}: the checkpoint's method has no encoder weights")
        src = ModelSource(spec, "checkpoint", path, checksum, recipe=ts.recipe, encoder_state=enc)
        if ts.card is not None:
            src.card, src.card_origin = _card(ts.card, path), "weights card"
        elif ts.recipe is not None:
            src.card, src.card_origin = _derived_card(ts.recipe, ts.views, path), "checkpoint recipe"
        return src
    contents = ckpt.encoder_file_contents(state)
    if contents is not None:
        return _from_encoder_weights(spec, path, checksum, *contents)
    if isinstance(state, dict):
        from ..audio.encoders import official_state_dict

        try:
            inner = official_state_dict(state)
        except ValueError:
            inner = None
        if inner is not None and ckpt.is_state_dict(inner):
            return ModelSource(spec, "official", path, checksum, encoder_state=dict(inner))
    raise EvalError(
        f"--checkpoint {path}: not a training checkpoint, an encoder state dict or BYOL-A weights "
        f"(found {type(state).__name__} with keys {list(state)[:6] if isinstance(state, dict) else '-'})"
    )


# ----------------------------------------------------------------------------- architecture inference
def infer_audiontt(state: dict) -> Optional[dict]:
    """An ``audiontt2020``/``audiontt2022`` component fitting an official BYOL-A state dict, or None."""
    if "fc.0.weight" not in state or "features.0.weight" not in state:
        return None
    convs = sorted(
        int(m.group(1)) for k in state if (m := re.match(r"features\.(\d+)\.weight$", k)) and state[k].ndim == 4
    )
    fc0 = state["fc.0.weight"]
    has_bn = any(k.endswith("running_mean") for k in state)
    gn = not has_bn and any(re.match(r"features\.\d+\.weight$", k) and state[k].ndim == 1 for k in state)
    norm = "bn" if has_bn else ("gn_ws" if gn else "none")
    hidden, in_d = fc0.shape
    if len(convs) == 3:
        n_mels = in_d // 64 * 8
        feature_d = state["fc.3.weight"].shape[0] if "fc.3.weight" in state else hidden
        return {"name": "audiontt2020", "n_mels": int(n_mels), "feature_d": int(feature_d), "norm": norm}
    if len(convs) == 2:
        n_mels = in_d // 64 * 4
        out = state["fc.3.weight"].shape[0]
        return {
            "name": "audiontt2022",
            "n_mels": int(n_mels),
            "feature_d": int(in_d + out),
            "mlp_hidden_d": int(hidden),
            "norm": norm,
        }
    return None
