"""CCSL / CSSL (Self-Labeling Refinement): the terms on hand-checkable tensors, the λ ramp, the label
diagnostic, gradient flow and a run through the trainer."""

import math

import pytest
import torch
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.checkpoint import load_checkpoint
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.engine.self_labeling import pair_weights, self_labeling_loss
from ssl_toolkit.recipe import EmaConfig, load_recipe
from ssl_toolkit.registry import METHODS
from ssl_toolkit.training.trainer import Trainer

# target projections: A01 = 0.8, A02 = 0, A12 = 0.6
Z = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
# predictions: S = P Zᵀ = [[1, .8, 0], [0, .6, 1], [1, .8, 0]]
P = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
S = [[1.0, 0.8, 0.0], [0.0, 0.6, 1.0], [1.0, 0.8, 0.0]]
A = [[1.0, 0.8, 0.0], [0.8, 1.0, 0.6], [0.0, 0.6, 1.0]]


def test_ccsl_selects_pairs_above_gamma_and_averages_2_minus_2s():
    loss, diag = self_labeling_loss(P, Z, "ccsl", gamma=0.7)
    # selected: (0,1) and (1,0): mean(2 − 1.6, 2 − 0) = 1.2
    assert float(loss) == pytest.approx(1.2)
    assert float(diag["sl_selected"]) == pytest.approx(2 / 6)
    # the diagonal (the positive pair itself) is never selected, even with γ < −1
    w = pair_weights(torch.tensor(A), "ccsl", gamma=-2.0)
    assert torch.equal(w, 1 - torch.eye(3))


def test_ccsl_no_selected_pair_gives_zero():
    loss, diag = self_labeling_loss(P, Z, "ccsl", gamma=0.95)
    assert float(loss) == 0.0 and float(diag["sl_selected"]) == 0.0


def test_cssl_weights_every_pair_by_sigmoid():
    gamma, t = 0.7, 0.1
    loss, diag = self_labeling_loss(P, Z, "cssl", gamma=gamma, temperature=t)
    num = den = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                w = 1 / (1 + math.exp(-(A[i][j] - gamma) / t))
                num += w * (2 - 2 * S[i][j])
                den += w
    assert float(loss) == pytest.approx(num / den, rel=1e-5)
    assert float(diag["sl_selected"]) == pytest.approx(den / 6, rel=1e-5)


def test_cssl_tends_to_ccsl_as_temperature_goes_to_zero():
    hard, _ = self_labeling_loss(P, Z, "ccsl", gamma=0.7)
    soft, _ = self_labeling_loss(P, Z, "cssl", gamma=0.7, temperature=1e-3)
    assert float(soft) == pytest.approx(float(hard), abs=1e-6)


@pytest.mark.parametrize(
    "gamma, labels, expected",
    [
        (0.7, [0, 0, 1], 1.0),  # selects (0,1), (1,0): they agree
        (0.7, [0, 1, 1], 0.0),  # ... they disagree
        (0.5, [0, 0, 1], 0.5),  # selects (0,1), (1,0), (1,2), (2,1): half agree
        (0.5, [0, 1, 1], 0.5),
        (0.5, [5, 5, 5], 1.0),
    ],
)
def test_label_agreement_of_selected_pairs(gamma, labels, expected):
    _, diag = self_labeling_loss(P, Z, "ccsl", gamma=gamma, labels=torch.tensor(labels))
    assert float(diag["sl_label_agreement"]) == pytest.approx(expected)


def test_unknown_labels_are_ignored():
    _, diag = self_labeling_loss(P, Z, "ccsl", gamma=0.5, labels=torch.tensor([0, 0, -1]))
    assert float(diag["sl_label_agreement"]) == 1.0  # only (0,1)/(1,0) have two known labels


def test_label_agreement_is_nan_without_a_labeled_selected_pair():
    _, diag = self_labeling_loss(P, Z, "ccsl", gamma=0.95, labels=torch.tensor([0, 0, 1]))
    assert math.isnan(float(diag["sl_label_agreement"]))
    m = _method("ccsl", gamma=2.0)
    out = m([torch.randn(4, 8), torch.randn(4, 8)], labels=torch.tensor([0, 0, 1, 1]))
    assert math.isnan(float(out["sl_label_agreement"])) and float(out["sl_selected"]) == 0.0


def test_gradient_reaches_predictions_of_selected_rows_only_and_not_the_targets():
    p = P.clone().requires_grad_(True)
    z = Z.clone().requires_grad_(True)
    loss, _ = self_labeling_loss(p, z, "ccsl", gamma=0.7)
    loss.backward()
    assert z.grad is None  # targets (and the affinity) are under stop-gradient
    assert p.grad[0].abs().sum() > 0  # row 0 is pulled towards z1 (cos 0.8 → gradient)
    assert torch.equal(p.grad[2], torch.zeros(2))  # row 2 has no selected partner


def _method(name, **kw):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    enc.feature_dim = 16
    return METHODS.build(
        name, encoder=enc, projector=MLPHead(16, 32, 8), predictor=MLPHead(8, 32, 8), ema=EmaConfig(tau_base=0.99), **kw
    )


def test_lambda_ramps_linearly_from_zero():
    m = _method("ccsl", lam=0.5, ramp=0.25)
    assert m.lam_at(0, 100) == 0.0
    assert m.lam_at(10, 100) == pytest.approx(0.2)
    assert m.lam_at(25, 100) == pytest.approx(0.5) and m.lam_at(90, 100) == pytest.approx(0.5)
    assert _method("ccsl", lam=0.5, ramp=0.0).lam_at(0, 100) == 0.5
    v = [torch.randn(8, 8), torch.randn(8, 8)]
    assert float(m(v)["sl_lambda"]) == 0.0  # before any optimizer step
    m.update_targets(9, 100)  # 10 steps done
    assert int(m.steps_done) == 10 and int(m.total_steps) == 100
    assert float(m(v)["sl_lambda"]) == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["ccsl", "cssl"])
def test_total_loss_is_byol_plus_lambda_times_the_pair_terms(name):
    m = _method(name, lam=0.5, ramp=0.0, gamma=-0.5)
    byol = _method("byol")
    v = [torch.randn(8, 8), torch.randn(8, 8)]
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    out = m(v, labels=labels)
    ref = byol(v)
    kw = dict(temperature=0.05) if name == "cssl" else {}
    t1, _ = self_labeling_loss(out["predictions"][0], out["target_projections"][(0, 1)], name, -0.5, **kw)
    t2, _ = self_labeling_loss(out["predictions"][1], out["target_projections"][(0, 0)], name, -0.5, **kw)
    torch.testing.assert_close(out["loss"], ref["loss"] + 0.5 * (t1 + t2))
    torch.testing.assert_close(out["sl_loss"], (t1 + t2).detach())
    assert 0.0 <= float(out["sl_label_agreement"]) <= 1.0
    out["loss"].backward()
    assert all(p.grad is not None for p in m.online.parameters())
    assert all(p.grad is None for p in m.targets.parameters())


def test_ccsl_through_the_trainer_and_exact_resume(tensor_recipe, tmp_path):
    fast = [
        "trainer.tensorboard=false",
        "trainer.progress=false",
        "method.name=cssl",
        "method.gamma=0.5",
        "method.ramp=0.5",
        "trainer.checkpoint_every=15",
    ]
    full = Trainer(load_recipe(tensor_recipe, fast), out_dir=tmp_path / "full", quiet=True).fit()
    part = Trainer(
        load_recipe(tensor_recipe, fast + ["trainer.max_steps=15"]), out_dir=tmp_path / "part", quiet=True
    ).fit()
    assert int(load_checkpoint(part / "checkpoints" / "last.pt")["method"]["steps_done"]) == 15
    # resume the 15-step run's checkpoint inside a full-length run
    resumed = Trainer(
        load_recipe(tensor_recipe, fast),
        out_dir=tmp_path / "resumed",
        resume=str(full / "checkpoints" / "step_00000015.pt"),
        quiet=True,
    ).fit()
    a = load_checkpoint(full / "checkpoints" / "last.pt")["method"]
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")["method"]
    assert int(a["steps_done"]) == 40
    for k in a:
        assert torch.equal(a[k], b[k]), k
