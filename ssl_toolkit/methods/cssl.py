"""CSSL — BYOL with Self-Labeling Refinement, soft selection (Garg & Jain 2022).

Adds λ·Σ w_ij (2 − 2·cos(p_i, z′_j)) / Σ w_ij over i ≠ j to the BYOL loss, with
w_ij = σ((A_ij − γ)/T) and A_ij = sg(cos(z′_i, z′_j)); see ``ssl_toolkit/engine/self_labeling.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from ..engine.self_labeling import SelfLabelingMethod
from ..params import NonNegativeFloat, PositiveFloat, Probability, Range
from ..registry import METHODS
from .byol import byol_pairs


@METHODS.register("cssl")
def cssl(
    encoder,
    projector,
    predictor,
    ema,
    lam: NonNegativeFloat = 0.5,
    gamma: Annotated[float, Range("[-1, 1]")] = 0.9,
    temperature: PositiveFloat = 0.05,
    ramp: Probability = 0.25,
    symmetric: bool = True,
    target_mode: Literal["ema", "online"] = "ema",
) -> SelfLabelingMethod:
    """BYOL + CSSL: every batch pair weighted by σ((A_ij − γ)/T), A = target affinity."""
    return SelfLabelingMethod(
        encoder,
        projector,
        predictor,
        ema,
        byol_pairs(symmetric),
        mode="cssl",
        lam=lam,
        gamma=gamma,
        temperature=temperature,
        ramp=ramp,
        target_mode=target_mode,
    )
