"""CCSL — BYOL with Self-Labeling Refinement, hard selection (Garg & Jain 2022).

Adds λ·mean over {i ≠ j : A_ij > γ} of (2 − 2·cos(p_i, z′_j)) to the BYOL loss, with
A_ij = sg(cos(z′_i, z′_j)) the target network's affinity; see ``ssl_toolkit/engine/self_labeling.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from ..engine.self_labeling import SelfLabelingMethod
from ..params import NonNegativeFloat, Probability, Range
from ..registry import METHODS
from .byol import byol_pairs


@METHODS.register("ccsl")
def ccsl(
    encoder,
    projector,
    predictor,
    ema,
    lam: NonNegativeFloat = 0.5,
    gamma: Annotated[float, Range("[-1, 1]")] = 0.9,
    ramp: Probability = 0.25,
    symmetric: bool = True,
    target_mode: Literal["ema", "online"] = "ema",
) -> SelfLabelingMethod:
    """BYOL + CCSL: λ·mean of 2 − 2cos(p_i, z′_j) over batch pairs whose target affinity exceeds γ."""
    return SelfLabelingMethod(
        encoder,
        projector,
        predictor,
        ema,
        byol_pairs(symmetric),
        mode="ccsl",
        lam=lam,
        gamma=gamma,
        ramp=ramp,
        target_mode=target_mode,
    )
