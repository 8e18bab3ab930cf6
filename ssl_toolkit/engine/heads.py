"""Projector / predictor heads (BYOL §3.3: Linear → BN → ReLU → Linear)."""

from __future__ import annotations

from torch import nn

from ..params import PositiveInt
from ..registry import HEADS
from .norms import Norm, linear_layer, make_norm


@HEADS.register("mlp")
class MLPHead(nn.Sequential):
    """MLP head: (Linear → norm → ReLU) × (num_layers−1) → Linear, as BYOL's projector and predictor.

    norm: ``bn`` | ``gn`` | ``gn_ws`` (GroupNorm after weight-standardized Linear layers: batch-independent,
    Richemond et al. 2020) | ``none``; see :mod:`ssl_toolkit.engine.norms`. ``last_bias=False`` drops the last
    Linear's bias (DeepMind's BYOL MLP has none there). ``last_norm`` normalizes the output too (SimCLR, SimSiam);
    ``last_norm_shift=False`` leaves out that norm's learned offset β (the official SimCLR head's last layer has
    "neither bias nor ReLU": its BatchNorm has ``center=False``), ``last_norm_scale=False`` its learned scale γ
    (both false: the official SimSiam projector's output ``BatchNorm1d(dim, affine=False)``).
    """

    def __init__(
        self,
        in_dim: PositiveInt,
        hidden_dim: PositiveInt = 4096,
        out_dim: PositiveInt = 256,
        num_layers: PositiveInt = 2,
        norm: Norm = "bn",
        last_norm: bool = False,
        last_bias: bool = True,
        last_norm_shift: bool = True,
        last_norm_scale: bool = True,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        for key, kept, what in (
            ("last_norm_shift", last_norm_shift, "offset"),
            ("last_norm_scale", last_norm_scale, "scale"),
        ):
            if not kept and not (last_norm and norm != "none"):
                raise ValueError(f"{key}: false removes the output norm's {what}: it needs last_norm: true and a norm")
        layers: list[nn.Module] = []
        dim = in_dim
        linear = linear_layer(norm)
        for _ in range(num_layers - 1):
            layers += [linear(dim, hidden_dim), make_norm(norm, hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append((linear if last_norm else nn.Linear)(dim, out_dim, bias=last_bias))
        if last_norm:
            layers.append(make_norm(norm, out_dim, shift=last_norm_shift, scale=last_norm_scale))
        super().__init__(*layers)
        self.out_dim = out_dim
