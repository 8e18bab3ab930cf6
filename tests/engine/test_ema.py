import math

import pytest
import torch
from torch import nn

from ssl_toolkit.engine.ema import cosine_tau, ema_update_, tau_at


def test_cosine_schedule_values():
    assert cosine_tau(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_tau(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_tau(50, 100, 0.996) == pytest.approx(1 - 0.004 * 0.5)  # cos(π/2) = 0
    k, K = 25, 100
    assert cosine_tau(k, K, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi * k / K) + 1) / 2)
    assert tau_at(77, 100, 0.99, "constant") == 0.99


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_ema_update_matches_formula_for_params_and_buffer_policies():
    torch.manual_seed(0)
    online, target = _net(), _net()
    online[1].running_mean.fill_(2.0)
    online[1].num_batches_tracked.fill_(5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    tau = 0.9
    ema_update_(target, online, tau, buffers="copy")
    for (name, t), o in zip(target.named_parameters(), online.parameters()):
        assert torch.allclose(t, tau * before[name] + (1 - tau) * o, atol=1e-7), name
    assert torch.equal(target[1].running_mean, online[1].running_mean)
    assert int(target[1].num_batches_tracked) == 5

    target2 = _net()
    before2 = target2[1].running_mean.clone()
    ema_update_(target2, online, tau, buffers="ema")
    assert torch.allclose(target2[1].running_mean, tau * before2 + (1 - tau) * online[1].running_mean)


def test_ema_update_builds_no_graph_and_uses_one_fused_pass(monkeypatch):
    online, target = _net(), _net()
    for p in online.parameters():
        p.requires_grad_(True)
    calls = []
    real = torch._foreach_lerp_
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *a: (calls.append(len(a[0])), real(*a))[1])
    ema_update_(target, online, 0.5)
    assert calls == [len(list(online.parameters()))]  # all parameters in one call
    assert all(p.grad_fn is None for p in target.parameters())
