"""engine/build.py: the encoder contract's feature_dim, read in one place, and the method contract the trainer uses."""

from pathlib import Path

import pytest
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.build import feature_dim_of
from ssl_toolkit.registry import ENCODERS
from ssl_toolkit.tensors import MLPEncoder

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tensors" / "byol_gaussian.yaml"


def test_feature_dim_of_reads_the_contract_attribute():
    assert feature_dim_of(MLPEncoder(in_dim=5, hidden_dim=7)) == 7
    enc = nn.Linear(3, 4)
    enc.feature_dim = 4.0  # a float that is a whole number is read as int
    assert feature_dim_of(enc) == 4 and isinstance(feature_dim_of(enc), int)


def test_feature_dim_of_names_an_encoder_without_one():
    with pytest.raises(ValueError, match="Linear has no feature_dim"):
        feature_dim_of(nn.Linear(3, 4))


def test_every_registered_encoder_with_defaults_has_a_feature_dim():
    checked = []
    for name in ENCODERS.names():
        try:
            enc = ENCODERS.build(name)
        except (TypeError, ValueError, ImportError):  # needs arguments (a library model name, ...)
            continue
        assert feature_dim_of(enc) > 0, name
        checked.append(name)
    assert {"resnet18", "audiontt2022", "mlp_encoder"} <= set(checked), checked


def test_build_method_names_the_recipe_encoder_without_a_feature_dim(monkeypatch):
    from ssl_toolkit.engine import build
    from ssl_toolkit.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    monkeypatch.setattr(build.ENCODERS, "build", lambda name, **params: nn.Linear(3, 4))
    with pytest.raises(ValueError, match=f"encoder '{recipe.model.encoder.name}' has no feature_dim"):
        build.build_method(recipe)


def test_build_method_refuses_a_method_without_the_trainer_contract(monkeypatch):
    """A registered method missing what the trainer uses (update_targets, ...) is named at build time, not at step 1."""
    from ssl_toolkit.engine import build
    from ssl_toolkit.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    real_build = build.METHODS.build

    class NoUpdate(nn.Module):  # has online/encoder/targets/num_views, lacks update_targets
        def __init__(self, method):
            super().__init__()
            self.online, self.targets, self.num_views = method.online, method.targets, method.num_views

        @property
        def encoder(self):
            return self.online.encoder

    monkeypatch.setattr(build.METHODS, "build", lambda name, **kw: NoUpdate(real_build(name, **kw)))
    with pytest.raises(ValueError, match=f"method '{recipe.method.name}' built a NoUpdate without update_targets"):
        build.build_method(recipe)
    monkeypatch.setattr(build.METHODS, "build", real_build)
    assert build.missing_members(build.build_method(recipe)) == []


def test_every_registered_method_meets_the_trainer_contract():
    from ssl_toolkit.engine.build import build_method, missing_members
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.registry import METHODS

    no_predictor = {"simclr"}  # a method without a predictor refuses one
    for name in METHODS.names():
        overrides = [f"method.name={name}", *(["model.predictor=null"] if name in no_predictor else [])]
        assert missing_members(build_method(load_recipe(RECIPE, overrides))) == [], name
    assert {"byol", "simclr", "simsiam", "tribyol", "ccsl", "cssl"} <= set(METHODS.names())
