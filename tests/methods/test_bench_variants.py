"""benchmarks/claims/bench_variants.py: the plan names existing recipes and the summary/markdown are right."""

import importlib.util
import math
from pathlib import Path

from ssl_toolkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]

spec = importlib.util.spec_from_file_location("bench_variants", ROOT / "benchmarks" / "claims" / "bench_variants.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_plan_covers_every_comparison_with_existing_recipes():
    groups = list(bench.GROUPS + bench.EXTRA_GROUPS)
    for modality in ("image", "audio"):
        for size in ("quick", "medium", "full"):
            sized = bench.SETTINGS[modality].get(f"{size}_train", [])
            runs = bench.plan(groups, modality, size)
            for group, label, path, overrides in runs:
                load_recipe(ROOT / path, [*sized, *overrides])  # validates, overrides included
            if size == "quick":
                assert all(
                    f"data.batch_size={bench.SETTINGS[modality]['quick_batch']}" in o
                    for g, _, _, o in runs
                    if g not in ("tribyol", "batch") or modality == "audio"
                )
    labels = {(g, lab) for g, lab, _, _ in bench.plan(groups, "image", "full")}
    assert {("tribyol", f"{m} bs{b}") for m in ("byol", "tribyol") for b in (16, 32, 64, 256)} <= labels
    assert {("predictors", h) for h in bench.PREDICTORS} <= labels
    assert ("predictors", "byol (linear predictor)") in labels  # Edge of Orthogonality's baseline
    assert {
        ("self_labeling", "ccsl"),
        ("self_labeling", "cssl"),
        ("norm", "bn"),
        ("norm", "gn_ws"),
        ("norm", "none"),
        ("simsiam", "simsiam"),
        ("precision", "fp32"),
    } <= labels
    assert {("augmentations", f"{m}{a}") for m in ("byol", "simclr") for a in ("", " no colour", " crop only")} | {
        ("target", "byol no predictor"),
        ("target", "byol tau_base 1.0"),
        ("target", "byol tau_base 0.0"),
        ("batch", "byol bs32x4"),
        ("batch", "simclr bs32x4"),
    } <= labels
    assert not [r for r in bench.plan(["augmentations", "target", "batch"], "audio", "full")]  # image claims


def test_summary_mean_and_sample_std_and_markdown():
    runs = [{"group": "g", "label": "a", "seed": s, "linear": v, "collapse": 1.0} for s, v in enumerate([0.2, 0.4])]
    s = bench.summarize(runs)
    m, sd = s["g"]["a"]["linear"]
    assert m == 0.30000000000000004 or math.isclose(m, 0.3)
    assert math.isclose(sd, (0.02) ** 0.5)
    md = bench.markdown(
        s,
        {
            "modality": "image",
            "size": "full",
            "created": "now",
            "host": "h",
            "torch": "t",
            "threads": 1,
            "seeds": 2,
            "eval": "`cifar10` eval recipe, task(s) cifar10",
        },
    )
    assert "| a | 30.0 ± 14.1 |" in md and "Downstream: `cifar10` eval recipe, task(s) cifar10." in md


def test_eval_recipe_per_size(tmp_path, monkeypatch):
    assert [t["name"] for t in bench.eval_recipe("audio", "medium").tasks] == ["fsdd_mini_digits"]
    assert [t["name"] for t in bench.eval_recipe("image", "quick").tasks] == ["cifar10"]
    path, task, data = bench.SETTINGS["audio"]["full_eval_recipe"]
    monkeypatch.setitem(bench.SETTINGS["audio"], "full_eval_recipe", (path, task, tmp_path))
    full = bench.eval_recipe("audio", "full")  # the data folder exists: the one named task of the full recipe
    assert [t["name"] for t in full.tasks] == ["fsdd_digits"] and len(full.parsed_tasks) == 1
    monkeypatch.setitem(bench.SETTINGS["audio"], "full_eval_recipe", (path, task, tmp_path / "missing"))
    assert [t["name"] for t in bench.eval_recipe("audio", "full").tasks] == ["fsdd_mini_digits"]


def test_labels_filter_names_an_unknown_label(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        bench.main(["--groups", "norm", "--labels", "bn", "gn-ws", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--labels: ['gn-ws'] not among" in err and "'gn_ws'" in err


def test_the_augmentation_ablations_switch_off_the_ops_they_name():
    """Both recipes keep crop, flip, jitter, grayscale, solarize at the positions the overrides address."""
    for recipe in ("recipes/image/byol_cifar10_cpu.yaml", "recipes/variants/image/simclr_cifar10_cpu.yaml"):
        for overrides, off in (
            (bench.NO_COLOUR, {"color_jitter", "grayscale"}),
            (bench.CROP_ONLY, {"color_jitter", "grayscale", "horizontal_flip", "solarize"}),
        ):
            r, full = load_recipe(ROOT / recipe, overrides), load_recipe(ROOT / recipe)
            for branch, before in zip(r.views.branches, full.views.branches):
                names = [op["name"] for op in branch]
                assert names == ["random_resized_crop", "horizontal_flip", "color_jitter", "grayscale", "solarize"]
                for op, old in zip(branch, before):
                    assert op.get("p") == (0.0 if op["name"] in off else old.get("p")), (recipe, op)
