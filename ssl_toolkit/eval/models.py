"""A frozen encoder plus its deterministic front end, built from a :class:`~ssl_toolkit.eval.checkpoints.ModelSource`
(what ``--checkpoint`` names; :mod:`ssl_toolkit.eval.checkpoints` reads it): the encoder and front end from the
file's weights card or the recipe it carries, an eval recipe's ``model`` section when the file has neither (or
always with ``override: true``), and the random-init baseline of the same architecture.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, cast

import torch
import yaml
from torch import nn

from .. import checkpoint as ckpt
from ..engine.build import TrainableMethod, build_method, feature_dim_of
from ..recipe import Component, import_components
from ..registry import AUGMENTATIONS, DATASETS, ENCODERS, RegistryError
from ..weights_card import WeightsCard, card_from_recipe
from .checkpoints import ModelSource, infer_audiontt
from .errors import EvalError

log = logging.getLogger("ssl_toolkit.eval")


@dataclass
class EvalModel:
    """A frozen encoder and its front end, ready to embed raw batches."""

    name: str  # 'model', 'random', ...
    encoder: nn.Module
    frontend: list[nn.Module]
    encoder_spec: dict
    frontend_spec: list[dict]
    identity: str  # cache identity: weights checksum + architecture
    source: str = ""  # 'checkpoint recipe', 'eval recipe', 'inferred', ...

    @property
    def feature_dim(self) -> int:
        return feature_dim_of(self.encoder)

    def to(self, device) -> "EvalModel":
        self.encoder.to(device)
        for op in self.frontend:
            op.to(device)
        return self


def default_audio_frontend(encoder_spec: dict) -> list[dict]:
    """The official BYOL-A front ends: v1 (audiontt2020) torchaudio, v2 (audiontt2022) nnAudio."""
    fe = "nnaudio_mel" if encoder_spec.get("name") == "audiontt2022" else "torchaudio_mel"
    return [
        {
            "name": "log_mel",
            "frontend": fe,
            "sample_rate": 16000,
            "n_fft": 1024,
            "win_length": 1024,
            "hop_length": 160,
            "n_mels": int(encoder_spec.get("n_mels", 64)),
            "f_min": 60.0,
            "f_max": 7800.0,
        },
        {"name": "pre_norm"},
    ]


def build_frontend(specs: list[dict], op_states: Optional[list[dict]] = None) -> list[nn.Module]:
    """The front-end ops ``specs`` name, in eval mode, with ``op_states[i]`` (when given and not empty)
    restored into op i."""
    ops = []
    for i, spec in enumerate(specs):
        params = {k: v for k, v in spec.items() if k != "name"}
        try:
            op = AUGMENTATIONS.build(spec["name"], **params)
        except (RegistryError, TypeError, ValueError) as e:
            raise EvalError(f"front end op {spec.get('name')!r}: {e}") from None
        if op_states and op_states[i]:
            try:
                op.load_state_dict(op_states[i], strict=False)
            except Exception as e:  # noqa: BLE001 - shapes of another op: keep it fresh
                log.warning("front end op %s: could not restore its stored state (%s)", spec["name"], e)
        op.eval()
        ops.append(op)
    return ops


def build_encoder(spec: dict, state: Optional[dict], where: str, seed: int = 0) -> nn.Module:
    params = {k: v for k, v in spec.items() if k != "name"}
    try:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            encoder = ENCODERS.build(spec["name"], **params)
    except (RegistryError, TypeError, ValueError) as e:
        raise EvalError(f"{where}: cannot build encoder {spec.get('name')!r}: {e}") from None
    if state is not None:
        problem = ckpt.state_dict_mismatch(encoder.state_dict(), state)
        if problem:
            raise EvalError(f"{where}: the weights do not fit encoder {spec}: {problem}")
        encoder.load_state_dict(state)
    if not hasattr(encoder, "feature_dim"):
        raise EvalError(f"{where}: encoder {spec['name']!r} has no feature_dim attribute")
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def fits(spec: dict, state: dict) -> bool:
    """Whether ``state`` has exactly the tensors (names and shapes) of encoder ``spec``."""
    params = {k: v for k, v in spec.items() if k != "name"}
    try:
        with torch.device("meta"):
            own = ENCODERS.build(spec["name"], **params).state_dict()
    except Exception:  # noqa: BLE001 - unbuildable spec: it does not fit
        return False
    return set(own) == set(state) and all(tuple(own[k].shape) == tuple(state[k].shape) for k in own)


def _spec(c) -> Optional[dict]:
    if c is None:
        return None
    return dict(c) if isinstance(c, (dict, Component)) else {"name": str(c)}


def _stored_states(card: Optional[WeightsCard], specs: list[dict]) -> list[dict]:
    """The card's stored op states for the front-end ops ``specs`` that are the card's own (equal specs)."""
    if card is None:
        return [{} for _ in specs]
    unused = list(zip(card.frontend, card.frontend_state))
    out = []
    for spec in specs:
        match = next((i for i, (s, _) in enumerate(unused) if s == spec), None)
        out.append(unused.pop(match)[1] if match is not None else {})
    return out


def resolve_specs(source: ModelSource, model_cfg) -> tuple[dict, list[dict], list[dict], str]:
    """(encoder spec, front-end specs, their stored states, where they come from) for a checkpoint and the
    eval recipe's ``model`` section."""
    card = source.card
    override = bool(getattr(model_cfg, "override", False))
    cfg_enc, cfg_fe = _spec(model_cfg.encoder), model_cfg.frontend
    cfg_fe = [dict(c) for c in cfg_fe] if cfg_fe is not None else None
    if card is not None:
        import_components(list(card.imports))
    if card is not None and not override:
        return dict(card.encoder), list(card.frontend), list(card.frontend_state), source.card_origin
    inferred = (
        infer_audiontt(source.encoder_state)
        if source.kind in ("official", "encoder") and source.encoder_state is not None
        else None
    )
    if cfg_enc is not None and inferred is not None and not override and not fits(cfg_enc, source.encoder_state or {}):
        source.notes.append(
            f"the eval recipe's model.encoder {cfg_enc} does not fit these weights; using the "
            f"architecture inferred from them: {inferred} (official front end)"
        )
        fe = default_audio_frontend(inferred)
        return inferred, fe, _stored_states(None, fe), "inferred from the weights"
    if cfg_enc is not None:
        enc = cfg_enc
        if cfg_fe is not None:
            fe = cfg_fe
        elif card is not None:
            fe = list(card.frontend)
        else:
            fe = default_audio_frontend(enc) if enc["name"].startswith("audiontt") else []
        return enc, fe, _stored_states(card, fe), "eval recipe (model)"
    if inferred is not None:
        fe = cfg_fe if cfg_fe is not None else default_audio_frontend(inferred)
        source.notes.append(f"encoder inferred from the weight shapes: {inferred}")
        return inferred, fe, _stored_states(None, fe), "inferred from the weights"
    what = {
        "random": "'random' needs an encoder to initialize",
        "encoder": f"{source.path} holds encoder weights only, with no recipe to say which encoder they are",
        "official": f"{source.path} holds weights without a recipe",
    }.get(source.kind, "no recipe")
    raise EvalError(
        f"--checkpoint {source.spec}: {what}: name the encoder in the eval recipe, e.g.\n"
        "  model:\n    encoder: {name: audiontt2020, feature_d: 2048}\n"
        "or on the command line: model.encoder.name=... (or pass the run directory / a "
        "checkpoints/*.pt file, which carry their recipe)"
    )


def make_models(
    source: ModelSource, model_cfg, seed: int = 0, want_random: bool = True, prenorm: str = "task"
) -> tuple[EvalModel, Optional[EvalModel]]:
    """The evaluated model and (if asked) its random-init twin (same encoder and front end)."""
    enc_spec, fe_spec, stored, origin = resolve_specs(source, model_cfg)
    op_states = stored if prenorm == "checkpoint" else None
    if source.kind == "random":
        model = EvalModel(
            "random",
            build_encoder(enc_spec, None, "random", seed),
            build_frontend(fe_spec),
            enc_spec,
            fe_spec,
            _random_identity(enc_spec, seed),
            origin,
        )
        return model, None
    model = EvalModel(
        "model",
        build_encoder(enc_spec, source.encoder_state, f"--checkpoint {source.spec}"),
        build_frontend(fe_spec, op_states),
        enc_spec,
        fe_spec,
        "sha256:" + source.checksum + ":" + _hash(enc_spec),
        origin,
    )
    rnd = None
    if want_random:
        # same front end (and stored statistics) as the model: only the encoder weights differ
        rnd = EvalModel(
            "random",
            build_encoder(enc_spec, None, "random baseline", seed),
            build_frontend(fe_spec, op_states),
            enc_spec,
            fe_spec,
            _random_identity(enc_spec, seed),
            origin,
        )
    return model, rnd


def training_unit_sec(recipe: Optional[dict]) -> float:
    """The training segment length of an audio recipe: the first ``unit_sec`` of ``data.dataset`` (or of the
    datasets it combines; a dataset that does not set it, its builder's default), else BYOL-A's 1 s. The default
    piece length of scene embeddings (``embed``, ``Encoder.embed``, the HEAR module)."""

    def find(node) -> Optional[float]:
        if isinstance(node, list):
            return next((v for v in map(find, node) if v is not None), None)
        if not isinstance(node, dict):
            return None
        if isinstance(node.get("unit_sec"), (int, float)):
            return float(node["unit_sec"])
        inner = next((v for v in map(find, node.values()) if v is not None), None)
        if inner is not None or not isinstance(node.get("name"), str):
            return inner
        try:
            default = DATASETS.get(node["name"]).parameters().get("unit_sec")
        except RegistryError:
            return None
        return float(default.default) if default is not None and isinstance(default.default, (int, float)) else None

    found = find(((recipe or {}).get("data") or {}).get("dataset"))
    return found if found is not None else 1.0


def _hash(obj) -> str:
    return hashlib.sha256(yaml.safe_dump(obj, sort_keys=True).encode()).hexdigest()[:16]


def _random_identity(enc_spec: dict, seed: int) -> str:
    return f"random:{_hash(enc_spec)}:seed{seed}:torch{torch.__version__.split('+')[0]}"


def write_random_checkpoint(recipe, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a training-format checkpoint of a freshly initialized method for ``recipe`` (a Recipe):
    the random-init model as a file (tests, sharing a baseline)."""
    from ..views import ViewMaker

    torch.manual_seed(seed)
    method = cast(TrainableMethod, build_method(recipe))  # build_method checked the contract
    views = ViewMaker.from_config(recipe.views)
    tree = recipe.to_dict()
    card = card_from_recipe(tree, views.state_dict(), feature_dim_of(method.encoder))
    state = ckpt.TrainingState(
        recipe=tree,
        step=0,
        epoch=0,
        batches_done=0,
        method=method.state_dict(),
        views=views.state_dict(),
        card=card.to_dict(),
    )
    return state.save(Path(path))
