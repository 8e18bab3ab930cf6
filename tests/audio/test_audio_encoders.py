"""AudioNTT encoders: shapes, norm options, official weight loading."""

from pathlib import Path

import pytest
import torch

from ssl_toolkit.audio.encoders import AudioNTT2020, AudioNTT2022, load_official_weights
from ssl_toolkit.registry import ENCODERS

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "byola"


@pytest.mark.parametrize(
    "name, kwargs, frames",
    [
        ("audiontt2020", dict(feature_d=512), 12),
        ("audiontt2020", dict(feature_d=1024), 12),
        ("audiontt2020", dict(feature_d=2048, norm="gn_ws"), 12),
        ("audiontt2020", dict(feature_d=256, norm="none"), 12),
        ("audiontt2022", dict(feature_d=1536, mlp_hidden_d=256), 24),
        ("audiontt2022", dict(norm="gn_ws"), 24),
    ],
)
def test_shapes_and_gradients(name, kwargs, frames):
    enc = ENCODERS.build(name, **kwargs).eval()  # no dropout: both calls see the same network
    x = torch.randn(3, 1, 64, 96, requires_grad=True)
    f = enc.forward_frames(x)
    assert f.shape == (3, frames, enc.feature_dim)
    z = enc(x)
    assert z.shape == (3, enc.feature_dim)
    torch.testing.assert_close(z, f.max(dim=1).values + f.mean(dim=1))
    z.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_norm_option_keeps_official_indices():
    for norm in ("bn", "gn_ws", "none"):
        keys = set(AudioNTT2020(norm=norm).state_dict())
        assert {"features.0.weight", "features.4.weight", "features.8.weight", "fc.0.weight", "fc.3.weight"} <= keys
    assert "features.1.running_mean" in AudioNTT2020().state_dict()
    with pytest.raises(ValueError, match="norm must be one of"):
        AudioNTT2020(norm="ln")


@pytest.mark.parametrize("name, norm", [("audiontt2020", "bn"), ("audiontt2020", "none"), ("audiontt2022", "bn")])
def test_pool_before_relu_matches_official_order(name, norm):
    """The blocks run max-pool before ReLU; the official ReLU → max-pool order gives the same outputs and grads."""
    torch.manual_seed(0)
    enc = ENCODERS.build(name, norm=norm).train()
    blocks = [enc.features[i : i + 4] for i in range(0, len(enc.features), 4)]
    assert all(isinstance(b[2], torch.nn.MaxPool2d) and isinstance(b[3], torch.nn.ReLU) for b in blocks)
    official = torch.nn.Sequential(*[m for b in blocks for m in (b[0], b[1], torch.nn.ReLU(), b[2])])
    x = torch.randn(4, 1, 64, 96, requires_grad=True)
    ours, ref = enc.features(x), official(x)
    assert (ref == 0).float().mean() > 0.03  # windows with no positive value: both branches are covered
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    g = torch.randn_like(ours)
    grads_ours = torch.autograd.grad(ours, [x, *enc.features.parameters()], g)
    grads_ref = torch.autograd.grad(ref, [x, *enc.features.parameters()], g)
    for a, b in zip(grads_ours, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bad_input_and_sizes():
    with pytest.raises(ValueError, match=r"\(B, 1, 64, T\)"):
        AudioNTT2020()(torch.randn(2, 1, 80, 96))
    with pytest.raises(ValueError, match="feature_d must exceed"):
        AudioNTT2022(feature_d=1024)


def test_bf16_autocast_runs():
    enc = AudioNTT2020(feature_d=128).eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = enc(x)
    ref = enc(x)
    assert torch.isfinite(z).all()
    assert (z.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


def test_load_official_weights_wrapped_and_prefixed(tmp_path):
    src = AudioNTT2020(feature_d=64)
    state = src.state_dict()
    for name, obj in [
        ("plain", state),
        ("wrapped", {"state_dict": state, "epoch": 3}),
        ("model", {"model": {f"module.{k}": v for k, v in state.items()}}),
    ]:
        torch.save(obj, tmp_path / f"{name}.pth")
        dst = load_official_weights(AudioNTT2020(feature_d=64), tmp_path / f"{name}.pth")
        for k, v in dst.state_dict().items():
            assert torch.equal(v, state[k]), (name, k)
    with pytest.raises(ValueError, match=r"shape mismatch.*fc\.0\.weight"):
        load_official_weights(AudioNTT2020(feature_d=128), tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="running_mean"):
        load_official_weights(AudioNTT2020(feature_d=64, norm="gn_ws"), tmp_path / "plain.pth")


def test_released_layout_fixture_loads_weights_only():
    path = FIXTURES / "audiontt2022_d1536_h512_random.pth"
    if not path.is_file():
        pytest.skip(f"BYOL-A fixtures not found at {FIXTURES}")
    enc = load_official_weights(AudioNTT2022(feature_d=1536, mlp_hidden_d=512), path)
    assert enc.feature_dim == 1536
