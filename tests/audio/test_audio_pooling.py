"""2×2 max-pooling fast path: the same values and layout as F.max_pool2d; autograd keeps the native op."""
import pytest
import torch
import torch.nn.functional as F

from ssl_toolkit.audio.pooling import MaxPool2x2, max_pool2x2


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
