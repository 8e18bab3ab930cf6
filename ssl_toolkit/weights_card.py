"""The weights card: what an encoder needs to be used alone, stored in ``encoder.pt`` and checkpoints.

Like torchvision's weights, which carry their transforms and metadata, a card names the encoder (registry
name and parameters, plus the ``imports:`` that register it), its deterministic front end — the ops of the
training views that are the same for a sample whatever batch it is in (``eval_frontend = True`` on the op
class: uint8→float, wave→log-mel, ``pre_norm`` with its statistics, ``normalize``) in pipeline order, each
with its state — and the feature dimension. Eval, the HEAR module and ``embed`` read it from the file;
files written before cards existed get theirs from the recipe and views state they carry
(:func:`card_from_recipe`), the same rule applied to the same ops.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Optional

from . import __version__
from .recipe.schema import to_plain
from .registry import AUGMENTATIONS, ENCODERS, RegistryError

CARD_VERSION = 1


@dataclasses.dataclass
class WeightsCard:
    encoder: dict
    """``{"name": registry name, **parameters}``"""
    frontend: list
    """Front-end op specs ``{"name": ..., **parameters}``, applied in order before the encoder."""
    frontend_state: list
    """Each front-end op's state dict (e.g. pre_norm's mean/std), same order; ``{}`` when unknown."""
    feature_dim: Optional[int] = None
    imports: list = dataclasses.field(default_factory=list)
    recipe_name: str = ""
    toolkit_version: str = __version__
    version: int = CARD_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_plain(self) -> dict:
        """The card with every op state tensor as a (nested) list: JSON-safe (safetensors headers, config.json)."""
        return plain_card(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Any, where: str = "") -> "WeightsCard":
        if not isinstance(obj, dict) or not isinstance(obj.get("encoder"), dict) or "name" not in obj["encoder"]:
            raise ValueError(f"{where}: the weights card is not a mapping with encoder.name")
        names = {f.name for f in dataclasses.fields(cls)}
        card = cls(**{k: v for k, v in obj.items() if k in names})
        card.frontend_state = [tensor_state(s) if isinstance(s, dict) else s for s in card.frontend_state]
        if len(card.frontend_state) != len(card.frontend):
            raise ValueError(
                f"{where}: the weights card has {len(card.frontend)} front-end ops but "
                f"{len(card.frontend_state)} op states"
            )
        return card

    def disagreements(self, encoder: Optional[dict], frontend: Optional[list]) -> list[str]:
        """What the specs ``encoder`` / ``frontend`` give that differs from this card's architecture (a parameter
        the card leaves out counts as its builder's default): ``["encoder feature_d=128 (the weights': 64)"]``."""
        stored, where_from = _with_defaults(ENCODERS, self.encoder), init_only_parameters(self.encoder["name"])
        out = [
            f"encoder {k}={v!r} (the weights': {stored.get(k)!r})"
            for k, v in (encoder or {}).items()
            if k not in where_from and stored.get(k) != to_plain(v)  # where first weights came from: not architecture
        ]
        if frontend is None:
            return out
        names, mine_names = [_spec(op).get("name") for op in frontend], [op.get("name") for op in self.frontend]
        if names != mine_names:
            return [*out, f"frontend {names} (the weights': {mine_names})"]
        for given, stored in zip(frontend, self.frontend):
            full = _with_defaults(AUGMENTATIONS, stored)
            out += [
                f"frontend {k}={v!r} (the weights': {full.get(k)!r})"
                for k, v in given.items()
                if full.get(k) != to_plain(v)
            ]
        return out

    def without_state(self) -> "WeightsCard":
        """The same card with fresh front-end ops (e.g. pre_norm statistics measured per task)."""
        return dataclasses.replace(self, frontend_state=[{} for _ in self.frontend])


_LEGACY_SCALAR = re.compile(r"^tensor\(([-+0-9.eE]+|nan|inf|-inf)\)$")


def plain_card(card: dict) -> dict:
    """A card dict with its op state tensors as lists (numbers for 0-d tensors)."""
    states = [
        {k: v.tolist() if hasattr(v, "tolist") else v for k, v in s.items()} for s in card.get("frontend_state", [])
    ]
    return {**card, "frontend_state": states}


def tensor_state(state: dict) -> dict:
    """An op state read from JSON back to tensors: numbers and lists, and the ``"tensor(-6.)"`` strings that
    version 0.1.0 wrote into ``encoder.safetensors`` headers for scalar states."""
    import torch

    out = {}
    for k, v in state.items():
        if isinstance(v, str) and (m := _LEGACY_SCALAR.match(v.strip())):
            v = float(m.group(1))
        out[k] = torch.tensor(v) if isinstance(v, (int, float, list)) and not isinstance(v, bool) else v
    return out


def _with_defaults(registry, spec: dict) -> dict:
    """``spec`` with the registered builder's defaults for the parameters it leaves out (values plain: tuples as
    lists, as YAML and the card hold them)."""
    try:
        params = registry.get(spec["name"]).parameters()
    except (RegistryError, KeyError):
        params = {}
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {k: to_plain(v) for k, v in {**defaults, **spec}.items()}


def _spec(op: Any) -> dict:
    return dict(op) if isinstance(op, dict) else {"name": str(op)}


def init_only_parameters(encoder_name: str) -> tuple:
    """The encoder builder's parameters that only say where its first weights come from (``init_only``, e.g.
    timm's ``pretrained_path``): left out of the card, since the file holds the weights."""
    try:
        return tuple(getattr(ENCODERS.get(encoder_name).builder, "init_only", ()))
    except RegistryError:
        return ()


def in_frontend(spec: dict) -> bool:
    """Whether the registered op ``spec`` names is part of an encoder's front end."""
    try:
        builder = AUGMENTATIONS.get(spec["name"]).builder
    except RegistryError as e:
        raise ValueError(f"views op {spec['name']!r}: {e}") from None
    return bool(getattr(builder, "eval_frontend", False))


def frontend_of(views_cfg: Any, views_state: Optional[dict]) -> tuple[list[dict], list[dict]]:
    """Specs and states of the front-end ops of a views section (``input`` ops, then ``joint`` ops).

    ``views_cfg`` has ``input``/``joint`` lists (a recipe's ViewsConfig or its plain dict);
    ``views_state`` is a :class:`~ssl_toolkit.views.ViewMaker` state dict (``input.ops.N.*``,
    ``joint.ops.N.*``) or None."""
    get = views_cfg.get if isinstance(views_cfg, dict) else (lambda k, d=None: getattr(views_cfg, k, d))
    specs, states = [], []
    for stage in ("input", "joint"):
        for i, op in enumerate(get(stage) or []):
            spec = _spec(op)
            if not in_frontend(spec):
                continue
            prefix = f"{stage}.ops.{i}."
            specs.append(spec)
            states.append({k[len(prefix) :]: v for k, v in (views_state or {}).items() if k.startswith(prefix)})
    return specs, states


def card_from_recipe(
    recipe: dict, views_state: Optional[dict] = None, feature_dim: Optional[int] = None
) -> WeightsCard:
    """The card of a resolved training recipe (a plain dict) and, when known, its ViewMaker state."""
    try:
        encoder = _spec(recipe["model"]["encoder"])
    except (KeyError, TypeError):
        raise ValueError("the recipe has no model.encoder") from None
    encoder = {k: v for k, v in encoder.items() if k not in init_only_parameters(encoder["name"])}
    specs, states = frontend_of(recipe.get("views") or {}, views_state)
    return WeightsCard(
        encoder=encoder,
        frontend=specs,
        frontend_state=states,
        feature_dim=feature_dim,
        imports=list(recipe.get("imports") or []),
        recipe_name=str(recipe.get("name") or ""),
    )
