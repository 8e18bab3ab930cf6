"""ResNet encoders (torchvision's architecture, random init) with a CIFAR stem, a width multiplier and
a choice of normalization; the classifier is removed and ``forward`` returns pooled features.

- ``cifar_stem: true`` replaces the 7×7/2 convolution + max-pool by a 3×3/1 convolution (for 32×32 inputs).
- ``width`` multiplies every channel count (0.25 → 16-32-64-128 channels for ResNet-18).
- ``norm``: ``bn`` | ``gn`` | ``gn_ws`` | ``none`` (:mod:`ssl_toolkit.engine.norms`: its group rule, and
  weight-standardized convolutions for ``gn_ws``, which need no batch statistics).

With width 1, the standard stem and ``norm: bn`` the module and its state dict (minus ``fc``) are
exactly torchvision's ``resnet18/34/50`` (same module names, shapes and initialization; ResNet-50 has the
stride on the 3×3 convolution, "v1.5"), so its weights load directly. The blocks are defined here so that
registering the encoders does not import torchvision (seconds of start-up for every command).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..engine.norms import Norm, WSConv2d, make_norm
from ..params import PositiveFloat, PositiveInt
from ..registry import ENCODERS


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer=nn.BatchNorm2d,
    ):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 convolutions with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer=nn.BatchNorm2d,
    ):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _2d(v: tuple[int, ...]) -> tuple[int, int]:
    return v[0], v[1]


def _to_ws(module: nn.Module) -> None:
    """Replace every Conv2d below ``module`` by a weight-standardized one (same configuration)."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d:
            ws = WSConv2d(
                child.in_channels,
                child.out_channels,
                _2d(child.kernel_size),
                _2d(child.stride),
                child.padding if isinstance(child.padding, str) else _2d(child.padding),
                _2d(child.dilation),
                child.groups,
                child.bias is not None,
                child.padding_mode,
            )
            setattr(module, name, ws)
        else:
            _to_ws(child)


class ResNetEncoder(nn.Module):
    """A torchvision-layout ResNet trunk returning globally pooled features of size ``feature_dim``."""

    modality = "image"

    def __init__(
        self,
        block,
        layers: list[int],
        *,
        cifar_stem: bool = False,
        width: float = 1.0,
        norm: str = "bn",
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"resnet: width must be positive, got {width}")
        norm_layer = functools.partial(make_norm, norm, dims=2)  # raises on an unknown norm
        self.norm, self.width, self.cifar_stem = norm, float(width), bool(cifar_stem)

        def ch(c: int) -> int:
            return max(1, int(round(c * width)))

        self.inplanes = ch(64)
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, ch(64), layers[0], 1, norm_layer)
        self.layer2 = self._make_layer(block, ch(128), layers[1], 2, norm_layer)
        self.layer3 = self._make_layer(block, ch(256), layers[2], 2, norm_layer)
        self.layer4 = self._make_layer(block, ch(512), layers[3], 2, norm_layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = ch(512) * block.expansion
        del self.inplanes
        if norm == "gn_ws":
            _to_ws(self)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual and norm != "none":
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    last = m.bn3 if isinstance(m, Bottleneck) else m.bn2
                    nn.init.zeros_(last.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, norm_layer) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride), norm_layer(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_layer=norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, feature_dim, h, w) before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.forward_maps(x)), 1)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, width={self.width}, norm={self.norm!r}, cifar_stem={self.cifar_stem}"


@ENCODERS.register("resnet18")
def resnet18(
    cifar_stem: bool = False,
    width: PositiveFloat = 1.0,
    norm: Norm = "bn",
    in_channels: PositiveInt = 3,
    zero_init_residual: bool = False,
) -> ResNetEncoder:
    """ResNet-18 trunk (512·width features); cifar_stem for 32×32 images, norm bn|gn|gn_ws|none."""
    return ResNetEncoder(
        BasicBlock,
        [2, 2, 2, 2],
        cifar_stem=cifar_stem,
        width=width,
        norm=norm,
        in_channels=in_channels,
        zero_init_residual=zero_init_residual,
    )


@ENCODERS.register("resnet34")
def resnet34(
    cifar_stem: bool = False,
    width: PositiveFloat = 1.0,
    norm: Norm = "bn",
    in_channels: PositiveInt = 3,
    zero_init_residual: bool = False,
) -> ResNetEncoder:
    """ResNet-34 trunk (512·width features); cifar_stem for 32×32 images, norm bn|gn|gn_ws|none."""
    return ResNetEncoder(
        BasicBlock,
        [3, 4, 6, 3],
        cifar_stem=cifar_stem,
        width=width,
        norm=norm,
        in_channels=in_channels,
        zero_init_residual=zero_init_residual,
    )


@ENCODERS.register("resnet50")
def resnet50(
    cifar_stem: bool = False,
    width: PositiveFloat = 1.0,
    norm: Norm = "bn",
    in_channels: PositiveInt = 3,
    zero_init_residual: bool = False,
) -> ResNetEncoder:
    """ResNet-50 trunk (2048·width features); cifar_stem for 32×32 images, norm bn|gn|gn_ws|none."""
    return ResNetEncoder(
        Bottleneck,
        [3, 4, 6, 3],
        cifar_stem=cifar_stem,
        width=width,
        norm=norm,
        in_channels=in_channels,
        zero_init_residual=zero_init_residual,
    )
