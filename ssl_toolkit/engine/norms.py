"""The normalization switch of every encoder and head: ``norm: bn | gn | gn_ws | none``.

- ``bn``: BatchNorm (Ioffe & Szegedy 2015), BYOL's choice (Grill et al. 2020).
- ``gn``: GroupNorm (Wu & He 2018).
- ``gn_ws``: GroupNorm after weight-standardized convolutions / linear layers (Qiao et al. 2019):
  no batch statistics, and BYOL still trains (Richemond et al. 2020, "BYOL works even without batch
  statistics", GroupNorm with 16 groups + weight standardization).
- ``none``: Identity.

Group rule, for ``gn`` and ``gn_ws`` at every width C: the most groups g ≤ 16 that divide C with at least 4
channels each (1 group below 8 channels). From 64 channels on that is 16 groups, Richemond et al. 2020's setting
on ResNet-50 (whose narrowest layer, 64 channels, has 4 per group); narrower layers get fewer groups instead of
turning into InstanceNorm: with 16 groups of 1 channel in the 16-channel stem and layer1 of the width-0.25
ResNet-18, GN+WS BYOL collapsed where this rule trains (benchmarks/results/gn_ws_diagnostics.md).

:func:`make_norm` builds the layer for 1-d features (B, C) or 2-d maps (B, C, H, W);
:func:`linear_layer` / :func:`conv_layer` give the matching weight layer class (:class:`WSLinear` /
:class:`WSConv2d` for ``gn_ws``, else the plain torch one).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("bn", "gn", "gn_ws", "none")
Norm = Literal["bn", "gn", "gn_ws", "none"]  # = NORMS
"""The ``norm`` parameter of encoders and heads."""
GN_GROUPS = 16
GN_MIN_CHANNELS = 4


def check_norm(norm: str) -> str:
    """``norm`` if it is one of :data:`NORMS`, else ValueError."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return norm


def gn_groups(channels: int, groups: int = GN_GROUPS, min_channels: int = GN_MIN_CHANNELS) -> int:
    """The most groups g ≤ ``groups`` dividing ``channels`` with ≥ ``min_channels`` channels per group (else 1)."""
    return max((g for g in range(1, groups + 1) if channels % g == 0 and channels // g >= min_channels), default=1)


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with :func:`gn_groups` groups."""
    return nn.GroupNorm(gn_groups(channels), channels, affine=affine)


def make_norm(norm: str, channels: int, dims: int = 1, shift: bool = True, scale: bool = True) -> nn.Module:
    """The ``norm`` layer over ``channels``: of features (B, C) for ``dims=1``, of maps (B, C, H, W) for 2.
    ``shift=False`` leaves out the learned offset β (TensorFlow's ``center=False``, SimCLR's output BatchNorm),
    ``scale=False`` the learned scale γ (TensorFlow's ``scale=False``); without both the layer has no parameters
    (torch's ``affine=False``: SimSiam's output BatchNorm). Encoders keep both (their init sets γ and β)."""
    check_norm(norm)
    if dims not in (1, 2):
        raise ValueError(f"make_norm: dims must be 1 or 2, got {dims}")
    affine = shift or scale
    if norm == "bn":
        layer: nn.Module = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels, affine=affine)
    elif norm in ("gn", "gn_ws"):
        layer = group_norm(channels, affine)
    else:
        return nn.Identity()
    if affine and not shift:
        layer.register_parameter("bias", None)  # torch's batch_norm / group_norm take a missing β or γ as none
    if affine and not scale:
        layer.register_parameter("weight", None)
    return layer


def standardize_weight(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Weight standardization (Qiao et al. 2019): every output row to zero mean, unit (biased) variance."""
    dims = tuple(range(1, w.ndim))
    var, mean = torch.var_mean(w, dim=dims, keepdim=True, unbiased=False)
    return (w - mean) * torch.rsqrt(var + eps)


class WSLinear(nn.Linear):
    """Linear layer with a weight-standardized weight; the gradient flows through the standardization."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, standardize_weight(self.weight, self.eps), self.bias)


class WSConv2d(nn.Conv2d):
    """Conv2d with weight-standardized filters (timm's StdConv2d); same parameters as ``nn.Conv2d``."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, standardize_weight(self.weight, self.eps), self.bias)


def linear_layer(norm: str) -> type[nn.Linear]:
    """The linear layer class that goes with ``norm`` (:class:`WSLinear` for ``gn_ws``)."""
    return WSLinear if check_norm(norm) == "gn_ws" else nn.Linear


def conv_layer(norm: str) -> type[nn.Conv2d]:
    """The Conv2d class that goes with ``norm`` (:class:`WSConv2d` for ``gn_ws``)."""
    return WSConv2d if check_norm(norm) == "gn_ws" else nn.Conv2d
