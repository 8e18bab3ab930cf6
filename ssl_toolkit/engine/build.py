"""The method a recipe names: encoder → projector → predictor → method, built from the registries."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn

from ..registry import ENCODERS, HEADS, METHODS


@runtime_checkable
class TrainableMethod(Protocol):
    """What the trainer uses of a method (docs/CONTRACTS.md, "Add a method"): ``BootstrapMethod`` and ``SimCLR``
    have it, and any ``nn.Module`` has the state dict methods; ``build_method`` refuses a registered method that
    lacks a member."""

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
    if not isinstance(method, TrainableMethod):
        missing = [n for n in ("online", "targets", "num_views", "encoder", "update_targets") if not hasattr(method, n)]
        raise ValueError(
            f"method '{recipe.method.name}' built a {type(method).__name__} without {', '.join(missing)}: "
            "a method needs online, targets, num_views, encoder and update_targets (docs/CONTRACTS.md, 'Add a method')"
        )
    return method
