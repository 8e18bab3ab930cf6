"""Batch-independent normalization for the heads (Richemond et al. 2020, "BYOL works even without
batch statistics"): GroupNorm with 16 groups after weight-standardized layers.

The encoders implement the same switch for their convolutions (``norm: bn | gn_ws | none`` in
``ssl_toolkit/image/encoders.py`` and ``ssl_toolkit/audio/encoders.py``); this module gives the MLP
heads the matching pieces: :class:`WSLinear` (each output unit's weight row standardized to zero
mean and unit variance before use) and :func:`group_norm` (16 groups, or the largest divisor of the
width that is ≤ 16).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("bn", "gn", "gn_ws", "none")
GN_GROUPS = 16


def group_norm(dim: int, groups: int = GN_GROUPS) -> nn.GroupNorm:
    """GroupNorm over ``dim`` channels with ``groups`` groups (or gcd(groups, dim) when it does not divide)."""
    return nn.GroupNorm(groups if dim % groups == 0 else math.gcd(groups, dim), dim)


def standardize_weight(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Weight standardization (Qiao et al. 2019): every output row to zero mean, unit (biased) variance."""
    dims = tuple(range(1, w.ndim))
    var, mean = torch.var_mean(w, dim=dims, keepdim=True, unbiased=False)
    return (w - mean) * torch.rsqrt(var + eps)


class WSLinear(nn.Linear):
    """Linear layer with weight standardization; the standardization is part of the graph, so the
    gradient flows through it to the raw weight."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, standardize_weight(self.weight, self.eps), self.bias)
