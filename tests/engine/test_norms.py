"""The one norm factory (engine/norms.py): every kind, its group rule, and weight standardization."""

import copy

import pytest
import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.norms import (
    NORMS,
    WSConv2d,
    WSLinear,
    conv_layer,
    gn_groups,
    linear_layer,
    make_norm,
    standardize_weight,
)
from ssl_toolkit.registry import ENCODERS, HEADS

# width → groups by hand: the most g ≤ 16 dividing C with ≥ 4 channels per group (16 from 64 channels on)
EXPECTED_GROUPS = {
    1: 1,
    3: 1,
    7: 1,
    8: 2,
    12: 3,
    16: 4,
    24: 6,
    32: 8,
    40: 10,
    48: 12,
    64: 16,
    100: 10,
    128: 16,
    256: 16,
    4096: 16,
}
WIDTHS = tuple(EXPECTED_GROUPS)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dims", [1, 2])
def test_every_norm_kind_and_the_group_rule(norm, dims):
    for c in WIDTHS:
        layer = make_norm(norm, c, dims)
        x = torch.randn(4, c) if dims == 1 else torch.randn(4, c, 3, 5)
        assert layer(x).shape == x.shape
        if norm == "bn":
            assert type(layer) is (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)
        elif norm == "none":
            assert type(layer) is nn.Identity
        else:
            assert type(layer) is nn.GroupNorm and layer.num_channels == c
            assert layer.num_groups == gn_groups(c) == EXPECTED_GROUPS[c]
    assert linear_layer(norm) is (WSLinear if norm == "gn_ws" else nn.Linear)
    assert conv_layer(norm) is (WSConv2d if norm == "gn_ws" else nn.Conv2d)


@pytest.mark.parametrize("bad", ["ln", "layer", "", "BN"])
def test_unknown_norm_is_rejected_everywhere(bad):
    for make in (
        lambda: make_norm(bad, 8),
        lambda: linear_layer(bad),
        lambda: conv_layer(bad),
        lambda: HEADS.build("mlp", in_dim=4, hidden_dim=8, out_dim=4, norm=bad),
        lambda: ENCODERS.build("mlp_encoder", in_dim=4, hidden_dim=8, norm=bad),
        lambda: ENCODERS.build("resnet18", cifar_stem=True, width=0.25, norm=bad),
        lambda: ENCODERS.build("audiontt2020", n_mels=16, feature_d=16, norm=bad),
    ):
        with pytest.raises(ValueError, match="norm must be one of bn, gn, gn_ws, none"):
            make()


@pytest.mark.parametrize(
    "name, kw",
    [
        ("mlp_encoder", dict(in_dim=4, hidden_dim=24)),
        ("resnet18", dict(cifar_stem=True, width=0.375)),  # 24-48-96-192 channels: 6, 12, 16, 16 groups
        ("audiontt2020", dict(n_mels=16, feature_d=16)),
        ("audiontt2022", dict(n_mels=16, feature_d=320, mlp_hidden_d=16)),
    ],
)
@pytest.mark.parametrize("norm", NORMS)
def test_every_encoder_and_head_uses_the_factory(name, kw, norm):
    for module in (
        ENCODERS.build(name, norm=norm, **kw),
        HEADS.build("mlp", in_dim=4, hidden_dim=40, out_dim=24, norm=norm, last_norm=True),
    ):
        mods = list(module.modules())
        gns = [m for m in mods if isinstance(m, nn.GroupNorm)]
        assert bool(gns) == (norm in ("gn", "gn_ws"))
        assert all(g.num_groups == gn_groups(g.num_channels) for g in gns)
        assert all(g.num_groups == 1 or g.num_channels // g.num_groups >= 4 for g in gns)  # never InstanceNorm
        assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods) == (norm == "bn")
        ws = [m for m in mods if isinstance(m, (WSConv2d, WSLinear))]
        assert bool(ws) == (norm == "gn_ws")


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_ws_layers_standardize_each_output_row_and_backpropagate_to_the_raw_weight(kind):
    torch.manual_seed(0)
    if kind == "linear":
        layer, x, plain = WSLinear(6, 5), torch.randn(3, 6), nn.functional.linear
    else:
        layer, x = WSConv2d(3, 4, 3, padding=1), torch.randn(2, 3, 6, 6)
        plain = lambda x, w, b: nn.functional.conv2d(x, w, b, padding=1)  # noqa: E731
    with torch.no_grad():
        layer.weight.mul_(3.0).add_(0.7)  # far from standardized
    w = standardize_weight(layer.weight, eps=0.0).flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(len(w)), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.var(1, unbiased=False), torch.ones(len(w)), atol=1e-5, rtol=0)
    torch.testing.assert_close(layer(x), plain(x, standardize_weight(layer.weight), layer.bias))
    layer(x).square().sum().backward()
    g = layer.weight.grad.flatten(1)
    assert g.abs().sum() > 0
    # through the standardization: a row's output ignores a shift of its raw weights, so the gradient
    # w.r.t. the raw weight sums to zero per output row (up to float32 rounding)
    assert (g.mean(1).abs() <= 1e-5 * g.abs().mean(1)).all()


@pytest.mark.parametrize("last_norm", [False, True])
def test_mlp_head_last_bias_switch(last_norm):
    """``last_bias=False`` removes the bias of the last Linear only (DeepMind's BYOL MLP)."""
    with_bias, without = (
        HEADS.build("mlp", in_dim=4, hidden_dim=8, out_dim=3, norm="gn_ws", last_norm=last_norm, last_bias=b)
        for b in (True, False)
    )
    linears = [[m for m in h.modules() if isinstance(m, nn.Linear)] for h in (with_bias, without)]
    assert [m.bias is not None for m in linears[0]] == [True, True]
    assert [m.bias is not None for m in linears[1]] == [True, False]
    if last_norm:  # the output norm keeps its offset: that is last_norm_shift's, not last_bias's
        assert without[-1].bias is not None
    assert without(torch.zeros(2, 4)).shape == (2, 3)


@pytest.mark.parametrize("norm", ["bn", "gn", "gn_ws"])
def test_an_output_norm_without_offset_keeps_its_scale_only(norm):
    """``last_norm_shift=False``: the output norm has γ and no β (TensorFlow's center=False, SimCLR's head), so a
    zero-mean output stays zero-mean per feature after training; the default keeps β."""
    kw = dict(in_dim=4, hidden_dim=8, out_dim=6, norm=norm, last_norm=True)
    plain, scale_only = HEADS.build("mlp", **kw), HEADS.build("mlp", **kw, last_norm_shift=False)
    assert plain[-1].bias is not None and scale_only[-1].bias is None and scale_only[-1].weight is not None
    assert "4.bias" not in scale_only.state_dict() and "4.weight" in scale_only.state_dict()
    with torch.no_grad():
        plain[-1].bias.fill_(3.0)
        scale_only.load_state_dict({k: v for k, v in plain.state_dict().items() if k != "4.bias"})
    x = torch.randn(16, 4)
    if norm == "bn":  # batch statistics: every feature of the batch has mean 0 without β, 3 with β = 3
        torch.testing.assert_close(scale_only(x).mean(0), torch.zeros(6), atol=1e-5, rtol=0)
        torch.testing.assert_close(plain(x).mean(0), torch.full((6,), 3.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain(x) - scale_only(x), torch.full((16, 6), 3.0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm", ["bn", "gn", "gn_ws"])
def test_an_output_norm_without_scale_or_offset_only_standardizes(norm):
    """``last_norm_scale=False`` drops γ; with ``last_norm_shift=False`` too the norm has no parameters at all
    (SimSiam's ``BatchNorm1d(dim, affine=False)``) and its output is the standardized input: per feature over the
    batch (bn, training mode) or per group of features of each item (gn)."""
    kw = dict(in_dim=4, hidden_dim=8, out_dim=6, norm=norm, last_norm=True)
    no_scale = HEADS.build("mlp", **kw, last_norm_scale=False)
    assert no_scale[-1].weight is None and no_scale[-1].bias is not None
    with torch.no_grad():  # β alone: the standardized output shifted by β
        no_scale[-1].bias.fill_(2.0)
    bare = HEADS.build("mlp", **kw, last_norm_scale=False, last_norm_shift=False)
    assert list(bare[-1].parameters()) == [] and not any(
        k.startswith("4.") and "running" not in k and "num_batches" not in k for k in bare.state_dict()
    )
    x = torch.randn(32, 4)
    y = bare(x)
    before = nn.Sequential(*list(bare)[:-1])(x)
    if norm == "bn":
        torch.testing.assert_close(y.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            y.var(0, unbiased=False), before.var(0, unbiased=False) / (before.var(0, unbiased=False) + bare[-1].eps)
        )
    else:
        groups = bare[-1].num_groups
        g = before.reshape(32, groups, -1)
        want = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + bare[-1].eps)
        torch.testing.assert_close(y, want.reshape(32, 6), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # γ = 1, β = 0 of a full norm give the same output
        full = HEADS.build("mlp", **kw)
        full.load_state_dict(bare.state_dict(), strict=False)
    torch.testing.assert_close(full(x), y)
    no_scale.load_state_dict({**bare.state_dict(), "4.bias": no_scale[-1].bias.detach()})
    torch.testing.assert_close(no_scale(x), y + 2.0)


def test_an_offset_or_scale_switch_without_an_output_norm_is_refused():
    for switch in ("last_norm_shift", "last_norm_scale"):
        for kw in ({}, {"last_norm": True, "norm": "none"}):
            with pytest.raises(ValueError, match=f"{switch}: false .* needs last_norm: true and a norm"):
                HEADS.build("mlp", in_dim=4, hidden_dim=8, out_dim=6, **{switch: False}, **kw)


def test_global_batchnorm_converts_a_norm_without_offset_or_scale():
    """Under DDP on gloo every BatchNorm becomes GlobalBatchNorm: one without β or γ stays without it."""
    from ssl_toolkit.training.sync_bn import convert_to_global_bn

    for scale, shift in ((True, False), (False, True), (False, False)):
        head = HEADS.build(
            "mlp", in_dim=4, hidden_dim=8, out_dim=6, last_norm=True, last_norm_shift=shift, last_norm_scale=scale
        )
        x = torch.randn(10, 4)
        want = head(x)
        converted = convert_to_global_bn(head)
        assert type(converted[-1]).__name__ == "GlobalBatchNorm"
        assert (converted[-1].weight is not None, converted[-1].bias is not None) == (scale, shift)
        torch.testing.assert_close(converted(x), want)  # without a process group it is the plain BatchNorm


@pytest.mark.parametrize("scale, shift", [(True, False), (False, True), (False, False)])
def test_global_batchnorm_s_own_statistics_path_without_scale_or_offset(monkeypatch, scale, shift):
    """GlobalBatchNorm's all-reduce path (DDP) with one process whose all-reduce is the identity: the plain
    BatchNorm's output and gradients, for a norm without γ, without β, or without both (SimSiam's)."""
    from ssl_toolkit.training import sync_bn

    monkeypatch.setattr(sync_bn.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sync_bn.dist, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(sync_bn.dist_fn, "all_reduce", lambda t, *a, **k: t)
    head = HEADS.build(
        "mlp", in_dim=4, hidden_dim=8, out_dim=6, last_norm=True, last_norm_shift=shift, last_norm_scale=scale
    )
    with torch.no_grad():
        for p in head[-1].parameters():
            p.uniform_(0.5, 1.5)
    plain = head[-1]
    converted = sync_bn.convert_to_global_bn(nn.Sequential(copy.deepcopy(plain)))[0]
    x = torch.randn(12, 6, requires_grad=True)
    want = plain(x)
    (grad_want,) = torch.autograd.grad(want.pow(2).sum(), x)
    got = converted(x)
    (grad_got,) = torch.autograd.grad(got.pow(2).sum(), x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_got, grad_want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(converted.running_var, plain.running_var)
