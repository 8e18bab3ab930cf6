"""The probe monitor: the ridge probe against its closed form, the hook's columns and random-init scale on an image
and an audio run, no effect on training, exact resume, DDP, and its errors."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ssl_toolkit.checkpoint import TrainingState
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.training import probe_monitor
from ssl_toolkit.training.probe_monitor import ridge_probe
from ssl_toolkit.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
FAST = ["trainer.tensorboard=false", "trainer.progress=false"]
# schedules that do not depend on the run's length, so that a resumed run equals a straight one
FIXED = ["schedule.name=constant", "schedule.warmup_epochs=0", "ema.schedule=constant"]


def rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the ridge probe
def test_ridge_probe_equals_the_closed_form(monkeypatch):
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(30, 5)), rng.normal(size=(7, 5))
    y = rng.integers(0, 3, 30)
    monkeypatch.setattr(probe_monitor, "RIDGE_ALPHAS", (2.5,))
    got = ridge_probe(x, y, xt, 3)
    mean, std = x.mean(0), x.std(0)
    xs, xts = (x - mean) / std, (xt - mean) / std
    t = np.eye(3)[y]
    w = np.linalg.solve(xs.T @ xs + 2.5 * np.eye(5), xs.T @ (t - t.mean(0)))  # intercept: centered, unpenalized
    assert np.allclose(got, xts @ w + t.mean(0), atol=1e-5)


def test_ridge_probe_separates_clusters_and_not_noise():
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=4, size=(4, 16))
    y, yt = rng.integers(0, 4, 200), rng.integers(0, 4, 100)
    x, xt = centers[y] + rng.normal(size=(200, 16)), centers[yt] + rng.normal(size=(100, 16))
    assert (ridge_probe(x, y, xt, 4).argmax(1) == yt).mean() == 1.0
    noise = (ridge_probe(rng.normal(size=(200, 16)), y, rng.normal(size=(100, 16)), 4).argmax(1) == yt).mean()
    assert noise < 0.45  # chance is 0.25
    multi = ridge_probe(x, np.eye(4)[y], xt, 4, multi_label=True)
    assert multi.shape == (100, 4)


# ----------------------------------------------------------------------------- image runs
@pytest.fixture
def image_setup(tmp_path):
    """A tiny BYOL run on 16x16 images of 2 classes (dark/bright) and an eval recipe with that task."""
    rng = np.random.default_rng(0)

    def images(n):
        y = np.arange(n) % 2
        x = rng.integers(0, 100, size=(n, 16, 16, 3)) + 120 * y[:, None, None, None]
        return x.astype(np.uint8), y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = images(64), images(24)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    ev = tmp_path / "probe_eval.yaml"
    ev.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "knn": {"k": 5, "temperature": 0.1},
                "tasks": [
                    {"name": "tiny-task", "kind": "image_classification", "dataset": {"name": "npz", "path": str(npz)}}
                ],
            }
        )
    )
    crop = "{name: random_resized_crop, size: 16, scale: [0.5, 1.0]}"
    train = [
        *FAST,
        f"data.dataset.path={npz}",
        "data.batch_size=16",
        "model.encoder.width=0.125",
        "model.projector.hidden_dim=32",
        "model.predictor.hidden_dim=32",
        "model.projector.out_dim=16",
        "model.predictor.out_dim=16",
        f"views.branches=[[{crop}], [{crop}]]",
        "trainer.max_minutes=null",
        "trainer.log_every=2",
        "precision=fp32",
    ]
    return ROOT / "recipes/image/byol_cifar10_cpu.yaml", train, ev


def test_image_probe_columns_scale_and_no_effect_on_training(image_setup, tmp_path):
    recipe, train, ev = image_setup
    base = [*train, "trainer.epochs=3"]  # 4 steps per epoch
    off = Trainer(load_recipe(recipe, [*base, "trainer.hooks=[]"]), out_dir=tmp_path / "off", quiet=True).fit()
    on = Trainer(
        load_recipe(recipe, [*base, f"trainer.hooks=[{{name: probe, recipe: {ev}, every_epochs: 2}}]"]),
        out_dir=tmp_path / "on",
        quiet=True,
    ).fit()
    r_off, r_on = rows(off), rows(on)
    assert [r["loss"] for r in r_off] == [r["loss"] for r in r_on]  # bit-identical losses
    a, b = (TrainingState.load(d / "checkpoints/last.pt").method for d in (off, on))
    assert all(torch.equal(a[k], b[k]) for k in a)
    got = {int(r["step"]): r["monitor_tiny_task"] for r in r_on}
    assert {k for k, v in got.items() if v} == {10, 12}  # the first log of epoch 2, the last step
    assert got[2] == "" and r_on[0]["monitor_tiny_task_init"]  # the first row: the column and the init scale
    init = {r["monitor_tiny_task_init"] for r in r_on if r["monitor_tiny_task"]}
    assert len(init) == 1 and 0.0 <= float(init.pop()) <= 1.0
    assert all(0.0 <= float(v) <= 1.0 for v in got.values() if v)


def test_probe_scores_what_the_features_say(image_setup, tmp_path, monkeypatch):
    """A probe that sees the labels in its features scores 1, one that sees noise scores near chance."""
    recipe, train, ev = image_setup
    from ssl_toolkit.training import rankme

    def fake(run, items, frontend, batch_size, projector=False):  # feature = mean brightness (the class)
        bright = items.float().mean((1, 2, 3))
        return torch.stack([bright, 255 - bright], 1), None

    monkeypatch.setattr(rankme, "online_features", fake)
    out = Trainer(
        load_recipe(recipe, [*train, "trainer.epochs=1", f"trainer.hooks=[{{name: probe, recipe: {ev}}}]"]),
        out_dir=tmp_path / "r",
        quiet=True,
    ).fit()
    assert float(rows(out)[0]["monitor_tiny_task_init"]) == 1.0


def test_image_probe_resumes_with_the_same_scale_and_values(image_setup, tmp_path):
    recipe, train, ev = image_setup
    hooks = f"trainer.hooks=[{{name: probe, recipe: {ev}, every_epochs: 1}}]"
    common = [*train, *FIXED, hooks, "trainer.log_every=4"]  # rows at 4 (first, end of part 1) and 8 (the last)
    out = Trainer(load_recipe(recipe, [*common, "trainer.max_steps=4"]), out_dir=tmp_path / "r", quiet=True).fit()
    Trainer(load_recipe(recipe, [*common, "trainer.max_steps=8"]), out_dir=out, resume="auto", quiet=True).fit()
    ref = Trainer(load_recipe(recipe, [*common, "trainer.max_steps=8"]), out_dir=tmp_path / "ref", quiet=True).fit()
    assert [r["loss"] for r in rows(ref)] == [r["loss"] for r in rows(out)]
    # the first part also measured at its own last step (4); every measurement of the straight run is repeated
    ref_v, out_v = ({r["step"]: r["monitor_tiny_task"] for r in rows(d)} for d in (ref, out))
    assert ref_v["8"] and all(out_v[k] == v for k, v in ref_v.items() if v)
    assert {r["monitor_tiny_task_init"] for r in rows(out) if r["monitor_tiny_task_init"]} == {
        r["monitor_tiny_task_init"] for r in rows(ref) if r["monitor_tiny_task_init"]
    }


def test_probe_resumes_a_checkpoint_whose_init_is_a_bare_number(image_setup, tmp_path):
    """Checkpoints written before the monitors shared one base kept the probe's init as a float."""
    from ssl_toolkit.checkpoint import TrainingState

    recipe, train, ev = image_setup
    hooks = f"trainer.hooks=[{{name: probe, recipe: {ev}, every_epochs: 1}}]"
    common = [*train, *FIXED, hooks, "trainer.log_every=4"]
    out = Trainer(load_recipe(recipe, [*common, "trainer.max_steps=4"]), out_dir=tmp_path / "r", quiet=True).fit()
    path = out / "checkpoints" / "last.pt"
    state = TrainingState.load(path)
    (key,) = [k for k in state.hooks if k.startswith("ProbeMonitor")]
    state.hooks[key]["init"] = 0.25  # the old layout, and a value no random init of this task gives
    state.save(path)
    Trainer(load_recipe(recipe, [*common, "trainer.max_steps=8"]), out_dir=out, resume="auto", quiet=True).fit()
    assert rows(out)[-1]["monitor_tiny_task_init"] == "0.25"


def test_probe_errors_name_the_key_and_what_was_expected(image_setup, tmp_path):
    from ssl_toolkit.recipe import RecipeError

    recipe, train, ev = image_setup
    cases = [
        (f"{{name: probe, recipe: {ev}, task: nope}}", r"no task 'nope' in .*probe_eval.yaml \(tasks: tiny-task\)"),
        (f"{{name: probe, recipe: {tmp_path / 'missing.yaml'}}}", "missing.yaml"),
        (
            f"{{name: probe, recipe: {ROOT / 'recipes/eval/fsdd_demo.yaml'}}}",
            "is an audio task, but this run trains an image encoder",
        ),
    ]
    for i, (hook, message) in enumerate(cases):
        with pytest.raises(ValueError, match=message):
            Trainer(
                load_recipe(recipe, [*train, "trainer.max_steps=1", f"trainer.hooks=[{hook}]"]),
                out_dir=tmp_path / f"e{i}",
                quiet=True,
            ).fit()
    with pytest.raises(RecipeError, match=r"trainer.hooks.0.every_epochs"):
        load_recipe(recipe, [*train, f"trainer.hooks=[{{name: probe, recipe: {ev}, every_epochs: 0}}]"])
    with pytest.raises(RecipeError, match=r"trainer.hooks.0.probe"):
        load_recipe(recipe, [*train, f"trainer.hooks=[{{name: probe, recipe: {ev}, probe: svm}}]"])


def test_image_probe_under_ddp_rank0_computes(image_setup, tmp_path):
    recipe, train, ev = image_setup
    args = [
        str(recipe),
        *train,
        "trainer.epochs=2",
        "data.batch_size=8",
        "--quiet",
        "--out",
        str(tmp_path / "ddp"),
        f"trainer.hooks=[{{name: probe, recipe: {ev}, every_epochs: 1}}]",
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "ssl_toolkit",
            "train",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr  # no deadlock, no error on rank 1
    got = [r["monitor_tiny_task"] for r in rows(tmp_path / "ddp")]
    assert got[-1] and all(0 <= float(v) <= 1 for v in got if v)


# ----------------------------------------------------------------------------- an audio run
def test_audio_probe_on_the_demo_task_does_not_change_training(tmp_path, monkeypatch):
    recipe = ROOT / "recipes/audio/byola_fsdd.yaml"
    base = [
        *FAST,
        "model.encoder.feature_d=64",
        "model.projector.hidden_dim=32",
        "model.predictor.hidden_dim=32",
        "data.batch_size=32",
        "trainer.max_steps=4",
        "trainer.log_every=2",
        "views.input.1.n_stats=64",
        "trainer.hooks=[]",
    ]
    probe = (
        f"trainer.hooks=[{{name: probe, recipe: {ROOT}/recipes/eval/fsdd_demo.yaml, max_train: 40, max_test: 20, "
        "every_epochs: 1}]"
    )
    off = Trainer(load_recipe(recipe, base), out_dir=tmp_path / "off", quiet=True).fit()
    trainer = Trainer(load_recipe(recipe, [*base, probe]), out_dir=tmp_path / "on", quiet=True)
    on = trainer.fit()
    assert [r["loss"] for r in rows(off)] == [r["loss"] for r in rows(on)]
    # EVAR pre-normalization: the probe's clips are normalized with the statistics of its own training clips
    # (population mean / std of their log-mel pieces), while the run keeps the statistics of its training data
    from ssl_toolkit.audio.embedding import Pieces, split_frontend

    hook = next(h for h in trainer.hooks.hooks if isinstance(h, probe_monitor.ProbeMonitor))
    upstream, probe_norm, _ = split_frontend(hook.frontend)
    _, run_norm, _ = split_frontend(list(trainer.run.learner.views.input.ops))
    pieces = Pieces.cut(hook.x_train, hook.task.unit_sec, hook.sample_rate, hook.task.long_clips)
    with torch.no_grad():
        mel = torch.cat([torch.nn.Sequential(*upstream)(pieces.batch(idx)) for idx in pieces.batches(16)])
    assert float(probe_norm.mean) == pytest.approx(mel.double().mean().item(), rel=1e-4)
    assert float(probe_norm.std) == pytest.approx(mel.double().std(unbiased=False).item(), rel=1e-4)
    assert abs(float(run_norm.mean) - float(probe_norm.mean)) > 0.1  # FSDD training audio vs these clips
    # the front end's output is kept between measurements and scores exactly as recomputing it
    assert set(hook.frontend_out) == {"train", "test"}
    kept = hook.measure(trainer.run)
    hook.frontend_out.clear()
    monkeypatch.setattr(probe_monitor, "MAX_KEPT_BYTES", 0)  # no room: nothing is kept
    assert hook.measure(trainer.run) == kept and not hook.frontend_out
    got = [r["monitor_fsdd_mini_digits"] for r in rows(on)]
    assert got[-1] and all(0 <= float(v) <= 1 for v in got if v)
    assert float(rows(on)[0]["monitor_fsdd_mini_digits_init"]) >= 0.0
