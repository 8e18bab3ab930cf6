"""ResNet encoders: torchvision layout, CIFAR stem, width multiplier, bn | gn_ws | none."""

import pytest
import torch
import torchvision
from torch import nn

from ssl_toolkit.image.encoders import WSConv2d
from ssl_toolkit.registry import ENCODERS


def build(name, **params):
    return ENCODERS.build(name, **params)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_width_one_is_torchvision_without_fc(name):
    ours = build(name)
    ref = getattr(torchvision.models, name)(weights=None)
    ref_shapes = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == ref_shapes
    assert ours.feature_dim == ref.fc.in_features
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    ref.fc = nn.Identity()
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


@pytest.mark.parametrize(
    "name,width,dim", [("resnet18", 0.25, 128), ("resnet18", 0.5, 256), ("resnet50", 0.25, 512), ("resnet34", 0.5, 256)]
)
def test_width_multiplier_and_cifar_stem(name, width, dim):
    enc = build(name, cifar_stem=True, width=width)
    assert enc.feature_dim == dim
    assert enc.conv1.kernel_size == (3, 3) and enc.conv1.stride == (1, 1)
    assert isinstance(enc.maxpool, nn.Identity)
    assert enc.layer1[0].conv1.in_channels == round(64 * width)
    x = torch.randn(4, 3, 32, 32)
    assert enc(x).shape == (4, dim)
    assert enc.forward_maps(x).shape == (4, dim, 4, 4)  # stride 8 overall with the CIFAR stem


def test_standard_stem_downsamples_32x():
    enc = build("resnet18", width=0.25)
    assert enc.conv1.kernel_size == (7, 7) and isinstance(enc.maxpool, nn.MaxPool2d)
    assert enc.forward_maps(torch.randn(1, 3, 64, 64)).shape[-2:] == (2, 2)


def test_narrow_cpu_resnet_is_small():
    enc = build("resnet18", cifar_stem=True, width=0.25)
    assert 0.6e6 < sum(p.numel() for p in enc.parameters()) < 0.8e6  # 11.2M / 16


def test_gn_ws_replaces_batchnorm_and_standardizes_weights():
    enc = build("resnet18", cifar_stem=True, width=0.25, norm="gn_ws")
    mods = list(enc.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods)
    gns = [m for m in mods if isinstance(m, nn.GroupNorm)]
    # the rule of engine/norms.py by hand: 16 groups from 64 channels on, else groups of 4 channels
    hand = {16: 4, 32: 8, 64: 16, 128: 16}
    assert gns and {m.num_channels for m in gns} == set(hand)
    assert all(m.num_groups == hand[m.num_channels] for m in gns)
    convs = [m for m in mods if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, WSConv2d) for m in convs)
    # the standardization makes the output invariant to an affine change of a filter
    conv = enc.conv1
    x = torch.randn(2, 3, 8, 8)
    y = conv(x)
    with torch.no_grad():
        conv.weight.add_(0.5)
    assert torch.allclose(conv(x), y, atol=1e-4)
    with torch.no_grad():
        conv.weight.mul_(3.0)
    assert torch.allclose(conv(x), y, rtol=1e-2, atol=1e-2)  # up to the eps in the variance
    # no batch statistics: a sample's features do not depend on the rest of the batch, even in train mode
    enc.train()
    x = torch.randn(8, 3, 32, 32)
    assert torch.allclose(enc(x)[:2], enc(x[:2]), atol=1e-5)


def test_norm_none_has_no_normalization():
    enc = build("resnet18", cifar_stem=True, width=0.25, norm="none")
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) for m in enc.modules())
    assert isinstance(enc.bn1, nn.Identity)
    assert torch.isfinite(enc(torch.randn(2, 3, 32, 32))).all()


def test_bad_norm_is_rejected():
    with pytest.raises(ValueError, match="gn_ws"):
        build("resnet18", norm="layer")


def test_zero_init_residual_and_bf16_autocast():
    enc = build("resnet18", cifar_stem=True, width=0.25, zero_init_residual=True)
    assert (enc.layer1[0].bn2.weight == 0).all()
    x = torch.randn(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = enc(x)
    assert y.shape == (4, 128) and torch.isfinite(y).all()
    y.float().sum().backward()
    assert enc.conv1.weight.grad is not None
