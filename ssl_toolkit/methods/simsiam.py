"""SimSiam (Chen & He, CVPR 2021): no momentum target — the target is the online encoder/projector
itself under stop-gradient (``target_mode: online``), on the same engine as BYOL.

SimSiam minimizes L = ½D(p1, sg z2) + ½D(p2, sg z1) with D = −cos. The engine's pair loss is
2 − 2cos, so each direction gets weight ¼: the loss is 1 + L_SimSiam with exactly SimSiam's
gradients (the logged loss lies in [0, 2] instead of [−1, 1]). The ``ema`` section is unused
(the logged τ is just the schedule's value).
"""

from __future__ import annotations

from ..engine.bootstrap import BootstrapMethod, Pair
from ..registry import METHODS


@METHODS.register("simsiam")
def simsiam(encoder, projector, predictor, ema, symmetric: bool = True) -> BootstrapMethod:
    """SimSiam: target = the online network under stop-gradient; L = ½D(p1, sg z2) + ½D(p2, sg z1)."""
    pairs = [Pair(0, 0, 1, 0.25), Pair(1, 0, 0, 0.25)] if symmetric else [Pair(0, 0, 1, 0.5)]
    return BootstrapMethod(encoder, projector, predictor, ema, pairs, target_mode="online")
