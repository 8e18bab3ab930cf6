import pytest
import torch
from torch import nn

from ssl_toolkit.training.optim import LARS, applied_lr, param_groups
from ssl_toolkit.training.schedules import constant, warmup_cosine


def test_bias_and_norm_parameters_are_excluded():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    groups = param_groups(model, weight_decay=0.1, exclude_bias_and_norm=True)
    decay, no_decay = groups
    assert {p.ndim for p in decay["params"]} == {2} and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0 and no_decay["lars_exclude"]
    assert len(param_groups(model, 0.1, exclude_bias_and_norm=False)) == 1


def test_lars_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ‖w‖ = 5
    b = nn.Parameter(torch.tensor([1.0]))
    w.grad = torch.tensor([[0.0, 1.0]])
    b.grad = torch.tensor([2.0])
    opt = LARS(
        [
            {"params": [w], "weight_decay": 0.5, "lars_exclude": False},
            {"params": [b], "weight_decay": 0.0, "lars_exclude": True},
        ],
        lr=0.1,
        momentum=0.9,
        trust_coefficient=0.001,
    )
    opt.step()
    g = torch.tensor([[0.0, 1.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # decayed gradient (1.5, 3)
    trust = 0.001 * 5 / g.norm()
    assert torch.allclose(w, torch.tensor([[3.0, 4.0]]) - 0.1 * trust * g, atol=1e-7)
    assert torch.allclose(b, torch.tensor([1.0 - 0.1 * 2.0]))  # excluded: plain SGD, no decay, no trust
    w.grad = torch.tensor([[0.0, 1.0]])
    b.grad = torch.tensor([2.0])
    opt.step()
    assert torch.allclose(b, torch.tensor([0.8 - 0.1 * (0.9 * 2.0 + 2.0)]))  # momentum


def test_lr_scaling_is_explicit():
    assert applied_lr(0.2, "linear", 4096)[0] == pytest.approx(3.2)
    assert "× 4096/256" in applied_lr(0.2, "linear", 4096)[1]
    assert applied_lr(0.2, "none", 4096)[0] == 0.2


def test_warmup_cosine_values():
    f = warmup_cosine(total_steps=110, steps_per_epoch=10, warmup_epochs=1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    assert warmup_cosine(100, 10, final_ratio=0.1)(100) == pytest.approx(0.1)
    assert constant(100, 10)(50) == 1.0 and constant(100, 10, warmup_steps=4)(1) == 0.5


def test_constant_lr_prefixes_split_every_group_and_unknown_prefixes_are_refused():
    """``optimizer.constant_lr``: the parameters under a named prefix form their own groups (decayed or not, as
    before) marked ``scheduled: False``; every trainable parameter lands in exactly one group."""
    model = nn.Sequential()
    model.add_module("encoder", nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    model.add_module("predictor", nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    model.add_module("predictor_extra", nn.Linear(4, 2))  # shares the prefix's text, not its module
    groups = param_groups(model, 0.1, exclude_bias_and_norm=True, constant_lr=("predictor",))
    flags = [(g["weight_decay"] > 0, g["scheduled"]) for g in groups]
    assert flags == [(True, True), (False, True), (True, False), (False, False)]
    constant = {id(p) for g in groups if not g["scheduled"] for p in g["params"]}
    assert constant == {id(p) for p in model.predictor.parameters()}
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert [g["scheduled"] for g in param_groups(model, 0.1, False, ())] == [True]
    with pytest.raises(ValueError, match="constant_lr: 'predictr' names no trainable parameter.*encoder.0"):
        param_groups(model, 0.1, True, constant_lr=("predictr",))


def test_constant_lr_parameters_keep_the_base_lr_through_warmup_and_decay(tensor_recipe, tmp_path):
    """SimSiam's fixed predictor lr: at the last of 16 steps (1 warmup epoch of 8, then cosine) the scheduled groups
    are at the schedule's fraction of the base lr, the predictor's at the base lr, in the run's optimizer state."""
    from ssl_toolkit.checkpoint import load_checkpoint
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

    overrides = ["optimizer.constant_lr=[online.predictor]", "trainer.epochs=2", "trainer.tensorboard=false"]
    recipe = load_recipe(tensor_recipe, overrides)
    Trainer(recipe, out_dir=tmp_path / "run", quiet=True).fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    groups = state["optimizer"]["param_groups"]
    base = 0.2 * 32 / 256
    assert [g["scheduled"] for g in groups] == [True, True, False, False]
    factor = warmup_cosine(total_steps=16, steps_per_epoch=8, warmup_epochs=1)(15)
    assert 0 < factor < 0.5
    for g in groups:
        assert g["base_lr"] == pytest.approx(base)
        assert g["lr"] == pytest.approx(base * (factor if g["scheduled"] else 1.0))
