"""Plain-tensor components: a synthetic dataset, an MLP encoder and vector augmentations.

They let the engine be used and tested on tensors alone, without any modality.
"""

from __future__ import annotations

import torch
from torch import nn

from .engine.norms import Norm, linear_layer, make_norm
from .params import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from .registry import AUGMENTATIONS, DATASETS, ENCODERS
from .views import BatchAugmentation, RandomOp, uniform


@DATASETS.register("gaussian_clusters")
class GaussianClusters(torch.utils.data.Dataset):
    """Synthetic vectors around `num_classes` random centres (labels known), for tests and smoke runs."""

    def __init__(
        self,
        size: PositiveInt = 512,
        dim: PositiveInt = 16,
        num_classes: PositiveInt = 4,
        spread: NonNegativeFloat = 0.5,
        seed: NonNegativeInt = 0,
    ):
        if size < 0:
            raise ValueError(f"gaussian_clusters: size must be >= 0, got {size}")
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(num_classes, dim, generator=g) * 2
        self.labels = torch.randint(num_classes, (size,), generator=g)
        self.x = centres[self.labels] + spread * torch.randn(size, dim, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.labels[i])


@ENCODERS.register("mlp_encoder")
class MLPEncoder(nn.Module):
    """Vector encoder: (Linear → norm → ReLU) × depth; feature_dim = hidden_dim; norm bn|gn|gn_ws|none."""

    modality = "vector"

    def __init__(
        self, in_dim: PositiveInt = 16, hidden_dim: PositiveInt = 64, depth: PositiveInt = 2, norm: Norm = "bn"
    ):
        super().__init__()
        layers, dim, linear = [], in_dim, linear_layer(norm)
        for _ in range(depth):
            layers += [linear(dim, hidden_dim), make_norm(norm, hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        self.net = nn.Sequential(*layers)
        self.feature_dim = hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@AUGMENTATIONS.register("gaussian_noise")
class GaussianNoise(RandomOp):
    """x + σ·N(0, 1), σ ~ U[0, max_std) drawn per sample."""

    def __init__(self, max_std: NonNegativeFloat = 0.1):
        super().__init__()
        self.max_std = max_std

    def sample_params(
        self, batch_size: int, device, generator=None, sample_shape: tuple = (), dtype: torch.dtype = torch.float32
    ) -> dict:
        """σ per sample, then the noise of a (batch_size, *sample_shape) batch."""
        return {
            "std": uniform(batch_size, 0.0, self.max_std, device, generator),
            "noise": torch.randn((batch_size, *sample_shape), device=device, dtype=dtype, generator=generator),
        }

    def make_params(self, x: torch.Tensor, generator=None) -> dict:
        return self.sample_params(x.shape[0], x.device, generator, tuple(x.shape[1:]), x.dtype)

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        return x + params["std"].view(-1, *[1] * (x.ndim - 1)).to(x.dtype) * params["noise"]


@AUGMENTATIONS.register("random_scale")
class RandomScale(RandomOp):
    """x · s, s ~ U[low, high) drawn per sample."""

    def __init__(self, low: PositiveFloat = 0.8, high: PositiveFloat = 1.2):
        super().__init__()
        self.low, self.high = low, high

    def sample_params(self, batch_size: int, device, generator=None) -> dict:
        return {"scale": uniform(batch_size, self.low, self.high, device, generator)}

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        return x * params["scale"].view(-1, *[1] * (x.ndim - 1)).to(x.dtype)


@AUGMENTATIONS.register("identity")
class Identity(BatchAugmentation):
    """Returns its input unchanged."""

    eval_frontend = True

    def forward(self, x, generator=None):
        return x
