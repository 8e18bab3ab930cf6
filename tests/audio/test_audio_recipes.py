"""The BYOL-A recipes validate with the papers' settings; the data path is a required key."""

from pathlib import Path

import pytest

from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.registry import DATASETS

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes" / "audio"


@pytest.mark.parametrize("name", ["byola_v1", "byola_v2"])
def test_paper_recipes_require_the_data_root(name):
    with pytest.raises(RecipeError) as err:
        load_recipe(RECIPES / f"{name}.yaml")
    assert err.value.key == "data.dataset.root"
    assert "required parameter" in str(err.value) and f"{name}.yaml" in str(err.value)


def test_paper_settings():
    v1 = load_recipe(RECIPES / "byola_v1.yaml", ["data.dataset.root=/data/audioset"], check_files=False)
    v2 = load_recipe(RECIPES / "byola_v2.yaml", ["data.dataset.root=/data/audioset"], check_files=False)
    for r in (v1, v2):
        assert r.data.batch_size == 256 and r.trainer.epochs == 100
        assert r.ema.tau_base == 0.99 and r.ema.schedule == "constant"
        assert r.optimizer.name == "adam" and r.schedule.name == "constant"
        assert r.model.projector.params == {"hidden_dim": 4096, "out_dim": 256}
        assert [op["name"] for op in r.views.input] == ["log_mel", "pre_norm"]
        assert [op["name"] for op in r.views.joint] == ["post_norm"] and len(r.views.branches) == 2
    assert v1.optimizer.lr == 3e-4 and v2.optimizer.lr == 1e-4
    assert v1.model.encoder.params["feature_d"] == 2048 and v1.model.encoder.name == "audiontt2020"
    assert v2.model.encoder.params["feature_d"] == 3072 and v2.model.encoder.name == "audiontt2022"
    assert v1.views.input[0]["frontend"] == "torchaudio_mel" and v2.views.input[0]["frontend"] == "nnaudio_mel"
    assert [op["name"] for op in v1.views.branches[0]] == ["mixup", "random_resize_crop"]
    assert [op["name"] for op in v2.views.branches[0]] == ["mixup", "random_resize_crop", "random_linear_fader"]
    assert v1.views.branches[0][0]["ratio"] == 0.4 and v2.views.branches[0][0]["ratio"] == 0.2


def test_misspelled_augmentation_parameter_is_caught():
    with pytest.raises(RecipeError, match="did you mean 'ratio'"):
        load_recipe(RECIPES / "byola_v1.yaml", ["data.dataset.root=/x", "views.branches.0.0.ratoi=0.3"])


def test_fsdd_recipe_points_at_the_demo_data():
    r = load_recipe(RECIPES / "byola_fsdd.yaml")
    assert r.model.encoder.params["feature_d"] == 512 and r.data.batch_size == 64 and r.device == "cpu"
    params = dict(r.data.dataset.params)
    params["root"] = str(ROOT / params["root"])  # the recipe's paths are relative to the repository root
    ds = DATASETS.build(r.data.dataset.name, **params)
    assert len(ds) == 200 and ds.segment_samples == 15200  # 4 training speakers × 10 digits × 5 takes
