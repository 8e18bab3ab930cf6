import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.bootstrap import BootstrapMethod, Pair, collapse_metric
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.engine.losses import regression_loss
from ssl_toolkit.recipe import EmaConfig
from ssl_toolkit.registry import METHODS


def _byol(**kw):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    enc.feature_dim = 16
    return METHODS.build(
        "byol",
        encoder=enc,
        projector=MLPHead(16, 32, 8),
        predictor=MLPHead(8, 32, 8),
        ema=EmaConfig(tau_base=0.99),
        **kw,
    )


def test_loss_is_sum_of_both_directions_as_in_the_paper():
    m = _byol()
    v1, v2 = torch.randn(6, 8), torch.randn(6, 8)
    out = m([v1, v2])
    p, zt = out["predictions"], out["target_projections"]
    expected = regression_loss(p[0], zt[(0, 1)]).mean() + regression_loss(p[1], zt[(0, 0)]).mean()
    assert torch.allclose(out["loss"], expected)
    # the target is a copy of the online network at init: its projections equal the online ones
    assert torch.allclose(zt[(0, 1)], out["projections"][1], atol=1e-6)
    assert 0 <= float(out["loss"].detach()) <= 8  # each term is in [0, 4]


def test_target_gets_no_gradient_and_online_does():
    m = _byol()
    m([torch.randn(6, 8), torch.randn(6, 8)])["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in m.targets.parameters())
    assert all(p.grad is not None for p in m.online.parameters())


def test_update_targets_moves_target_towards_online_by_tau():
    m = _byol()
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)
    old = [p.clone() for p in m.targets[0].parameters()]
    online = list(m.online.encoder.parameters()) + list(m.online.projector.parameters())
    tau = m.update_targets(step=0, total_steps=10)
    assert tau == 0.99
    for t, o, ref in zip(m.targets[0].parameters(), online, old):
        assert torch.allclose(t, 0.99 * ref + 0.01 * o, atol=1e-6)


def test_alternate_policy_updates_one_target_per_step():
    torch.manual_seed(0)
    enc = nn.Linear(4, 4)
    enc.feature_dim = 4
    m = BootstrapMethod(
        enc,
        MLPHead(4, 8, 4),
        MLPHead(4, 8, 4),
        EmaConfig(0.5, "constant"),
        pairs=[Pair(0, 0, 1), Pair(0, 1, 2)],
        num_targets=2,
        target_update="alternate",
    )
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)
    t0, t1 = [list(t.parameters())[0].clone() for t in m.targets]
    m.update_targets(0, 10)
    assert not torch.equal(list(m.targets[0].parameters())[0], t0)
    assert torch.equal(list(m.targets[1].parameters())[0], t1)
    m.update_targets(1, 10)
    assert not torch.equal(list(m.targets[1].parameters())[0], t1)


def test_collapse_metric_healthy_vs_collapsed():
    torch.manual_seed(0)
    healthy = collapse_metric(torch.randn(512, 64))
    collapsed = collapse_metric(torch.ones(512, 64) + 1e-4 * torch.randn(512, 64))
    assert 0.9 < float(healthy) < 1.1
    assert float(collapsed) < 0.01
