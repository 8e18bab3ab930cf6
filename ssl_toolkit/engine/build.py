"""The method a recipe names: encoder → projector → predictor → method, built from the registries."""

from __future__ import annotations

from torch import nn

from ..registry import ENCODERS, HEADS, METHODS


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
    return METHODS.build(
        recipe.method.name,
        encoder=encoder,
        projector=projector,
        predictor=predictor,
        ema=recipe.ema,
        **recipe.method.params,
    )
