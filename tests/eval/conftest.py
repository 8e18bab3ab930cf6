"""Fixtures of the evaluation tests: a synthetic tone task and tiny random checkpoints."""

import pytest
from evalhelpers import ROOT, write_tone_task


@pytest.fixture
def tone_csv(tmp_path):
    return write_tone_task(tmp_path / "tones")


@pytest.fixture
def tiny_audio_checkpoint(tmp_path):
    """A training-format checkpoint (random weights) of a tiny BYOL-A v1 recipe with stored pre_norm stats."""
    from ssl_toolkit.eval.models import write_random_checkpoint
    from ssl_toolkit.recipe import load_recipe

    def make(seed=0, name="run"):
        recipe = load_recipe(
            ROOT / "recipes" / "audio" / "byola_v1.yaml",
            [
                "data.dataset.root=data/demo/fsdd_mini",
                "model.encoder.feature_d=64",
                "model.projector.hidden_dim=32",
                "model.predictor.hidden_dim=32",
                "views.input.1.mean=-6.0",
                "views.input.1.std=4.5",
            ],
        )
        return write_random_checkpoint(recipe, tmp_path / name / "checkpoints" / "last.pt", seed=seed)

    return make
