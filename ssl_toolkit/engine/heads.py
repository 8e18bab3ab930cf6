"""Projector / predictor heads (BYOL §3.3: Linear → BN → ReLU → Linear)."""
from __future__ import annotations

from torch import nn

from ..registry import HEADS
from .norms import WSLinear, group_norm


def feature_norm(kind: str, dim: int) -> nn.Module:
    """Normalization of (B, dim) features: BatchNorm, GroupNorm (16 groups) or none.

    ``gn_ws`` gives the same GroupNorm as ``gn`` here; the weight standardization half of it is
    the Linear layer in front (see :class:`MLPHead`).
    """
    if kind == "bn":
        return nn.BatchNorm1d(dim)
    if kind == "gn":
        return nn.GroupNorm(16 if dim % 16 == 0 else 1, dim)
    if kind == "gn_ws":
        return group_norm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of bn, gn, gn_ws, none; got {kind!r}")


@HEADS.register("mlp")
class MLPHead(nn.Sequential):
    """MLP head: (Linear → norm → ReLU) × (num_layers−1) → Linear, as BYOL's projector and predictor.

    norm: ``bn`` | ``gn`` (GroupNorm) | ``gn_ws`` (GroupNorm, 16 groups, after weight-standardized
    Linear layers: batch-independent, Richemond et al. 2020) | ``none``.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 2,
                 norm: str = "bn", last_norm: bool = False):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        linear = WSLinear if norm == "gn_ws" else nn.Linear
        for _ in range(num_layers - 1):
            layers += [linear(dim, hidden_dim), feature_norm(norm, hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(linear(dim, out_dim) if last_norm else nn.Linear(dim, out_dim))
        if last_norm:
            layers.append(feature_norm(norm, out_dim))
        super().__init__(*layers)
        self.out_dim = out_dim
