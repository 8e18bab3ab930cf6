"""BN-free BYOL (Richemond et al. 2020): the gn_ws / none switch on heads and encoders, batch
independence, and the collapse monitor catching a run with no normalization at all."""

import csv

import pytest
import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.engine.norms import WSLinear, standardize_weight
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.registry import ENCODERS
from ssl_toolkit.training.trainer import Trainer

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


def test_weight_standardization_by_hand():
    w = torch.tensor([[1.0, 3.0], [2.0, 2.0 + 1e-8]])
    ws = standardize_weight(w, eps=0.0)
    torch.testing.assert_close(ws[0], torch.tensor([-1.0, 1.0]))  # mean 2, std 1
    lin = WSLinear(3, 4)
    x = torch.randn(5, 3)
    torch.testing.assert_close(lin(x), x @ standardize_weight(lin.weight).T + lin.bias)
    sw = standardize_weight(lin.weight, eps=0.0)
    torch.testing.assert_close(sw.mean(1), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(sw.var(1, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    lin(x).sum().backward()
    assert lin.weight.grad is not None  # the standardization is differentiated through


def test_mlp_head_gn_ws_has_no_batch_statistics():
    torch.manual_seed(0)
    h = MLPHead(8, 32, 16, norm="gn_ws")
    assert not any(isinstance(m, BATCH_NORMS) for m in h.modules())
    gns = [m for m in h.modules() if isinstance(m, nn.GroupNorm)]
    assert [g.num_groups for g in gns] == [8]  # 32 hidden channels: 8 groups of 4 (engine/norms.py's rule)
    assert isinstance(h[0], WSLinear) and type(h[-1]) is nn.Linear
    h.train()
    x = torch.randn(6, 8)
    # each sample's output does not depend on the rest of the batch (it does with BN)
    torch.testing.assert_close(h(x)[:1], h(x[:1]))
    bn = MLPHead(8, 32, 16, norm="bn").train()
    assert not torch.allclose(bn(x)[:2], bn(x[:2]))


def test_mlp_head_none_is_plain():
    h = MLPHead(8, 32, 16, norm="none")
    assert not any(isinstance(m, (*BATCH_NORMS, nn.GroupNorm)) for m in h.modules())


@pytest.mark.parametrize(
    "name, kw, shape",
    [
        ("resnet18", dict(cifar_stem=True, width=0.25), (2, 3, 32, 32)),
        ("audiontt2020", dict(n_mels=16, feature_d=32), (2, 1, 16, 24)),
    ],
)
@pytest.mark.parametrize("norm", ["gn_ws", "none"])
def test_encoders_take_the_norm_switch(name, kw, shape, norm):
    enc = ENCODERS.build(name, norm=norm, **kw)
    assert not any(isinstance(m, BATCH_NORMS) for m in enc.modules())
    if norm == "gn_ws":
        assert any(isinstance(m, nn.GroupNorm) for m in enc.modules())
    else:
        assert not any(isinstance(m, nn.GroupNorm) for m in enc.modules())
    enc.train()
    for m in enc.modules():
        if isinstance(m, nn.Dropout):
            m.eval()  # dropout masks are random, not batch statistics
    x = torch.randn(*shape)
    torch.testing.assert_close(enc(x)[:1], enc(x[:1]), atol=1e-5, rtol=1e-4)  # batch independent


def _collapse_column(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [float(r["collapse"]) for r in csv.DictReader(f)]


def test_no_normalization_anywhere_collapses_and_the_monitor_says_so(tensor_recipe, tmp_path, capsys):
    """BYOL on the tensor recipe with norm: none in encoder, projector and predictor: the projections'
    spread (collapse monitor) falls under trainer.collapse_threshold and the trainer warns; the same
    run with BatchNorm stays healthy (tests/training/test_trainer.py checks > 0.25 for it too)."""
    fast = ["trainer.tensorboard=false", "trainer.progress=false"]
    none = ["model.encoder.norm=none", "model.projector.norm=none", "model.predictor.norm=none"]
    run = Trainer(load_recipe(tensor_recipe, fast + none), out_dir=tmp_path / "none").fit()
    err = capsys.readouterr().err
    col = _collapse_column(run)
    assert col[-1] < 0.25  # the recipe's trainer.collapse_threshold
    assert col[-1] < 0.6 * col[0]  # it is the training that collapses it, not the initialization
    assert "WARNING: collapse monitor" in err
    bn = Trainer(load_recipe(tensor_recipe, fast), out_dir=tmp_path / "bn").fit()
    assert "WARNING: collapse monitor" not in capsys.readouterr().err
    assert _collapse_column(bn)[-1] > 0.5
