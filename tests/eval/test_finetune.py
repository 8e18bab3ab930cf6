"""The finetune protocol (eval/finetune.py): EVAR's schedule values, the head, what trains and what must not, the
test split read once at the end, determinism, a fine-tune on real audio and on images beating chance, errors."""

import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from evalhelpers import ROOT, TINY_MODEL, audio_recipe

import ssl_toolkit.components  # noqa: F401  (registers every component)
from ssl_toolkit.audio.spec_augment import SpecAugment
from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.finetune import FinetuneInputs, TaskHead, finetune, lr_at
from ssl_toolkit.eval.models import build_encoder
from ssl_toolkit.eval.runner import check_protocols, run_eval
from ssl_toolkit.eval.schema import FinetuneConfig, eval_recipe_from_dict
from ssl_toolkit.eval.task_runner import finetune_config
from ssl_toolkit.recipe import Component
from ssl_toolkit.recipe.errors import RecipeError

FAST = {"epochs": 4, "warmup_epochs": 1, "lr": 0.05, "batch_size": 8, "runs": 2}


def test_lr_schedule_is_evars_timm_cosine_with_linear_warmup():
    lr, epochs, warm = 0.1, 10, 2
    assert lr_at(0.0, lr, epochs, warm) == 0.0
    assert lr_at(1.0, lr, epochs, warm) == pytest.approx(0.05)
    assert lr_at(2.0, lr, epochs, warm) == pytest.approx(1e-7 + 0.5 * (0.1 - 1e-7) * (1 + math.cos(math.pi * 0.2)))
    assert lr_at(5.0, lr, epochs, warm) == pytest.approx(1e-7 + 0.5 * (0.1 - 1e-7))
    assert lr_at(10.0, lr, epochs, warm) == pytest.approx(1e-7)
    after = [lr_at(t, lr, epochs, warm) for t in np.linspace(2, 10, 50)]
    assert all(a > b for a, b in zip(after, after[1:]))
    assert lr_at(3.0, lr, epochs, 0) == pytest.approx(1e-7 + 0.5 * (0.1 - 1e-7) * (1 + math.cos(math.pi * 0.3)))


def test_head_is_batchnorm_without_affine_then_linear_n0_001():
    head = TaskHead(2048, 50, torch.Generator().manual_seed(0))
    assert not head.norm.affine and head.norm.running_mean is not None
    assert head.linear.bias.abs().sum() == 0
    assert head.linear.weight.std().item() == pytest.approx(0.01, rel=0.02)


def test_spec_augment_masks_one_band_and_one_span_per_sample():
    op = SpecAugment(freq_mask=5, time_mask=7, value=-1.0)
    x = torch.zeros(4, 1, 16, 30)
    params = {
        "f0": torch.tensor([0, 3, 10, 2]),
        "fw": torch.tensor([2, 0, 4, 1]),
        "t0": torch.tensor([5, 0, 29, 1]),
        "tw": torch.tensor([3, 1, 1, 0]),
    }
    y = op.transform(x, params)
    want = torch.zeros_like(x)
    for i in range(4):
        f0, fw, t0, tw = (int(params[k][i]) for k in ("f0", "fw", "t0", "tw"))
        want[i, :, f0 : f0 + fw, :] = -1.0
        want[i, :, :, t0 : t0 + tw] = -1.0
    assert torch.equal(y, want)
    g = torch.Generator().manual_seed(0)
    p = op.make_params(torch.zeros(500, 1, 16, 30), g)
    assert p["fw"].max() <= 4 and p["tw"].max() <= 6 and p["fw"].min() == 0
    assert (p["f0"] + p["fw"]).max() <= 16 and (p["t0"] + p["tw"]).max() <= 30
    assert len(set(p["t0"].tolist())) > 10  # per sample


def _toy(n=60, dim=8, classes=3, seed=0):
    """Vectors with class-dependent means, a front end with a buffer (pre_norm-like), a tiny MLP encoder."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (g.standard_normal((n, dim)) + 4.0 * np.eye(classes, dim)[y]).astype(np.float32)

    class Shift(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(0.5))

        def forward(self, v, generator=None):
            return v - self.mean

    front = [Shift()]
    calls = []

    def features(encoder, rows):
        calls.append(np.asarray(rows).copy())
        with torch.no_grad():
            return encoder(front[0](torch.from_numpy(x[rows]))).numpy()

    inputs = FinetuneInputs(lambda rows, rng: torch.from_numpy(x[rows]), features, front)
    encoder = build_encoder({"name": "mlp_encoder", "in_dim": dim, "hidden_dim": 16, "depth": 2}, None, "toy", 0)
    return encoder, inputs, y, calls


def _cfg(**kw):
    return FinetuneConfig(**{**FAST, **kw})


def test_finetune_trains_every_encoder_parameter_and_nothing_of_the_front_end_reading_test_last():
    encoder, inputs, y, calls = _toy()
    before = copy.deepcopy(encoder.state_dict())
    front_before = inputs.frontend[0].mean.clone()
    train, valid, test = np.arange(0, 36), np.arange(36, 48), np.arange(48, 60)
    res = finetune(
        encoder,
        inputs,
        y,
        train,
        valid,
        test,
        num_classes=3,
        multi_label=False,
        cfg=_cfg(epochs=10, lr=0.3, batch_size=36),
        seed=0,
        device=torch.device("cpu"),
        precision="fp32",
    )
    tuned = dict(res.encoder.named_parameters())
    for name, p in encoder.named_parameters():
        grad = tuned[name].grad
        assert tuned[name].requires_grad and grad is not None, f"{name} receives no gradient"
        # every parameter moves, except a bias right before BatchNorm: its gradient is 0 up to rounding
        moved = not torch.equal(tuned[name], before[name])
        assert moved or (name.endswith("bias") and grad.abs().max() < 1e-6), name
        assert torch.equal(p, before[name]), "the given encoder must stay untouched"
        assert not p.requires_grad
    assert torch.equal(inputs.frontend[0].mean, front_before)
    assert all(set(c) == set(valid) for c in calls[:-1]) and len(calls) == 11  # 10 epochs of validation, then test
    assert set(calls[-1]) == set(test)
    assert res.test_score > 0.6 and len(res.curve["valid"]) == 10
    assert res.best_epoch == int(np.argmax(res.curve["valid"]))
    assert res.curve["train_loss"][-1] < res.curve["train_loss"][0]


def test_finetune_is_deterministic_per_seed_and_seeds_differ():
    encoder, inputs, y, _ = _toy()
    cfg = _cfg(mixup=0.4, augment=[Component({"name": "gaussian_noise", "max_std": 0.3})])
    args = (encoder, inputs, y, np.arange(0, 36), np.arange(36, 48), np.arange(48, 60))
    kw = dict(num_classes=3, multi_label=False, cfg=cfg, device=torch.device("cpu"), precision="fp32")
    a, b, c = finetune(*args, seed=1, **kw), finetune(*args, seed=1, **kw), finetune(*args, seed=2, **kw)
    assert a.curve == b.curve and np.array_equal(a.test_outputs, b.test_outputs)
    assert a.curve["train_loss"] != c.curve["train_loss"]


def test_select_epoch_last_tests_the_final_weights_and_best_restores_the_best_epoch(tone_csv, tmp_path):
    """Same seed, same training: ``best`` tests the epoch of the highest validation score (restored), ``last`` the
    weights after the final epoch (BYOL App. C.1); a noisy lr makes the two differ."""
    encoder, inputs, y, _ = _toy()
    args = (encoder, inputs, y, np.arange(0, 36), np.arange(36, 48), np.arange(48, 60))
    kw = dict(num_classes=3, multi_label=False, seed=3, device=torch.device("cpu"), precision="fp32")
    best = finetune(*args, cfg=_cfg(epochs=8, lr=2.0, select_epoch="best"), **kw)
    last = finetune(*args, cfg=_cfg(epochs=8, lr=2.0, select_epoch="last"), **kw)
    assert best.curve == last.curve  # the choice changes nothing of the training
    assert last.best_epoch == 7 and last.valid_score == last.curve["valid"][-1]
    assert best.best_epoch == int(np.argmax(best.curve["valid"])) and best.valid_score == max(best.curve["valid"])
    last.head.eval()
    with torch.no_grad():  # the returned (final) weights give the tested outputs
        final = last.head(torch.from_numpy(inputs.features(last.encoder, np.arange(48, 60)))).numpy()
    assert np.allclose(final, last.test_outputs, atol=1e-5)
    assert best.best_epoch != 7 and not np.allclose(best.test_outputs, last.test_outputs)
    with pytest.raises(RecipeError, match="finetune.patience.*early stopping needs select_epoch: best"):
        eval_recipe_from_dict({**audio_recipe(tone_csv, tmp_path), "finetune": {"patience": 3, "select_epoch": "last"}})


def test_freeze_bn_keeps_the_encoders_batchnorm_statistics():
    encoder, inputs, y, _ = _toy()
    stats = {k: v.clone() for k, v in encoder.state_dict().items() if "running" in k}
    res = finetune(
        encoder,
        inputs,
        y,
        np.arange(36),
        np.arange(36, 48),
        np.arange(48, 60),
        num_classes=3,
        multi_label=False,
        cfg=_cfg(freeze_bn=True),
        seed=0,
        device=torch.device("cpu"),
        precision="fp32",
    )
    tuned = res.encoder.state_dict()
    assert stats and all(torch.equal(tuned[k], v) for k, v in stats.items())


def test_an_encoder_without_parameters_cannot_be_fine_tuned():
    model = SimpleNamespace(encoder=torch.nn.Identity(), encoder_spec={"name": "identity"})
    task = SimpleNamespace(name="t", protocols=["linear", "finetune"])
    with pytest.raises(EvalError, match="task 't' key protocols.*no parameters.*cannot be fine-tuned"):
        check_protocols(task, model, "ckpt")
    check_protocols(SimpleNamespace(name="t", protocols=["linear"]), model, "ckpt")


def test_eval_finetune_rows_beside_linear_deterministic_with_curves(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path, protocols=["linear", "finetune"])
    tree["finetune"] = dict(FAST, augment=[{"name": "spec_augment", "freq_mask": 8, "time_mask": 10}], mixup=0.3)
    tree["plots"] = {"enabled": True, "tsne": False, "confusion": False}
    a = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "a", quiet=True)
    b = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "b", quiet=True)
    e = a["tasks"]["tones/finetune"]
    assert e["protocol"] == "finetune" and len(e["runs"]) == 2 and len(e["curves"]) == 2
    assert len(e["curves"][0]["valid"]) == 4 and e["n_valid"] == 6  # the task's valid split
    assert e["runs"] == b["tasks"]["tones/finetune"]["runs"]
    assert "tones/finetune" not in a["baselines"]["logmel"]["tasks"]  # nothing to fine-tune in log-mel
    assert "tones/linear" in a["baselines"]["logmel"]["tasks"]
    assert (tmp_path / "a" / "plots" / "tones_finetune_curves.png").stat().st_size > 5000
    md = (tmp_path / "a" / "results.md").read_text()
    assert "accuracy (fine-tuned)" in md and "fine-tuning (encoder + BatchNorm/Linear head): SGD lr 0.05" in md
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["protocol"]["finetune"]["mixup"] == 0.3


def test_baseline_lr_trains_the_random_init_system_only(tone_csv, tmp_path):
    """``finetune.baseline_lr`` is the lr of the random-init system (supervised from scratch); a pretrained encoder
    keeps ``lr``; the lr used is written beside each fine-tuning row."""
    recipe = eval_recipe_from_dict({**audio_recipe(tone_csv, tmp_path), "finetune": dict(FAST, baseline_lr=0.5)})
    assert finetune_config(recipe, "random").lr == 0.5 and finetune_config(recipe, "model").lr == 0.05
    assert finetune_config(recipe, "random").epochs == FAST["epochs"] and recipe.finetune.lr == 0.05  # a copy
    tree = audio_recipe(tone_csv, tmp_path, protocols=["finetune"])
    runs = {}
    for tag, ft in (("same", FAST), ("lr", dict(FAST, lr=0.5)), ("baseline", dict(FAST, baseline_lr=0.5))):
        res = run_eval(eval_recipe_from_dict({**tree, "finetune": ft}), "random", out_dir=tmp_path / tag, quiet=True)
        e = res["tasks"]["tones"]
        runs[tag] = (e["lr"], e["curves"][0]["lr"], e["curves"][0]["train_loss"])
    assert runs["baseline"] == runs["lr"] and runs["baseline"][0] == 0.5  # "random" is the random-init system
    assert runs["same"][0] == 0.05 and np.allclose(runs["baseline"][1], np.multiply(runs["same"][1], 10), rtol=1e-3)
    assert runs["same"][2] != runs["baseline"][2]
    with pytest.raises(RecipeError, match="key .finetune.baseline_lr.: out of range: 0"):
        eval_recipe_from_dict({**tree, "finetune": dict(FAST, baseline_lr=0)})


def test_a_tiny_finetune_on_real_speech_beats_chance(tmp_path):
    """Speaker identification on the FSDD clips shipped with the demo (6 speakers; take 0 test, take 1 valid, takes 2-4
    train), a tiny BYOL-A v1 encoder from random init, 10 epochs: far above the 16.7 % of chance (85 % measured)."""
    tree = {
        "name": "fsdd_mini",
        "model": TINY_MODEL,
        "cache_dir": str(tmp_path / "cache"),
        "baselines": [],
        "plots": {"enabled": False},
        "finetune": {"epochs": 10, "warmup_epochs": 1, "lr": 0.1, "batch_size": 32, "runs": 1},
        "tasks": [
            {
                "name": "speaker",
                "kind": "audio_classification",
                "metadata": str(ROOT / "data/demo/fsdd_mini/metadata.csv"),
                "audio_dir": "recordings",
                "unit_sec": 1.0,
                "protocols": ["finetune"],
                "label_column": "speaker",
                "split_column": "take",
                "split_values": {"test": "0", "valid": "1"},
            }
        ],
    }
    res = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "o", quiet=True)
    e = res["tasks"]["speaker"]
    assert (e["n_train"], e["n_valid"], e["n_test"], e["num_classes"]) == (180, 60, 60, 6)
    assert e["mean"] > 0.5, e


def test_image_finetune_with_crops_and_flips_learns_colour_classes(tmp_path):
    g = np.random.default_rng(0)

    def images(n):
        y = np.arange(n) % 2
        x = g.integers(0, 60, (n, 16, 16, 3), dtype=np.uint8)
        x[y == 1, :, :, 0] += 150  # class 1 is red
        return x, y

    (xtr, ytr), (xte, yte) = images(64), images(20)
    np.savez(tmp_path / "d.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    tree = {
        "name": "img",
        "baselines": ["random"],
        "cache_dir": str(tmp_path / "cache"),
        "plots": {"enabled": False},
        "model": {
            "encoder": {"name": "resnet18", "cifar_stem": True, "width": 0.125},
            "frontend": [{"name": "to_float"}, {"name": "normalize"}],
        },
        "finetune": {
            "epochs": 3,
            "warmup_epochs": 0,
            "lr": 0.05,
            "batch_size": 16,
            "runs": 1,
            "nesterov": True,
            "augment": [{"name": "random_resized_crop", "size": 16, "scale": [0.5, 1.0]}, {"name": "horizontal_flip"}],
        },
        "tasks": [
            {
                "name": "colour",
                "kind": "image_classification",
                "dataset": {"name": "npz", "path": str(tmp_path / "d.npz")},
                "protocols": ["finetune"],
                "label_fraction": [0.5, 1.0],
            }
        ],
    }
    res = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "o", quiet=True)
    assert res["tasks"]["colour"]["mean"] >= 0.9
    assert res["tasks"]["colour@50%"]["n_train"] + res["tasks"]["colour@50%"]["n_valid"] == 32
