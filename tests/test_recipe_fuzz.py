"""Fuzzing the recipe loader: any YAML document and any override give a Recipe or a RecipeError."""

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_toolkit.recipe import Recipe, RecipeError, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

KEYS = st.sampled_from(
    [
        "name",
        "data",
        "views",
        "model",
        "optimizer",
        "trainer",
        "ema",
        "method",
        "schedule",
        "seed",
        "device",
        "precision",
        "dataset",
        "batch_size",
        "branches",
        "encoder",
        "lr",
        "epochs",
        "max_steps",
        "base",
        "imports",
        "options",
        "input",
        "joint",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(KEYS, st.text(max_size=6)), inner, max_size=5)
    ),
    max_leaves=25,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(path, overrides=()):
    try:
        assert isinstance(load_recipe(path, list(overrides)), Recipe)
    except RecipeError as e:
        assert str(e)  # a message that names what is wrong


@SETTINGS
@given(doc=st.dictionaries(KEYS, VALUES, max_size=8))
def test_arbitrary_mappings(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    _load(path)


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    _load(path)


@SETTINGS
@given(
    overrides=st.lists(
        st.tuples(
            st.lists(
                st.one_of(KEYS, st.sampled_from(["0", "1", "-1", "9"]), st.text(max_size=5)), min_size=0, max_size=4
            ),
            st.text(max_size=20),
        ),
        max_size=3,
    )
)
def test_arbitrary_overrides_on_a_real_recipe(overrides):
    _load(RECIPES / "tensors" / "byol_gaussian.yaml", [".".join(k) + "=" + v for k, v in overrides])


@pytest.mark.parametrize(
    "override",
    [
        "model.encoder.name=[1]",
        "data.dataset.name={a: 1}",
        "model.encoder={1: 2}",
        "model.encoder.1=2",
        "views.branches=[[5]]",
        "trainer=[]",
        "imports=[[x]]",
        "model.encoder.hidden_dim=.nan",
        "optimizer.options=[1]",
        "seed=1e400",
    ],
)
def test_known_awkward_overrides(override):
    with pytest.raises(RecipeError):
        load_recipe(RECIPES / "tensors" / "byol_gaussian.yaml", [override])
