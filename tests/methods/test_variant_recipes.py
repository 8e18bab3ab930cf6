"""Every recipe in recipes/variants validates, builds its method, and steps once on tiny inputs."""

from pathlib import Path

import pytest
import torch

from ssl_toolkit.engine.build import build_method
from ssl_toolkit.engine.predictors import ClosedFormPredictor
from ssl_toolkit.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

VARIANTS = sorted((RECIPES / "variants").rglob("*.yaml"))
EXPECTED = {
    "tribyol",
    "directpred",
    "directcopy",
    "ne",
    "visser",
    "ns",
    "ns2",
    "stiefel",
    "ccsl",
    "cssl",
    "gn_ws",
    "nonorm",
    "simsiam",
    "simclr",
}


def test_every_variant_has_an_image_and_an_audio_recipe():
    for modality, suffix in (("image", "_cifar10_cpu"), ("audio", "_fsdd")):
        names = {p.stem.removesuffix(suffix) for p in (RECIPES / "variants" / modality).glob("*.yaml")}
        assert names == EXPECTED, modality


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_variant_recipe_builds_and_steps(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    torch.manual_seed(0)
    method = build_method(recipe).train()
    assert len(recipe.views.branches) >= method.num_views
    shape = (4, 3, 32, 32) if path.parent.name == "image" else (4, 1, 64, 96)
    out = method([torch.randn(shape) for _ in range(method.num_views)])
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    method.update_targets(0, 10)
    stem = path.stem.removesuffix("_cifar10_cpu").removesuffix("_fsdd")
    if stem in ("directpred", "directcopy", "ne", "visser", "ns", "ns2", "stiefel"):
        assert isinstance(method.online.predictor, ClosedFormPredictor)
    if stem in ("gn_ws", "nonorm"):
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules())
