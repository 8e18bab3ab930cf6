"""BYOL-A audio encoders on log-mel input (B, 1, n_mels, T).

- ``audiontt2020`` (BYOL-A v1): three blocks [3×3 conv → norm → ReLU → 2×2 max-pool], each time
  frame's (mel, channel) map flattened mel-major, then an MLP [Linear → ReLU → Dropout(0.3) →
  Linear → ReLU] to ``feature_d`` per frame (T' = T/8).
- ``audiontt2022`` (BYOL-A v2): two conv blocks (T' = T/4); each frame is the concatenation of the
  conv features (64·n_mels/4) and an MLP of them, ``feature_d`` in total.

``norm`` (bn | gn | gn_ws | none, :mod:`ssl_toolkit.engine.norms`; BatchNorm in the official models)
is the conv blocks' normalization. The blocks run max-pool before ReLU and use the fast-path layers
of :mod:`.layers` (same outputs, gradients and dropout distribution as the official torch layers).

``forward_frames(x)`` gives (B, T', D); ``forward(x)`` the clip embedding, max over time + mean
over time, (B, feature_dim). Parameter names follow the official layout (``features.*``,
``fc.*``), so :func:`load_official_weights` reads released BYOL-A weights directly.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from torch import nn

from ..checkpoint import state_dict_mismatch
from ..engine.norms import Norm, conv_layer, make_norm
from ..params import PositiveInt, Rate
from ..registry import ENCODERS
from .layers import Dropout, MaxPool2x2


def _conv_block(in_ch: int, out_ch: int, norm: str) -> list[nn.Module]:
    """[conv, norm, max-pool, ReLU]: four modules, parameters at the official indices (0, 1).

    The official order is ReLU → max-pool; ReLU is monotonic, so max(relu(a), relu(b)) = relu(max(a, b))
    and the swapped order gives the same outputs and the same gradients while ReLU (forward and backward)
    touches a quarter of the elements; in place, since max-pool's backward keeps its input, not its output.
    """
    return [
        conv_layer(norm)(in_ch, out_ch, 3, stride=1, padding=1),
        make_norm(norm, out_ch, dims=2),
        MaxPool2x2(),
        nn.ReLU(inplace=True),
    ]


def _flatten_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, T) → (B, T, F·C), mel-major per frame."""
    x = x.permute(0, 3, 2, 1)
    b, t, f, c = x.shape
    return x.reshape(b, t, f * c)


def _pool(frames: torch.Tensor) -> torch.Tensor:
    return frames.max(dim=1).values + frames.mean(dim=1)


class _AudioNTT(nn.Module):
    modality = "audio"
    frame_stride: int
    """Log-mel frames per output frame (the time pooling of the conv blocks): frame k pools frames
    [k·stride, (k+1)·stride)."""
    features: nn.Sequential
    fc: nn.Sequential
    feature_dim: int

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool(self.forward_frames(x))

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise ValueError(f"{type(self).__name__} expects log-mels (B, 1, {self.n_mels}, T), got {tuple(x.shape)}")
        return x


@ENCODERS.register("audiontt2020")
class AudioNTT2020(_AudioNTT):
    """BYOL-A v1 encoder: 3 conv blocks + 2-layer MLP per frame; embedding = max + mean over time."""

    frame_stride = 8

    def __init__(self, n_mels: PositiveInt = 64, feature_d: PositiveInt = 512, norm: Norm = "bn", dropout: Rate = 0.3):
        super().__init__()
        if n_mels % 8:
            raise ValueError(f"audiontt2020 needs n_mels divisible by 8, got {n_mels}")
        self.n_mels, self.feature_dim, self.norm = n_mels, int(feature_d), norm
        self.features = nn.Sequential(*_conv_block(1, 64, norm), *_conv_block(64, 64, norm), *_conv_block(64, 64, norm))
        self.fc = nn.Sequential(
            nn.Linear(64 * (n_mels // 8), feature_d),
            nn.ReLU(),
            Dropout(p=dropout),
            nn.Linear(feature_d, feature_d),
            nn.ReLU(),
        )

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(_flatten_frames(self.features(self._check_input(x))))


@ENCODERS.register("audiontt2022")
class AudioNTT2022(_AudioNTT):
    """BYOL-A v2 encoder: 2 conv blocks; frame = concat(conv features, MLP of them); embedding = max + mean."""

    frame_stride = 4

    def __init__(
        self,
        n_mels: PositiveInt = 64,
        feature_d: PositiveInt = 3072,
        mlp_hidden_d: PositiveInt = 2048,
        norm: Norm = "bn",
        dropout: Rate = 0.3,
    ):
        super().__init__()
        if n_mels % 4:
            raise ValueError(f"audiontt2022 needs n_mels divisible by 4, got {n_mels}")
        conv_d = 64 * (n_mels // 4)
        if feature_d <= conv_d:
            raise ValueError(
                f"audiontt2022 feature_d must exceed the conv feature size 64*n_mels/4 = {conv_d}, got {feature_d}"
            )
        self.n_mels, self.feature_dim, self.norm, self.conv_d = n_mels, int(feature_d), norm, conv_d
        self.features = nn.Sequential(*_conv_block(1, 64, norm), *_conv_block(64, 64, norm))
        self.fc = nn.Sequential(
            nn.Linear(conv_d, mlp_hidden_d),
            nn.ReLU(),
            Dropout(p=dropout),
            nn.Linear(mlp_hidden_d, feature_d - conv_d),
            nn.ReLU(),
        )

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        conv = _flatten_frames(self.features(self._check_input(x)))
        return torch.cat([conv, self.fc(conv)], dim=-1)


_WRAPPERS = ("state_dict", "model", "encoder", "online_encoder")
_PREFIXES = ("module.", "model.", "encoder.", "backbone.", "net.")


def official_state_dict(obj) -> "OrderedDict[str, torch.Tensor]":
    """The ``features.*`` / ``fc.*`` tensors of an official (or wrapped) BYOL-A weight file."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state dict, got {type(obj).__name__}")
    state = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    changed = True
    while changed and state and not any(k.startswith(("features.", "fc.")) for k in state):
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in state):
                state = OrderedDict((k[len(p) :], v) for k, v in state.items())
                changed = True
                break
    return state


def load_official_weights(encoder: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load official BYOL-A weights (``features.*``, ``fc.*``; possibly wrapped in ``state_dict`` or
    ``model``, or prefixed by ``module.``) into ``encoder`` with ``torch.load(weights_only=True)``."""
    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    state = official_state_dict(obj)
    if strict:
        problem = state_dict_mismatch(encoder.state_dict(), state, limit=6)
        if problem:
            raise ValueError(
                f"{path}: weights do not fit {type(encoder).__name__}"
                f"(feature_d={getattr(encoder, 'feature_dim', '?')}, "
                f"norm={getattr(encoder, 'norm', '?')}): " + problem
            )
    encoder.load_state_dict(state, strict=strict)
    return encoder
