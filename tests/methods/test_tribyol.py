"""TriBYOL: the loss formula, the two targets drifting apart, policies and gradient flow."""

import pytest
import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.checkpoint import load_checkpoint
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.engine.losses import regression_loss
from ssl_toolkit.recipe import EmaConfig, load_recipe
from ssl_toolkit.registry import METHODS
from ssl_toolkit.training.trainer import Trainer


def _tribyol(**kw):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    enc.feature_dim = 16
    return METHODS.build(
        "tribyol",
        encoder=enc,
        projector=MLPHead(16, 32, 8),
        predictor=MLPHead(8, 32, 8),
        ema=EmaConfig(tau_base=0.9, schedule="constant"),
        **kw,
    )


def _views(n=3, b=6):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, 8, generator=g) for _ in range(n)]


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_loss_is_half_of_each_target_byol_loss():
    m = _tribyol()
    out = m(_views())
    p, zt = out["predictions"], out["target_projections"]
    L = lambda a, b: regression_loss(a, b).mean()  # noqa: E731
    expected = 0.5 * (L(p[0], zt[(0, 1)]) + L(p[1], zt[(0, 0)])) + 0.5 * (L(p[0], zt[(1, 2)]) + L(p[2], zt[(1, 0)]))
    torch.testing.assert_close(out["loss"], expected)
    assert set(zt) == {(0, 0), (0, 1), (1, 0), (1, 2)}  # target 1 sees x1, x2; target 2 sees x1, x3
    assert len(m.targets) == 2


def test_needs_three_views():
    with pytest.raises(ValueError, match="3 views"):
        _tribyol()(_views(2))


def _two_training_steps(m):
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for step in range(2):
        m(_views())["loss"].backward()
        opt.step()
        opt.zero_grad()
        m.update_targets(step, 100)


@pytest.mark.parametrize("policy", [dict(), dict(target_update="all", taus=[0.9, 0.99])])
def test_targets_differ_after_two_steps(policy):
    m = _tribyol(**policy)
    assert torch.equal(_flat(m.targets[0]), _flat(m.targets[1]))  # both start as copies of the online net
    _two_training_steps(m)
    t0, t1 = _flat(m.targets[0]), _flat(m.targets[1])
    assert (t0 - t1).abs().max() > 1e-4
    online = torch.cat([_flat(m.online.encoder), _flat(m.online.projector)])
    assert not torch.equal(t0, online) and not torch.equal(t1, online)


def test_alternate_policy_updates_one_target_per_step_by_tau():
    m = _tribyol()
    t1_before = _flat(m.targets[1])
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)
    t0_before = _flat(m.targets[0])
    online = torch.cat([_flat(m.online.encoder), _flat(m.online.projector)])
    m.update_targets(0, 100)
    torch.testing.assert_close(_flat(m.targets[0]), 0.9 * t0_before + 0.1 * online)
    assert torch.equal(_flat(m.targets[1]), t1_before)
    m.update_targets(1, 100)
    torch.testing.assert_close(_flat(m.targets[1]), 0.9 * t1_before + 0.1 * online)


def test_all_policy_uses_each_targets_tau():
    m = _tribyol(target_update="all", taus=[0.5, 0.75])
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)
    before = [_flat(t) for t in m.targets]
    online = torch.cat([_flat(m.online.encoder), _flat(m.online.projector)])
    m.update_targets(0, 100)
    torch.testing.assert_close(_flat(m.targets[0]), 0.5 * before[0] + 0.5 * online)
    torch.testing.assert_close(_flat(m.targets[1]), 0.75 * before[1] + 0.25 * online)


def test_gradients_reach_the_online_network_only():
    m = _tribyol()
    m(_views())["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.online.parameters())
    assert all(p.grad is None and not p.requires_grad for p in m.targets.parameters())


def test_tribyol_in_the_trainer_targets_differ(tensor_recipe, tmp_path):
    recipe = load_recipe(
        tensor_recipe,
        [
            "trainer.tensorboard=false",
            "trainer.progress=false",
            "method.name=tribyol",
            "trainer.max_steps=2",
            "views.branches=[[{name: random_scale}], [{name: gaussian_noise}], [{name: gaussian_noise}]]",
        ],
    )
    out = Trainer(recipe, out_dir=tmp_path / "run", quiet=True).fit()
    state = load_checkpoint(out / "checkpoints" / "last.pt")["method"]
    t0 = {k[len("targets.0.") :]: v for k, v in state.items() if k.startswith("targets.0.")}
    t1 = {k[len("targets.1.") :]: v for k, v in state.items() if k.startswith("targets.1.")}
    assert t0.keys() == t1.keys() and t0
    assert any(not torch.equal(t0[k], t1[k]) for k in t0 if t0[k].is_floating_point())
