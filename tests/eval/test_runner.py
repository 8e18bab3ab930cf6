"""End-to-end evaluation on synthetic tone tasks: results schema, baselines, caching, checkpoints."""

import json

import numpy as np
import pytest
import torch
from evalhelpers import audio_recipe

from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.runner import run_eval
from ssl_toolkit.eval.schema import eval_recipe_from_dict

ENTRY_KEYS = {"metric", "mean", "std", "runs", "n_train", "n_test"}


def check_results_schema(results: dict, tasks: list[str], baselines: list[str], runs: int):
    assert results["format"] == "ssl_toolkit.eval.results/1"
    assert isinstance(results["checkpoint"], str)
    assert list(results["tasks"]) == tasks
    assert sorted(results["baselines"]) == sorted(baselines)
    for entries in [results["tasks"]] + [b["tasks"] for b in results["baselines"].values()]:
        assert set(entries) <= set(tasks)
        for e in entries.values():
            assert ENTRY_KEYS <= set(e), e.keys()
            assert e["metric"] in ("accuracy", "mAP")
            assert isinstance(e["n_train"], int) and isinstance(e["n_test"], int) and e["n_test"] > 0
            assert 0.0 <= e["mean"] <= 1.0 and e["std"] >= 0.0
            assert all(isinstance(r, float) for r in e["runs"])
            assert e["mean"] == pytest.approx(np.mean(e["runs"]))


def run(tree, checkpoint, out):
    return run_eval(eval_recipe_from_dict(tree), checkpoint, out_dir=out, quiet=True)


def test_random_checkpoint_end_to_end_writes_everything(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path)
    tree["plots"] = {"enabled": True, "tsne_points": 50}
    out = tmp_path / "out"
    res = run(tree, "random", out)
    on_disk = json.loads((out / "results.json").read_text())
    check_results_schema(on_disk, ["tones"], ["logmel"], runs=2)
    e = on_disk["tasks"]["tones"]
    assert (e["n_train"], e["n_valid"], e["n_test"], e["num_classes"]) == (12, 6, 6, 3)
    assert len(e["runs"]) == 2 and e["embedding_dim"] == 64
    assert on_disk["baselines"]["logmel"]["tasks"]["tones"]["embedding_dim"] == 128  # [mean, max] of 64 bins
    # tones differ by frequency: the no-learning log-mel feature separates them
    assert on_disk["baselines"]["logmel"]["tasks"]["tones"]["mean"] > 0.9
    assert on_disk["checkpoint_info"]["kind"] == "random"
    md = (out / "results.md").read_text()
    assert "| tones | accuracy |" in md and "random init (evaluated)" in md and "log-mel" in md
    for name in ("tones_bars.png", "tones_confusion.png", "tones_tsne.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    assert "The `*_tsne.png` maps place a stratified sample" in md and "carry no meaning" in md
    assert res["tasks"]["tones"]["mean"] == e["mean"]


def test_checkpoint_is_compared_with_random_and_logmel(tone_csv, tmp_path, tiny_audio_checkpoint):
    ckpt = tiny_audio_checkpoint(seed=5)
    res = run(audio_recipe(tone_csv, tmp_path), str(ckpt.parent.parent), tmp_path / "out")
    check_results_schema(res, ["tones"], ["random", "logmel"], runs=2)
    info = res["checkpoint_info"]
    assert info["kind"] == "checkpoint" and info["from"] == "weights card"
    assert info["encoder"]["feature_d"] == 64 and [f["name"] for f in info["frontend"]] == ["log_mel", "pre_norm"]
    # EVAR: pre_norm statistics from the task's training clips, not the checkpoint's (-6, 4.5)
    assert res["tasks"]["tones"]["prenorm"]["mean"] != pytest.approx(-6.0)


def test_cache_hits_and_invalidates_when_the_checkpoint_changes(tone_csv, tmp_path, tiny_audio_checkpoint):
    tree = audio_recipe(tone_csv, tmp_path, fold_column="fold")
    tree["baselines"] = []
    ckpt = tiny_audio_checkpoint(seed=1)
    first = run(tree, str(ckpt), tmp_path / "o1")
    assert first["cache"]["misses"] == 3 and first["cache"]["hits"] == 0  # one embedding per fold (task stats)
    again = run(tree, str(ckpt), tmp_path / "o2")
    assert again["cache"]["hits"] == 3 and again["cache"]["misses"] == 0
    assert again["tasks"]["tones"]["runs"] == first["tasks"]["tones"]["runs"]
    assert set(again["tasks"]["tones"]["folds"]) == {"1", "2", "3"}
    # other weights in the same file: recomputed
    state = torch.load(ckpt, weights_only=True)
    for k, v in state["method"].items():
        if k.startswith("online.encoder.") and v.is_floating_point():
            state["method"][k] = v + 0.01
    torch.save(state, ckpt)
    changed = run(tree, str(ckpt), tmp_path / "o3")
    assert changed["cache"]["misses"] == 3 and changed["cache"]["hits"] == 0
    # a corrupt cache file is detected and recomputed
    for f in (tmp_path / "cache").glob("*.npz"):
        f.write_bytes(f.read_bytes()[:100])
    broken = run(tree, str(ckpt), tmp_path / "o4")
    assert broken["cache"]["rejected"] == 3 and broken["cache"]["misses"] == 3
    assert broken["tasks"]["tones"]["runs"] == changed["tasks"]["tones"]["runs"]


def test_cache_invalidates_when_a_file_changes(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path)
    tree["baselines"] = []
    run(tree, "random", tmp_path / "o1")
    import os

    f = tone_csv.parent / "wav" / "c0_0.wav"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    res = run(tree, "random", tmp_path / "o2")
    assert res["cache"]["misses"] == 1


def test_an_invalid_device_is_an_eval_error_naming_it(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path)
    tree["device"] = "banana"
    with pytest.raises(EvalError, match="device: 'banana' is not a device; accepted: auto, cpu, cuda"):
        run(tree, "random", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_file_fail_and_skip(tone_csv, tmp_path):
    (tone_csv.parent / "wav" / "c1_2.wav").write_bytes(b"not audio at all")
    tree = audio_recipe(tone_csv, tmp_path)
    tree["baselines"] = []
    with pytest.raises(EvalError, match="task 'tones': cannot use .*c1_2.wav"):
        run(tree, "random", tmp_path / "o1")
    tree["tasks"][0]["on_bad_file"] = "skip"
    res = run(tree, "random", tmp_path / "o2")
    e = res["tasks"]["tones"]
    assert e["n_train"] == 11 and list(e["skipped_files"]) == [str(tone_csv.parent / "wav" / "c1_2.wav")]


def test_multi_label_task_reports_map(tone_csv, tmp_path):
    import csv

    rows = list(csv.DictReader(open(tone_csv)))
    for i, r in enumerate(rows):
        r["label"] = r["label"] + (",odd" if i % 2 else "")
    with open(tone_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tree = audio_recipe(tone_csv, tmp_path, multi_label=True)
    tree["baselines"] = ["logmel"]
    res = run(tree, "random", tmp_path / "o")
    assert res["tasks"]["tones"]["metric"] == "mAP" and res["tasks"]["tones"]["num_classes"] == 4


def test_image_task_linear_and_knn(tmp_path):
    rng = np.random.default_rng(0)

    # two classes: dark vs bright 8x8 images with noise
    def make(n):
        y = rng.integers(0, 2, n)
        x = (y[:, None, None, None] * 120 + 60 + rng.integers(0, 40, (n, 8, 8, 3))).astype(np.uint8)
        return x, y.astype(np.uint8)

    xtr, ytr = make(60)
    xte, yte = make(20)
    np.savez(tmp_path / "d.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    tree = {
        "name": "img",
        "model": {
            "encoder": {"name": "resnet18", "cifar_stem": True, "width": 0.125},
            "frontend": [{"name": "to_float"}, {"name": "normalize"}],
        },
        "linear": {"runs": 2, "epochs": 40, "patience": 10},
        "knn": {"k": 10},
        "cache_dir": str(tmp_path / "c"),
        "plots": {"enabled": True, "tsne": False},
        "tasks": [
            {
                "name": "tiny",
                "kind": "image_classification",
                "dataset": {"name": "npz", "path": str(tmp_path / "d.npz")},
            }
        ],
    }
    res = run(tree, "random", tmp_path / "out")
    assert set(res["tasks"]) == {"tiny/linear", "tiny/knn"}
    assert res["tasks"]["tiny/knn"]["protocol"] == "knn" and res["tasks"]["tiny/knn"]["runs"][0] > 0.9
    assert res["tasks"]["tiny/linear"]["n_train"] + res["tasks"]["tiny/linear"]["n_valid"] == 60
    assert res["tasks"]["tiny/linear"]["n_test"] == 20
    assert (tmp_path / "out" / "plots" / "tiny_confusion.png").exists()
    assert (tmp_path / "out" / "plots" / "summary.png").exists()


def test_a_checkpoint_of_another_modality_is_refused_before_any_embedding(tone_csv, tmp_path):
    from evalhelpers import ROOT

    from ssl_toolkit.eval.models import write_random_checkpoint
    from ssl_toolkit.eval.schema import load_eval_recipe
    from ssl_toolkit.recipe import load_recipe

    image = write_random_checkpoint(
        load_recipe(ROOT / "recipes/image/byol_cifar10_cpu.yaml", ["model.encoder.width=0.125"]), tmp_path / "img.pt"
    )
    vector = write_random_checkpoint(load_recipe(ROOT / "recipes/tensors/byol_gaussian.yaml"), tmp_path / "vec.pt")
    tree = audio_recipe(tone_csv, tmp_path)
    tree.pop("model", None)
    with pytest.raises(
        EvalError,
        match=r"encoder resnet18 takes image input, but task '\w+' of eval recipe "
        r"'\w+' is an audio task",
    ):
        run(tree, str(image), tmp_path / "o1")
    with pytest.raises(EvalError, match=r"encoder mlp_encoder takes vector input, but task .* is an audio task"):
        run(tree, str(vector), tmp_path / "o2")
    audio = write_random_checkpoint(
        load_recipe(
            ROOT / "recipes/audio/byola_v1.yaml",
            [
                "data.dataset.root=data/demo/fsdd_mini",
                "model.encoder.feature_d=64",
                "views.input.1.mean=-6.0",
                "views.input.1.std=4.5",
            ],
        ),
        tmp_path / "aud.pt",
    )
    with pytest.raises(
        EvalError,
        match=r"encoder audiontt2020 takes audio input, but task 'cifar10' .* is an "
        r"image task",
    ):
        run_eval(load_eval_recipe(ROOT / "recipes/eval/cifar10.yaml"), str(audio), out_dir=tmp_path / "o3", quiet=True)
    assert not any((tmp_path / d).exists() for d in ("o1", "o2", "o3"))


def test_registered_encoders_declare_their_modality():
    from ssl_toolkit.recipe import import_components
    from ssl_toolkit.registry import ENCODERS

    import_components()
    small = {"width": 0.125}
    for entry in ENCODERS:
        params = {k: v for k, v in small.items() if k in entry.parameters()}
        assert entry.builder(**params).modality in ("audio", "image", "vector"), entry.name
