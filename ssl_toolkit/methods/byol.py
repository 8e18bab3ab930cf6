"""BYOL (Grill et al., NeurIPS 2020): two views, one EMA target, symmetrized loss summed (eq. 4)."""

from __future__ import annotations

from ..engine.bootstrap import BootstrapMethod, Pair
from ..registry import METHODS


@METHODS.register("byol")
def byol(encoder, projector, predictor, ema, symmetric: bool = True) -> BootstrapMethod:
    """BYOL: L = L(p1, sg z2′) + L(p2, sg z1′) (symmetric) or L(p1, sg z2′) alone."""
    pairs = [Pair(0, 0, 1)] + ([Pair(1, 0, 0)] if symmetric else [])
    return BootstrapMethod(encoder, projector, predictor, ema, pairs)
