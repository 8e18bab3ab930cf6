"""Declared valid values of registered components' parameters (ssl_toolkit/params.py) and their checks."""

import inspect
import re
import typing

import pytest

from ssl_toolkit.params import Pair, Range, declaration
from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.recipe.validation import import_components
from ssl_toolkit.registry import ALL_REGISTRIES

import_components()

# Parameters the trainer passes itself (never a recipe value), so they need no declared range.
SUPPLIED = {"total_steps", "steps_per_epoch"}


def _registered_parameters():
    for kind, registry in ALL_REGISTRIES.items():
        for entry in registry:
            hints = entry.hints()
            for name, param in entry.parameters().items():
                yield f"{kind}/{entry.name}.{name}", hints.get(name), param.default


def test_every_numeric_parameter_of_every_registered_component_declares_a_range():
    missing = []
    for where, hint, _ in _registered_parameters():
        base, constraints, _ = declaration(hint)
        if base in (int, float) and where.rsplit(".", 1)[1] not in SUPPLIED and not constraints:
            missing.append(where)
    assert not missing, f"numeric parameters without a declared range (ssl_toolkit/params.py): {missing}"


def test_every_default_satisfies_its_own_declaration():
    checked = 0
    for where, hint, default in _registered_parameters():
        base, constraints, _ = declaration(hint)
        if default is inspect.Parameter.empty or default is None:
            continue
        if typing.get_origin(base) is typing.Literal:
            assert default in typing.get_args(base), where
            checked += 1
        for c in constraints:
            assert c.check(list(default) if isinstance(default, tuple) else default) is None, where
            checked += 1
    assert checked > 100


def test_range_and_pair_semantics():
    r = Range("[0, 1)")
    assert r.contains(0) and r.contains(0.5) and not r.contains(1) and not r.contains(-1e-9)
    assert not r.contains(float("nan")) and not r.contains(True) and not r.contains("0.5")
    assert Range("(0, inf)").contains(1e300) and not Range("(0, inf)").contains(0)
    assert Pair("(0, 1]").check([0.08, 1.0]) is None
    assert "low <= high" in Pair("(0, 1]").check([0.9, 0.1])
    assert "pair" in Pair("(0, 1]").check([0.5]) and "pair" in Pair("(0, 1]").check([0, 1])
    with pytest.raises(ValueError):
        Range("0..1")
    with pytest.raises(ValueError):
        Range("[2, 1]")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.projector.hidden_dim=0", r"expected a value in \[1, inf\), got 0"),
        ("model.projector.out_dim=-3", r"expected a value in \[1, inf\), got -3"),
        ("model.predictor.num_layers=0", r"expected a value in \[1, inf\), got 0"),
        ("model.encoder.depth=-1", r"expected a value in \[1, inf\), got -1"),
        ("model.encoder.norm=banana", r"expected one of 'bn', 'gn', 'gn_ws', 'none', got 'banana'"),
        ("model.projector.norm=BN", r"expected one of 'bn'"),
        ("data.dataset.size=0", r"expected a value in \[1, inf\), got 0"),
        ("data.dataset.spread=-0.5", r"expected a value in \[0, inf\), got -0.5"),
        ("optimizer.options.momentum=1.0", r"expected a value in \[0, 1\), got 1.0"),
        ("views.branches.1.1.max_std=-1", r"expected a value in \[0, inf\), got -1"),
        ("model.encoder.hidden_dim=ten", r"expected int, got str 'ten'"),
    ],
)
def test_component_parameters_outside_their_declaration_are_recipe_errors(tensor_recipe, override, message):
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=rf"key '{re.escape(key)}': {message}") as e:
        load_recipe(tensor_recipe, [override])
    assert str(tensor_recipe.name) in str(e.value) or "command line" in str(e.value)


def test_image_and_audio_component_declarations(tmp_path):
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    cifar = recipes / "image" / "byol_cifar10_cpu.yaml"
    with pytest.raises(RecipeError, match=r"random_resized_crop.*|expected low <= high"):
        load_recipe(cifar, ["views.branches.0.0.scale=[1.0, 0.08]"])
    with pytest.raises(RecipeError, match=r"expected a value in \[0, 1\], got 1.5"):
        load_recipe(cifar, ["views.branches.0.1.p=1.5"])
    audio = recipes / "audio" / "byola_fsdd.yaml"
    with pytest.raises(RecipeError, match=r"key 'model.encoder.dropout': expected a value in \[0, 1\), got 1"):
        load_recipe(audio, ["model.encoder.dropout=1"])
    with pytest.raises(RecipeError, match=r"key 'data.dataset.unit_sec': expected a value in \(0, inf\), got 0"):
        load_recipe(audio, ["data.dataset.unit_sec=0"])
    with pytest.raises(RecipeError, match=r"expected one of 'skip', 'fail', got 'ignore'"):
        load_recipe(audio, ["data.dataset.on_bad_file=ignore"])


def test_optional_parameters_accept_null():
    from pathlib import Path

    cifar = Path(__file__).resolve().parents[1] / "recipes" / "image" / "byol_cifar10_cpu.yaml"
    r = load_recipe(cifar, ["data.dataset.limit=null"])
    assert r.data.dataset["limit"] is None
    with pytest.raises(RecipeError, match=r"key 'data.dataset.limit': expected a value in \[1, inf\), got 0"):
        load_recipe(cifar, ["data.dataset.limit=0"])
