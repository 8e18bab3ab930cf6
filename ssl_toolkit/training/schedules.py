"""Learning-rate schedules as step → multiplier functions, stepped per iteration."""

from __future__ import annotations

import math
from typing import Callable

from ..params import NonNegativeFloat, NonNegativeInt, Probability
from ..registry import SCHEDULES


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: NonNegativeFloat = 0.0,
    warmup_steps: NonNegativeInt = 0,
    final_ratio: Probability = 0.0,
) -> Callable[[int], float]:
    """Linear warmup over warmup_epochs (or warmup_steps), then cosine decay to final_ratio × lr (BYOL §3.3)."""
    warm = warmup_steps or int(round(warmup_epochs * steps_per_epoch))
    warm = min(warm, total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        span = max(1, total_steps - warm)
        progress = min(1.0, (step - warm) / span)
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@SCHEDULES.register("constant")
def constant(
    total_steps: int, steps_per_epoch: int, warmup_epochs: NonNegativeFloat = 0.0, warmup_steps: NonNegativeInt = 0
) -> Callable[[int], float]:
    """Constant learning rate, with an optional linear warmup."""
    warm = min(warmup_steps or int(round(warmup_epochs * steps_per_epoch)), total_steps)
    return lambda step: (step + 1) / warm if step < warm else 1.0
