"""RankMe (Garrido et al. 2023, eq. 1) on hand-checkable matrices, and the monitor hook: columns, the
random-init scale, no effect on training, exact resume."""

import csv
import math

import pytest
import torch

from ssl_toolkit.checkpoint import TrainingState
from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.training.rankme import EPS, rankme
from ssl_toolkit.training.trainer import Trainer

FAST = ["trainer.tensorboard=false", "trainer.progress=false"]


def test_rank_one_matrix_gives_one():
    u, v = torch.randn(50, 1), torch.randn(1, 8)
    assert rankme(u @ v) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("d", [1, 4, 16])
def test_orthonormal_columns_give_d(d):
    q, _ = torch.linalg.qr(torch.randn(64, d))
    p = 1.0 / d + EPS  # all singular values equal
    assert rankme(q) == pytest.approx(math.exp(-d * p * math.log(p)), rel=1e-9)
    assert rankme(q) == pytest.approx(d, rel=1e-5)


def test_hand_computed_spectrum_and_invariances():
    z = torch.diag(torch.tensor([3.0, 1.0]))  # σ = (3, 1): p = (0.75, 0.25)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64) + EPS
    assert rankme(z) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-12)
    x = torch.randn(40, 6)
    assert rankme(5 * x) == pytest.approx(rankme(x), rel=1e-9)  # scale-free
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    assert rankme(x @ q) == pytest.approx(rankme(x), rel=1e-6)  # rotation-free
    assert 1 <= rankme(x) <= 6
    with pytest.raises(ValueError, match="non-empty"):
        rankme(torch.zeros(0, 3))


def rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_monitor_logs_columns_and_does_not_change_training(tensor_recipe, tmp_path):
    base = [*FAST, "trainer.max_steps=12", "trainer.log_every=2"]
    off = Trainer(load_recipe(tensor_recipe, [*base, "trainer.hooks=[]"]), out_dir=tmp_path / "off", quiet=True).fit()
    on = Trainer(
        load_recipe(tensor_recipe, [*base, "trainer.hooks=[{name: rankme, every: 4, pool: 64}]"]),
        out_dir=tmp_path / "on",
        quiet=True,
    ).fit()
    r_off, r_on = rows(off), rows(on)
    assert [r["loss"] for r in r_off] == [r["loss"] for r in r_on]  # bit-identical losses
    a, b = (TrainingState.load(d / "checkpoints/last.pt").method for d in (off, on))
    assert all(torch.equal(a[k], b[k]) for k in a)
    got = {int(r["step"]): r["rankme"] for r in r_on}
    assert set(k for k, v in got.items() if v) == {4, 8, 12}  # every 4 steps and the last
    assert got[2] == ""  # the first row carries the columns and the init values, measured before step 0
    init = float(r_on[0]["rankme_init"])
    assert 1 <= init <= 32 and 1 <= float(r_on[0]["rankme_proj_init"]) <= 16  # ≤ min(pool, D)
    assert all(1 <= float(v) <= 32 for v in got.values() if v)


def test_monitor_resumes_with_the_same_init_scale(tensor_recipe, tmp_path):
    hooks = "trainer.hooks=[{name: rankme, every: 2, pool: 64}]"
    # schedules that do not depend on the run's length, so that 4 + 4 resumed steps equal 8 steps
    FIXED = [*FAST, "schedule.name=constant", "schedule.warmup_epochs=0", "ema.schedule=constant"]
    out = Trainer(
        load_recipe(tensor_recipe, [*FIXED, "trainer.max_steps=4", "trainer.log_every=2", hooks]),
        out_dir=tmp_path / "r",
        quiet=True,
    ).fit()
    first = rows(out)[0]["rankme_init"]
    Trainer(
        load_recipe(tensor_recipe, [*FIXED, "trainer.max_steps=8", "trainer.log_every=2", hooks]),
        out_dir=out,
        resume="auto",
        quiet=True,
    ).fit()
    assert {r["rankme_init"] for r in rows(out)} == {first}
    ref = Trainer(
        load_recipe(tensor_recipe, [*FIXED, "trainer.max_steps=8", "trainer.log_every=2", hooks]),
        out_dir=tmp_path / "ref",
        quiet=True,
    ).fit()
    assert [r["loss"] for r in rows(ref)] == [r["loss"] for r in rows(out)]
    assert [r["rankme"] for r in rows(ref)] == [r["rankme"] for r in rows(out)]


def test_monitor_parameters_are_checked(tensor_recipe, tmp_path):
    with pytest.raises(RecipeError, match="rankme"):
        load_recipe(tensor_recipe, ["trainer.hooks=[{name: rankme, pool_size: 3}]"])
    with pytest.raises(RecipeError, match=r"key 'trainer.hooks.0.every': expected a value in \[1, inf\), got 0"):
        load_recipe(tensor_recipe, [*FAST, "trainer.hooks=[{name: rankme, every: 0}]"])
    with pytest.raises(RecipeError, match=r"key 'trainer.hooks.0.pool': expected a value in \[2, inf\), got 1"):
        load_recipe(tensor_recipe, [*FAST, "trainer.hooks=[{name: rankme, pool: 1}]"])


def test_monitor_under_ddp_rank0_computes_and_training_matches_one_process(single_and_ddp, tmp_path):
    views = "views.branches=[[{name: identity}], [{name: random_scale, low: 1.0, high: 1.0}]]"
    a, b = single_and_ddp(
        [
            "trainer.max_steps=6",
            "trainer.log_every=2",
            views,
            "trainer.sync_batchnorm=true",
            "trainer.hooks=[{name: rankme, every: 3, pool: 64}]",
        ]
    )  # deadlock-free: it returned
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    assert [bool(r["rankme"]) for r in rows(tmp_path / "ddp")] == [False, True, True]  # steps 4 (≥ 3) and 6
