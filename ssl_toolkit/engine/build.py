"""The method a recipe names: encoder → projector → predictor → method, built from the registries."""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from ..registry import ENCODERS, HEADS, METHODS


class TrainableMethod(Protocol):
    """What the trainer uses of a method (docs/CONTRACTS.md, "Add a method"): ``BootstrapMethod`` and ``SimCLR``
    have it, and any ``nn.Module`` has the state dict methods; ``build_method`` refuses a registered method that
    lacks a member (:func:`missing_members`)."""

    online: nn.Module  # an OnlineNetwork: the encoder's weights sit under ``online.encoder.``
    targets: nn.ModuleList  # empty when there is no target network
    num_views: int

    @property
    def encoder(self) -> nn.Module: ...

    def __call__(self, views: Any) -> dict[str, Any]: ...

    def update_targets(self, step: int, total_steps: int) -> float:
        """Moves the targets after an optimizer step; returns the τ it used."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


METHOD_MEMBERS = ("online", "targets", "num_views", "encoder", "update_targets")


def missing_members(method: nn.Module) -> list[str]:
    """The members of :class:`TrainableMethod` that ``method`` lacks (``hasattr``: an ``nn.Module`` holds its
    submodules behind ``__getattr__``, which a runtime protocol check does not see from Python 3.12 on)."""
    return [name for name in METHOD_MEMBERS if not hasattr(method, name)]


def feature_dim_of(encoder: nn.Module, name: str | None = None) -> int:
    """The size of an encoder's pooled output: its ``feature_dim`` attribute (the encoder contract,
    docs/CONTRACTS.md); ``name`` says which encoder in the error (default: its class)."""
    dim = getattr(encoder, "feature_dim", None)
    if dim is None:
        what = name or type(encoder).__name__
        raise ValueError(f"{what} has no feature_dim attribute (the size of its pooled output)")
    return int(dim)


def build_method(recipe) -> nn.Module:
    """Encoder → heads → method, exactly as the recipe (a :class:`~ssl_toolkit.recipe.Recipe`) names them."""
    m = recipe.model
    encoder = ENCODERS.build(m.encoder.name, **m.encoder.params)
    in_dim = feature_dim_of(encoder, f"encoder '{m.encoder.name}'")
    projector = HEADS.build(m.projector.name, in_dim=in_dim, **m.projector.params)
    predictor = None
    if m.predictor is not None:
        predictor = HEADS.build(m.predictor.name, in_dim=getattr(projector, "out_dim"), **m.predictor.params)
    method: nn.Module = METHODS.build(
        recipe.method.name,
        encoder=encoder,
        projector=projector,
        predictor=predictor,
        ema=recipe.ema,
        **recipe.method.params,
    )
    if missing := missing_members(method):
        raise ValueError(
            f"method '{recipe.method.name}' built a {type(method).__name__} without {', '.join(missing)}: "
            f"a method needs {', '.join(METHOD_MEMBERS)} (docs/CONTRACTS.md, 'Add a method')"
        )
    return method
