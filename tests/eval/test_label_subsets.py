"""Few-label subsets (eval/label_subsets.py): stratified, nested, deterministic, at least one item per class, drawn
only from the pool given; fraction errors; and through an evaluation: written to disk, never a test item."""

import json

import numpy as np
import pytest
from evalhelpers import audio_recipe

from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.label_subsets import fraction_list, fraction_tag, nested_subsets
from ssl_toolkit.eval.runner import run_eval
from ssl_toolkit.eval.schema import eval_recipe_from_dict
from ssl_toolkit.recipe import RecipeError

FRACTIONS = [0.01, 0.1, 0.5, 1.0]


def _labels(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [800, 500, 260, 200, 122]  # unbalanced classes
    y = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    return y[rng.permutation(len(y))], sizes


def test_subsets_are_stratified_nested_and_deterministic():
    y, sizes = _labels()
    pool = np.flatnonzero(np.arange(len(y)) % 7 != 0)  # the other rows play the test split
    subsets = nested_subsets(y, pool, FRACTIONS, seed=3)
    in_pool = np.bincount(y[pool], minlength=5)
    for f, rows in subsets.items():
        assert np.all(np.diff(rows) > 0) and set(rows) <= set(pool)  # sorted, unique, only pool rows
        per_class = np.bincount(y[rows], minlength=5)
        assert list(per_class) == [int(round(f * n)) for n in in_pool], f  # stratified: round(f · n_c) each
        assert per_class.min() >= 1
    assert np.array_equal(subsets[1.0], np.sort(pool))
    for small, large in zip(FRACTIONS, FRACTIONS[1:]):
        assert set(subsets[small]) <= set(subsets[large])  # nested
    again = nested_subsets(y, pool, FRACTIONS, seed=3)
    assert all(np.array_equal(again[f], subsets[f]) for f in FRACTIONS)
    other = nested_subsets(y, pool, FRACTIONS, seed=4)
    assert not np.array_equal(other[0.1], subsets[0.1])
    alone = nested_subsets(y, pool, [0.1], seed=3)  # a fraction's subset does not depend on the others listed
    assert np.array_equal(alone[0.1], subsets[0.1])


def test_a_fraction_that_keeps_no_item_of_a_class_is_an_error_naming_it():
    y = np.array([0] * 300 + [1] * 20)
    with pytest.raises(ValueError, match=r"keeps no item of class 'rare' \(20 items.*1/20 = 0.05"):
        nested_subsets(y, np.arange(len(y)), [0.01], seed=0, classes=["common", "rare"])
    assert len(nested_subsets(y, np.arange(len(y)), [0.05], seed=0)[0.05]) == 15 + 1


def test_multi_label_subsets_are_nested_and_cover_every_class():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < 0.1).astype(np.float32)
    y[5, 5] = 1.0
    y[:, 5] = 0.0
    y[7, 5] = 1.0  # class 5 has a single item
    subsets = nested_subsets(y, np.arange(300), [0.01, 0.1, 1.0], seed=1, multi_label=True)
    for f, rows in subsets.items():
        assert (y[rows].sum(0) > 0).sum() == (y.sum(0) > 0).sum()
    assert set(subsets[0.01]) <= set(subsets[0.1]) <= set(subsets[1.0])
    assert 7 in subsets[0.01]


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.1, "half", True, [], [0.1, 2]])
def test_fraction_list_refuses_what_is_not_a_fraction(bad):
    with pytest.raises(ValueError):
        fraction_list(bad)


def test_fraction_list_and_tags():
    assert fraction_list([1.0, 0.1, 0.01, 0.1]) == [0.01, 0.1, 1.0]
    assert fraction_list(1) == [1.0]
    assert [fraction_tag(f) for f in (0.01, 0.1, 0.005, 1.0)] == ["1%", "10%", "0.5%", "100%"]
    with pytest.raises(ValueError, match="0.123451 and 0.123452 are both 12.35% in the results' keys"):
        fraction_list([0.123451, 0.123452, 0.5])


@pytest.mark.parametrize(
    "key,value,expect",
    [
        ("label_fraction", 0, "tasks.0.label_fraction"),
        ("label_fraction", [0.1, 1.2], "tasks.0.label_fraction"),
        ("protocols", ["linear", "linear"], "listed twice"),
        ("protocols", ["finetun"], "did you mean 'finetune'"),
        ("protocols", [], "tasks.0.protocols"),
    ],
)
def test_recipe_errors_name_the_key(tone_csv, tmp_path, key, value, expect):
    tree = audio_recipe(tone_csv, tmp_path, **{key: value})
    with pytest.raises(RecipeError, match=expect):
        eval_recipe_from_dict(tree)


def test_finetune_section_ranges_are_checked(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path)
    tree["finetune"] = {"warmup_epochs": 20, "epochs": 10}
    with pytest.raises(RecipeError, match="finetune.warmup_epochs"):
        eval_recipe_from_dict(tree)


def test_eval_writes_the_subsets_and_keeps_todays_numbers(tone_csv, tmp_path):
    """Fraction rows use the chosen subsets (written to disk, no test or unlisted item); the 1.0 row is today's."""
    import csv

    base = run_eval(
        eval_recipe_from_dict(audio_recipe(tone_csv, tmp_path)), "random", out_dir=tmp_path / "a", quiet=True
    )
    tree = audio_recipe(tone_csv, tmp_path, label_fraction=[0.5, 1.0], protocols=["linear", "knn"])
    res = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "b", quiet=True)
    assert res["tasks"]["tones/linear"]["runs"] == base["tasks"]["tones"]["runs"]
    assert set(res["tasks"]) == {"tones/linear@50%", "tones/linear", "tones/knn@50%", "tones/knn"}
    assert res["tasks"]["tones/linear@50%"]["label_fraction"] == 0.5
    assert res["tasks"]["tones/linear"]["label_fraction"] == 1.0
    rows = {r["file_name"]: r["split"] for r in csv.DictReader(open(tone_csv))}
    record = json.loads((tmp_path / "b" / res["label_subsets"]).read_text())["tones"]
    half = record["units"]["split"]["50%"]
    assert half["fraction"] == 0.5
    assert {rows[n] for n in half["train"]} == {"train"} and {rows[n] for n in half["valid"]} == {"valid"}
    assert len(half["train"]) == 6 and len(half["valid"]) == 3  # 4 train / 2 valid per class, 3 classes
    assert set(half["train"]) < set(record["units"]["split"]["100%"]["train"])
    e = res["tasks"]["tones/knn@50%"]
    assert e["n_train"] == 6 and e["n_test"] == 6


def test_a_fraction_too_small_for_a_class_stops_the_eval_naming_the_key(tone_csv, tmp_path):
    tree = audio_recipe(tone_csv, tmp_path, label_fraction=0.1)  # 4 training clips per class: round(0.4) = 0
    with pytest.raises(EvalError, match="label_fraction: .*: training items: .*keeps no item of class 'class0'"):
        run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "o", quiet=True)
