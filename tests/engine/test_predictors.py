"""Closed-form predictor heads: every formula against an eigendecomposition / by hand, the EMA
statistics, the refresh frequency, and what receives gradients."""

from pathlib import Path

import pytest
import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.bootstrap import BootstrapMethod, Pair
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.engine.predictors import (
    CLOSED_FORM_PREDICTORS,
    directcopy_weight,
    directpred_weight,
    neumann_weight,
    newton_schulz,
    ns2_root,
    ns_sqrt,
    stiefel_weight,
    visser_sqrt,
)
from ssl_toolkit.recipe import EmaConfig, load_recipe
from ssl_toolkit.registry import HEADS, RegistryError

ROOT = Path(__file__).resolve().parents[2]

D = 6


def random_spd(seed, d=D, low=0.2, high=2.0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = low + (high - low) * torch.rand(d, generator=g, dtype=torch.float64)
    return (q * s) @ q.T, q, s


def spectral(q, f):
    return (q * f) @ q.T


# ----------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("seed", range(3))
def test_newton_schulz_sqrt_and_inverse_sqrt_match_eigendecomposition(seed):
    a, q, s = random_spd(seed)
    y, z = newton_schulz(a, 12)
    torch.testing.assert_close(y, spectral(q, s.sqrt()), atol=1e-8, rtol=0)
    torch.testing.assert_close(z, spectral(q, s.rsqrt()), atol=1e-8, rtol=0)
    torch.testing.assert_close(ns_sqrt(a), spectral(q, s.sqrt()), atol=1e-6, rtol=0)  # default n = 9


@pytest.mark.parametrize("seed", range(3))
def test_ns2_is_the_fourth_root(seed):
    a, q, s = random_spd(seed)
    torch.testing.assert_close(ns2_root(a), spectral(q, s**0.25), atol=1e-6, rtol=0)  # default n = 7


@pytest.mark.parametrize("seed", range(3))
def test_visser_converges_to_the_square_root(seed):
    a, q, s = random_spd(seed)
    torch.testing.assert_close(visser_sqrt(a, n=200), spectral(q, s.sqrt()), atol=1e-8, rtol=0)
    # default n = 20 is an approximation whose error shrinks with n
    e20 = (visser_sqrt(a) - spectral(q, s.sqrt())).abs().max()
    e40 = (visser_sqrt(a, n=40) - spectral(q, s.sqrt())).abs().max()
    assert e40 < e20 < 0.1


def test_visser_first_step_by_hand():
    # diag(4, 1): c = ‖Σ‖_F = √17, S = Σ/c; P0 = I/(2η) = I (η = ½); P1 = P0 + ½(S − I)
    sigma = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    c = 17**0.5
    expected = torch.diag(torch.tensor([1 + 0.5 * (4 / c - 1), 1 + 0.5 * (1 / c - 1)], dtype=torch.float64)) * c**0.5
    torch.testing.assert_close(visser_sqrt(sigma, n=1, eta=0.5), expected)


@pytest.mark.parametrize("seed", range(3))
def test_directpred_weight(seed):
    a, q, s = random_spd(seed)
    expected = spectral(q, (s / s.max()).sqrt() + 0.01)
    torch.testing.assert_close(directpred_weight(a, eps=0.01), expected, atol=1e-10, rtol=0)


def test_directpred_by_hand_and_negative_eigenvalues_clamped():
    f = torch.diag(torch.tensor([4.0, 1.0, -0.5]))
    torch.testing.assert_close(directpred_weight(f, eps=0.01), torch.diag(torch.tensor([1.01, 0.51, 0.01])))


def test_directcopy_weight():
    f = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ‖f‖_F = 5
    torch.testing.assert_close(directcopy_weight(f, alpha=0.1), torch.tensor([[0.7, 0.0], [0.0, 0.9]]))
    torch.testing.assert_close(directcopy_weight(f, alpha=0.1, normalize=False), torch.tensor([[3.1, 0.0], [0.0, 4.1]]))


@pytest.mark.parametrize("seed", range(3))
def test_neumann_weight_is_first_order_series_of_least_squares(seed):
    a, q, s = random_spd(seed, low=0.05, high=0.3)  # spectrum as for L2-normalized projections (tr ≈ 1)
    c = torch.randn(D, D, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64)
    torch.testing.assert_close(neumann_weight(a, c), spectral(q, 2 - s) @ c)
    # by hand on 1×1: 2c − σc
    assert float(neumann_weight(torch.tensor([[0.5]]), torch.tensor([[3.0]]))) == pytest.approx(4.5)
    # and it approximates Σ⁻¹C where Σ ≈ I (error second order in I − Σ)
    near, _, _ = random_spd(seed, low=0.95, high=1.05)
    err = (neumann_weight(near, c) - torch.linalg.solve(near, c)).abs().max()
    assert err < 0.01 * c.abs().max()


@pytest.mark.parametrize("seed", range(3))
def test_stiefel_is_the_scaled_polar_factor(seed):
    a, q, s = random_spd(seed)
    b = spectral(q, 1 / s)  # (ΣᵀΣ)^{-1/2} for SPD Σ
    expected = b @ a.T / b.norm()  # = I/‖Σ^{-1}‖_F
    torch.testing.assert_close(stiefel_weight(a, n=15), expected, atol=1e-8, rtol=0)
    torch.testing.assert_close(stiefel_weight(a, n=15), torch.eye(D, dtype=a.dtype) / b.norm(), atol=1e-8, rtol=0)


def test_stiefel_on_a_rank_deficient_psd_is_a_scaled_orthogonal_projector():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    s = torch.tensor([1.0, 0.8, 0.6, 0, 0, 0], dtype=torch.float64)
    p = stiefel_weight(spectral(q, s), n=25)
    p = p / p.norm() * 3**0.5  # the projector of rank 3 has Frobenius norm √3
    torch.testing.assert_close(p, spectral(q, (s > 0).double()), atol=1e-8, rtol=0)


@pytest.mark.parametrize("scale", [1e-3, 7.0])
def test_stiefel_weight_scales_with_sigma(scale):
    """P = BΣᵀ/‖B‖_F is homogeneous of degree 1 in Σ (BΣᵀ is scale free, ‖B‖_F ∝ 1/scale): how large P
    is against a fixed ridge α depends on the latents' magnitude (benchmarks/diagnoses/diagnose_stiefel.py)."""
    a, _, _ = random_spd(5)
    torch.testing.assert_close(stiefel_weight(scale * a, n=15), scale * stiefel_weight(a, n=15), atol=1e-10, rtol=1e-8)


def test_stiefel_weight_is_negligible_against_the_ridge_on_normalized_projections():
    """Why `stiefel` collapses (README): on L2-normalized projections ‖P‖ ≪ α, so W = P + αI ≈ αI."""
    z = torch.nn.functional.normalize(torch.randn(1024, 256, generator=torch.Generator().manual_seed(0)), dim=1)
    top = torch.linalg.eigvalsh(stiefel_weight(z.T @ z / len(z))).abs().max()
    head = HEADS.build("stiefel", in_dim=256).train()
    assert 0 < top < head.alpha / 10
    head.observe([z], [z])  # a training step's statistics set W
    ridge = head.alpha * torch.eye(256)
    assert (head.weight - ridge).norm() < 0.1 * ridge.norm()


# ----------------------------------------------------------------------------- the heads
def test_heads_have_no_parameters_and_start_at_identity():
    for name in CLOSED_FORM_PREDICTORS:
        h = HEADS.build(name, in_dim=4)
        assert list(h.parameters()) == [], name
        assert h.out_dim == 4
        z = torch.randn(3, 4)
        torch.testing.assert_close(h(z), z)


def test_ema_statistics_first_batch_initializes_then_rho():
    h = HEADS.build("directpred", in_dim=2, rho=0.3)
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    h.observe([z1], [z1])
    torch.testing.assert_close(h.sigma, torch.diag(torch.tensor([0.5, 2.0])))  # ZᵀZ/n, no zero-start bias
    h.observe([z2], [z2])
    torch.testing.assert_close(
        h.sigma, 0.3 * torch.diag(torch.tensor([0.5, 2.0])) + 0.7 * torch.diag(torch.tensor([2.0, 0.0]))
    )
    # W = U diag(sqrt(s/max s) + ε) Uᵀ with s = (1.55, 0.6)
    torch.testing.assert_close(h.weight, torch.diag(torch.tensor([1.01, (0.6 / 1.55) ** 0.5 + 0.01])))


def test_all_pairs_are_stacked_and_ne_sees_the_targets():
    h = HEADS.build("ne", in_dim=2, normalize=False, alpha=0.0)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    ta, tb = torch.tensor([[0.0, 2.0]]), torch.tensor([[3.0, 0.0]])
    h.observe([a, b], [ta, tb])
    sigma = torch.eye(2) / 2  # (aᵀa + bᵀb)/2
    cross = (a.T @ ta + b.T @ tb) / 2  # [[0, 1], [1.5, 0]]
    torch.testing.assert_close(h.sigma, sigma)
    torch.testing.assert_close(h.cross, cross)
    torch.testing.assert_close(h.weight, 2 * cross - sigma @ cross)


def test_normalize_uses_unit_rows():
    h = HEADS.build("ns", in_dim=2)
    h.observe([torch.tensor([[3.0, 4.0], [0.0, -2.0]])], [torch.zeros(2, 2)])
    u = torch.tensor([[0.6, 0.8], [0.0, -1.0]])
    torch.testing.assert_close(h.sigma, u.T @ u / 2)
    assert float(torch.trace(h.sigma)) == pytest.approx(1.0)


def test_freq_and_eval_mode():
    h = HEADS.build("directcopy", in_dim=2, freq=2, alpha=0.0)
    z = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    h.observe([z], [z])  # update 0: recomputed
    w0 = h.weight.clone()
    torch.testing.assert_close(w0, torch.diag(torch.tensor([1.0, 0.0])))
    h.observe([torch.tensor([[0.0, 1.0]])], [z])  # update 1: statistics move, W kept
    assert torch.equal(h.weight, w0) and not torch.equal(h.sigma, torch.diag(torch.tensor([0.5, 0.0])))
    h.observe([torch.tensor([[0.0, 1.0]])], [z])  # update 2: recomputed
    assert not torch.equal(h.weight, w0)
    h.eval()
    before = (h.sigma.clone(), h.weight.clone(), int(h.num_updates))
    h.observe([torch.randn(4, 2)], [torch.randn(4, 2)])
    assert torch.equal(h.sigma, before[0]) and torch.equal(h.weight, before[1]) and int(h.num_updates) == before[2]


def test_state_dict_round_trip_restores_the_weight():
    h = HEADS.build("ns2", in_dim=3)
    h.observe([torch.randn(8, 3)], [torch.randn(8, 3)])
    h2 = HEADS.build("ns2", in_dim=3)
    h2.load_state_dict(h.state_dict())
    z = torch.randn(2, 3)
    torch.testing.assert_close(h2(z), h(z))


def _method(name, **kw):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    enc.feature_dim = 16
    return BootstrapMethod(
        enc,
        MLPHead(16, 32, 8),
        HEADS.build(name, in_dim=8, **kw),
        EmaConfig(tau_base=0.99),
        [Pair(0, 0, 1), Pair(1, 0, 0)],
    )


@pytest.mark.parametrize("name", CLOSED_FORM_PREDICTORS)
def test_gradient_reaches_the_online_network_not_the_predictor_weight(name):
    m = _method(name)
    m.train()
    out = m([torch.randn(16, 8), torch.randn(16, 8)])
    assert int(m.online.predictor.num_updates) == 1  # observed once, before predicting
    w = m.online.predictor.weight
    assert not w.requires_grad and w.grad_fn is None
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.online.encoder.parameters())
    assert all(p.grad is not None for p in m.online.projector.parameters())
    assert all(p.grad is None for p in m.targets.parameters())
    # the prediction is z·W with the W set from this very batch
    z = out["projections"][0]
    torch.testing.assert_close(out["predictions"][0], z @ w)


def test_observe_sees_the_targets_of_each_pair():
    m = _method("ne", normalize=False)
    m.train()
    out = m([torch.randn(16, 8), torch.randn(16, 8)])
    z = torch.cat([out["projections"][0], out["projections"][1]]).detach()
    zt = torch.cat([out["target_projections"][(0, 1)], out["target_projections"][(0, 0)]])
    torch.testing.assert_close(m.online.predictor.cross, z.T @ zt / 32)


def test_renaming_the_mlp_predictor_replaces_its_section():
    """The heads are square and take no hidden_dim/out_dim: a recipe that swaps the MLP for one of them, by
    ``base:`` or on the command line, gets a predictor section without the MLP's keys."""
    derived = load_recipe(ROOT / "recipes/variants/image/directpred_cifar10_cpu.yaml")
    assert dict(derived.model.predictor) == {"name": "directpred"}
    swapped = load_recipe(ROOT / "recipes/image/byol_cifar10_cpu.yaml", ["model.predictor.name=ns"])
    assert dict(swapped.model.predictor) == {"name": "ns"}
    with pytest.raises(RegistryError, match="no parameter 'hidden_dim'"):
        HEADS.build("ns", in_dim=8, hidden_dim=1024)


def test_statistics_and_weight_stay_fp32_under_bf16_autocast():
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    ref = HEADS.build("ns", in_dim=8)
    ref.observe([z], [z])
    h = HEADS.build("ns", in_dim=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h.observe([z], [z])
    assert h.sigma.dtype == torch.float32
    torch.testing.assert_close(h.sigma, ref.sigma)
    torch.testing.assert_close(h.weight, ref.weight)
