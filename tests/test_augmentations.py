"""Every registered augmentation against the views contract: random ops are RandomOps with a final
forward and never in the front end; front-end ops give each sample the same output whatever its batch
and generator; the other deterministic ops (batch statistics) really depend on the batch."""

import pytest
import torch

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.registry import AUGMENTATIONS
from ssl_toolkit.views import RandomOp, bernoulli, uniform

BUILD = {"pre_norm": dict(mean=-3.0, std=2.0), "random_resized_crop": dict(size=8)}


def _candidates() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, 256, (5, 3, 12, 14), generator=g, dtype=torch.uint8),  # images
        torch.rand(5, 3, 12, 14, generator=g),
        torch.randn(5, 4000, generator=g),  # waves
        torch.randn(5, 1, 16, 24, generator=g) - 4.0,  # log-mels
        torch.randn(5, 16, generator=g),
    ]  # vectors


def _run(op, x, seed):
    return op(x, torch.Generator().manual_seed(seed))


def _input_for(op) -> torch.Tensor:
    for x in _candidates():
        try:
            _run(op, x, 0)
        except (TypeError, ValueError, RuntimeError):
            continue
        return x
    raise AssertionError(f"{op!r} takes none of the test inputs")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    # batched convolutions (nnAudio's STFT) may round differently for another batch size: ~1e-6 here
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def _per_sample(op, x) -> bool:
    """Does every sample get the same output alone, in a reordered batch and with other generators?"""
    y = _run(op, x, 0)
    perm = torch.tensor([3, 0, 4, 2, 1])
    alone = all(_same(_run(op, x[i : i + 1], 1 + i)[0], y[i]) for i in range(len(x)))
    return alone and _same(_run(op, x[perm], 9), y[perm]) and _same(op(x, None), y)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_augmentation_declares_the_right_frontend_flag(name):
    op = AUGMENTATIONS.build(name, **BUILD.get(name, {}))
    assert isinstance(op.eval_frontend, bool)
    if isinstance(op, RandomOp):
        assert op.eval_frontend is False
        assert "forward" not in type(op).__dict__
        return
    x = _input_for(op)
    if op.eval_frontend:
        assert _per_sample(op, x), f"{name} is declared frontend but is not deterministic per sample"
    else:
        assert not _per_sample(op, x), f"{name} is deterministic per sample: declare eval_frontend = True"


def test_random_op_forward_is_final_and_never_frontend():
    with pytest.raises(TypeError, match="forward is final"):
        type("Bad", (RandomOp,), {"forward": lambda self, x, generator=None: x})
    with pytest.raises(TypeError, match="frontend must be False"):
        type("Bad", (RandomOp,), {"eval_frontend": True})
    with pytest.raises(TypeError, match="not apply"):
        type("Bad", (RandomOp,), {"apply": lambda self, x, params: x})


def test_module_apply_reaches_every_registered_op():
    """nn.Module.apply(fn) (weight init, dtype casts) recurses into a pipeline's ops: none may shadow it."""
    ops = [AUGMENTATIONS.build(name, **BUILD.get(name, {})) for name in AUGMENTATIONS.names()]
    seen: list[torch.nn.Module] = []
    torch.nn.Sequential(*ops).apply(seen.append)
    assert all(any(m is op for m in seen) for op in ops)


def test_random_helpers_draw_per_sample():
    g = torch.Generator().manual_seed(0)
    u = uniform(10_000, -2.0, 3.0, "cpu", g)
    assert u.shape == (10_000,) and u.min() >= -2.0 and u.max() < 3.0 and u.unique().numel() > 9_000
    b = bernoulli(10_000, 0.3, "cpu", g)
    assert b.dtype == torch.bool and 0.27 < b.float().mean() < 0.33
    state = g.get_state()
    assert bernoulli(5, 1.0, "cpu", g).all() and not bernoulli(5, 0.0, "cpu", g).any()
    assert torch.equal(g.get_state(), state)  # p = 0 or 1 draws nothing
