"""Losses of the BYOL family."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL eq. 2, per sample: ‖p̄ − z̄‖² = 2 − 2·cos(p, z), with z detached (stop-gradient).

    Returns a (B,) tensor; callers average over the batch and SUM over view pairs (eq. 4).
    """
    return 2.0 - 2.0 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1, eps=1e-12)
