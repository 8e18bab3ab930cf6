"""The image recipes validate, encode the paper's / reference settings, and build."""

from pathlib import Path

import pytest
import torch

from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.registry import DATASETS, ENCODERS
from ssl_toolkit.views import ViewMaker

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes" / "image"
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"


def ops(branch):
    return {op["name"]: op for op in branch}


@pytest.mark.parametrize("name,dataset", [("byol_imagenet", "image_folder"), ("byol_cifar10", "cifar10")])
def test_data_root_is_required(name, dataset):
    with pytest.raises(RecipeError, match=r"data\.dataset\.path.*required parameter of dataset '" + dataset):
        load_recipe(RECIPES / f"{name}.yaml")


def test_imagenet_recipe_is_the_paper_setting():
    r = load_recipe(RECIPES / "byol_imagenet.yaml", ["data.dataset.path=/data/imagenet"], check_files=False)
    assert r.model.encoder.name == "resnet50" and not r.model.encoder.get("cifar_stem", False)
    assert r.data.batch_size == 4096 and r.trainer.epochs == 1000
    assert (r.optimizer.name, r.optimizer.lr, r.optimizer.lr_scaling) == ("lars", 0.2, "linear")
    assert r.optimizer.weight_decay == 1.5e-6 and r.optimizer.exclude_bias_and_norm
    assert (r.ema.tau_base, r.ema.schedule) == (0.996, "cosine")
    assert r.schedule.name == "warmup_cosine" and r.schedule["warmup_epochs"] == 10
    for head in (r.model.projector, r.model.predictor):
        assert (head["hidden_dim"], head["out_dim"]) == (4096, 256)
    v1, v2 = (ops(b) for b in r.views.branches)
    for v in (v1, v2):
        assert v["random_resized_crop"]["size"] == 224 and v["random_resized_crop"]["scale"] == [0.08, 1.0]
        assert v["horizontal_flip"]["p"] == 0.5 and v["grayscale"]["p"] == 0.2
        cj = v["color_jitter"]
        assert (cj["brightness"], cj["contrast"], cj["saturation"], cj["hue"], cj["p"]) == (0.4, 0.4, 0.2, 0.1, 0.8)
        assert v["gaussian_blur"]["sigma"] == [0.1, 2.0] and v["gaussian_blur"]["kernel_size"] == 23
    assert (v1["gaussian_blur"]["p"], v2["gaussian_blur"]["p"]) == (1.0, 0.1)  # Table 6 asymmetry
    assert (v1["solarize"]["p"], v2["solarize"]["p"]) == (0.0, 0.2)
    views = ViewMaker.from_config(r.views)
    x = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    out = views(x, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in out] == [(2, 3, 224, 224)] * 2


def test_cifar_recipes_inherit_and_build():
    gpu = load_recipe(RECIPES / "byol_cifar10.yaml", ["data.dataset.path=/data/cifar10"], check_files=False)
    assert gpu.data.batch_size == 256 and gpu.trainer.epochs == 1000 and gpu.ema.tau_base == 0.99
    assert gpu.optimizer.name == "lars" and gpu.model.encoder["cifar_stem"] is True
    assert all(ops(b)["random_resized_crop"]["size"] == 32 for b in gpu.views.branches)
    cpu = load_recipe(RECIPES / "byol_cifar10_cpu.yaml")
    assert cpu.views.joint == gpu.views.joint  # inherited
    # the short-run views: the GPU views with crops of at least 20 % of the image
    for cpu_ops, gpu_ops in zip(cpu.views.branches, gpu.views.branches, strict=True):
        assert cpu_ops[0].params["scale"] == [0.2, 1.0] and gpu_ops[0].params["scale"] == [0.08, 1.0]
        assert cpu_ops[1:] == gpu_ops[1:]
    assert cpu.ema.tau_base == 0.97 and cpu.trainer.channels_last and cpu.trainer.max_minutes == 8
    assert cpu.device == "cpu" and cpu.precision == "bf16"
    assert cpu.data.dataset.name == "npz" and cpu.data.dataset["path"].startswith("../shared/data/cifar10/")
    enc = ENCODERS.build(cpu.model.encoder.name, **cpu.model.encoder.params)
    assert enc.feature_dim == 128
    views = ViewMaker.from_config(cpu.views)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    v1, v2 = views(x, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == (8, 3, 32, 32) and v1.dtype == torch.float32 and not torch.equal(v1, v2)
    assert enc(v1).shape == (8, 128)
    if DATA.exists():
        ds = DATASETS.build(cpu.data.dataset.name, **{**cpu.data.dataset.params, "path": str(DATA), "limit": 16})
        assert len(ds) == 16
