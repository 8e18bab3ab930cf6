"""TriBYOL (Li, Togo, Ogawa, Haseyama, ICASSP 2022): one online network, two target networks that do
not share weights, three views.

Target 1 sees views (x1, x2), target 2 sees (x1, x3); with L(p, z) = 2 − 2·cos(p, sg z):

    L = ½[L(p1, z2⁽¹⁾) + L(p2, z1⁽¹⁾)] + ½[L(p1, z3⁽²⁾) + L(p3, z1⁽²⁾)]

Both targets start as copies of the online network; they must drift apart, so by default they are
updated by EMA alternately (target (step mod 2) at each step: ``target_update: alternate``). The recipe
may instead update both every step with different rates: ``target_update: all, taus: [0.99, 0.996]``
(each τ follows ``ema.schedule`` from its own base). The recipe's ``views.branches`` must give three views.
"""

from __future__ import annotations

from typing import Literal, Optional

from ..engine.bootstrap import BootstrapMethod, Pair
from ..registry import METHODS


@METHODS.register("tribyol")
def tribyol(
    encoder,
    projector,
    predictor,
    ema,
    target_update: Literal["alternate", "all"] = "alternate",
    taus: Optional[list] = None,
) -> BootstrapMethod:
    """TriBYOL: 3 views, 2 EMA targets (alternate updates by default), ½ of each BYOL loss summed."""
    if taus is not None:
        taus = [float(t) for t in taus]
    pairs = [
        Pair(0, 0, 1, 0.5),
        Pair(1, 0, 0, 0.5),  # target 1 on (x1, x2)
        Pair(0, 1, 2, 0.5),
        Pair(2, 1, 0, 0.5),
    ]  # target 2 on (x1, x3)
    return BootstrapMethod(
        encoder, projector, predictor, ema, pairs, num_targets=2, target_update=target_update, taus=taus
    )
