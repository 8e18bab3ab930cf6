"""BYOL (Grill et al., NeurIPS 2020): two views, one EMA target, symmetrized loss summed (eq. 4)."""

from __future__ import annotations

from ..engine.bootstrap import BootstrapMethod, Pair
from ..registry import METHODS


def byol_pairs(symmetric: bool) -> list[Pair]:
    """BYOL's view pairs: online view 0 predicts target view 1 (and, symmetric, 1 predicts 0), weight 1 each."""
    return [Pair(0, 0, 1)] + ([Pair(1, 0, 0)] if symmetric else [])


@METHODS.register("byol")
def byol(encoder, projector, predictor, ema, symmetric: bool = True) -> BootstrapMethod:
    """BYOL: L = L(p1, sg z2′) + L(p2, sg z1′) (symmetric) or L(p1, sg z2′) alone."""
    return BootstrapMethod(encoder, projector, predictor, ema, byol_pairs(symmetric))
