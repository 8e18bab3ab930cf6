"""Encoder layers with fast CPU paths: 2×2 max-pool (same values and layout as F.max_pool2d; autograd keeps
the native op) and Dropout (same mask distribution and scale as nn.Dropout)."""

import pytest
import torch
import torch.nn.functional as F

from ssl_toolkit.audio.layers import Dropout, MaxPool2x2, max_pool2x2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 8, 12), (3, 5, 7, 9), (1, 64, 2, 3)])
def test_equals_max_pool2d(dtype, channels_last, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape).round().to(dtype)  # rounded: many ties inside windows
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x[0, 0, 0, 0] = float("nan")
    ours, ref = max_pool2x2(x), F.max_pool2d(x, 2)
    assert ours.shape == ref.shape and ours.dtype == dtype
    assert torch.equal(ours.isnan(), ref.isnan()) and ours[0, 0, 0, 0].isnan()
    torch.testing.assert_close(ours.nan_to_num(0.5), ref.nan_to_num(0.5), rtol=0, atol=0)
    layout = torch.channels_last if channels_last and shape[1] > 1 else torch.contiguous_format
    assert ours.is_contiguous(memory_format=layout)


def test_module_uses_native_op_when_autograd_needs_indices():
    torch.manual_seed(0)
    pool = MaxPool2x2()
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    y = pool(x)
    assert y.grad_fn is not None and "MaxPool2DWithIndices" in type(y.grad_fn).__name__
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.sum() == y.numel() and set(g.unique().tolist()) == {0.0, 1.0}
    with torch.no_grad():
        fast = pool(x)
    assert fast.grad_fn is None and torch.equal(fast, y.detach())
    assert torch.equal(pool(x.detach()), y.detach())  # no grad needed: fast path, same values
    assert pool.kernel_size == 2 and pool.stride == 2 and pool.state_dict() == {}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_mask_distribution_scale_and_gradient(dtype):
    torch.manual_seed(0)
    drop = Dropout(p=0.3)
    x = torch.ones(200, 1000, dtype=dtype, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 2e5 draws: std of the mean ≈ 0.001
    scale = torch.tensor(1 / 0.7, dtype=dtype)
    assert torch.equal(y[kept], scale.expand(int(kept.sum())))  # nn.Dropout's 1/(1-p) in the same dtype
    ref = torch.nn.functional.dropout(torch.ones(10, dtype=dtype), 0.3, training=True)
    assert torch.equal(ref[ref != 0].unique(), scale.reshape(1))
    (g,) = torch.autograd.grad(y.float().sum(), x)
    assert torch.equal(g, y.detach())  # d(x·m/keep)/dx = m/keep
    for dim in (0, 1):  # one draw per element, not one per row or column
        share = kept.float().mean(dim)
        assert 0.5 < share.min() and share.max() < 0.9


def test_dropout_eval_and_edge_probabilities():
    x = torch.randn(4, 5)
    assert Dropout(0.3).eval()(x) is x and Dropout(0.0)(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_other_devices_run_the_torch_op(monkeypatch):
    """Off CPU the layers defer to nn.MaxPool2d / nn.Dropout (simulated: the fast paths must not be taken)."""
    import ssl_toolkit.audio.layers as layers

    x = torch.randn(2, 3, 4, 4)

    class Meta(torch.Tensor):  # a CPU tensor that reports another device type
        @property
        def device(self):
            return torch.device("meta")

    fake = x.as_subclass(Meta)
    monkeypatch.setattr(layers, "max_pool2x2", lambda t: pytest.fail("fast pool taken off CPU"))
    monkeypatch.setattr(layers.torch, "rand", lambda *a, **k: pytest.fail("vectorized mask taken off CPU"))
    with torch.no_grad():
        MaxPool2x2()(fake)
    Dropout(0.3)(fake)
