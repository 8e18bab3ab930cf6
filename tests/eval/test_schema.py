"""Eval recipes: typed validation with file/key/did-you-mean errors; shipped recipes validate."""

from pathlib import Path

import pytest

from ssl_toolkit.eval.schema import AudioTask, ImageTask, eval_recipe_from_dict, load_eval_recipe
from ssl_toolkit.recipe import RecipeError

ROOT = Path(__file__).resolve().parents[2]
TASK = {"name": "a", "kind": "audio_classification", "metadata": "m.csv", "unit_sec": 1.0}


def test_shipped_recipes_validate():
    names = sorted(p.name for p in (ROOT / "recipes" / "eval").glob("*.yaml") if not p.name.startswith("_"))
    assert {
        "fsdd.yaml",
        "emodb.yaml",
        "fsdd_demo.yaml",
        "cifar10.yaml",
        "esc50.yaml",
        "us8k.yaml",
        "spcv2.yaml",
        "vc1.yaml",
        "cremad.yaml",
        "gtzan.yaml",
        "nsynth.yaml",
        "evar.yaml",
    } <= set(names)
    for name in names:  # the EVAR tasks' data lives under $EVAR, on the user's machine
        r = load_eval_recipe(ROOT / "recipes" / "eval" / name, check_files=False)
        assert r.parsed_tasks, name
        try:
            load_eval_recipe(ROOT / "recipes" / "eval" / name)
        except RecipeError as e:  # with the files checked, only data this machine lacks may be missing
            assert "no such file or folder" in str(e) and ("$EVAR" in str(e) or "shared" in str(e)), f"{name}: {e}"
    fsdd = load_eval_recipe(ROOT / "recipes" / "eval" / "fsdd.yaml")
    assert [t.name for t in fsdd.parsed_tasks] == ["fsdd_digits", "fsdd_speaker"]
    assert isinstance(fsdd.parsed_tasks[1], AudioTask) and fsdd.parsed_tasks[1].label_column == "speaker"
    assert fsdd.linear.lr == 3e-4 and fsdd.linear.runs == 3 and fsdd.linear.patience == 20
    cifar = load_eval_recipe(ROOT / "recipes" / "eval" / "cifar10.yaml")
    assert isinstance(cifar.parsed_tasks[0], ImageTask) and cifar.parsed_tasks[0].protocols == ["linear", "knn"]


def test_overrides_reach_tasks_and_sections():
    r = load_eval_recipe(ROOT / "recipes" / "eval" / "fsdd.yaml", ["linear.runs=1", "tasks.0.unit_sec=2"])
    assert r.linear.runs == 1 and r.parsed_tasks[0].unit_sec == 2.0


def test_unknown_keys_get_did_you_mean_and_the_file(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text(
        "name: e\nlinaer: {lr: 0.1}\ntasks: [{name: a, kind: audio_classification, metadata: m.csv, unit_sec: 1}]\n"
    )
    with pytest.raises(RecipeError) as e:
        load_eval_recipe(p)
    assert "linaer" in str(e.value) and "did you mean 'linear'" in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize(
    "task, words",
    [
        ({**TASK, "lable_column": "x"}, ["tasks.0.lable_column", "did you mean 'label_column'"]),
        ({**TASK, "kind": "audio_clasification"}, ["tasks.0.kind", "did you mean 'audio_classification'"]),
        ({k: v for k, v in TASK.items() if k != "unit_sec"}, ["tasks.0.unit_sec", "required"]),
        ({**TASK, "unit_sec": -1}, ["tasks.0.unit_sec", "> 0"]),
        ({**TASK, "split_values": {"tset": [1]}}, ["split_values.tset", "did you mean 'test'"]),
        ({**TASK, "long_clips": "chunk"}, ["long_clips", "did you mean 'chunks'"]),
        (
            {"name": "i", "kind": "image_classification", "dataset": {"name": "npzz", "path": "x"}},
            ["tasks.0.dataset.name", "did you mean 'npz'"],
        ),
        (
            {
                "name": "i",
                "kind": "image_classification",
                "dataset": {"name": "npz", "path": "x"},
                "protocols": ["knnn"],
            },
            ["protocols", "did you mean 'knn'"],
        ),
        (
            {
                "name": "i",
                "kind": "image_classification",
                "dataset": {"name": "npz", "path": "x"},
                "valid_split": "test",
            },
            ["tasks.0.valid_split", "'test' is also the task's test_split", "read once, at the end"],
        ),
        (
            {
                "name": "i",
                "kind": "image_classification",
                "dataset": {"name": "npz", "path": "x"},
                "train_split": None,
                "test_split": None,
            },
            ["tasks.0.test_split", "None is also the task's train_split"],
        ),
    ],
)
def test_task_errors(task, words):
    with pytest.raises(RecipeError) as e:
        eval_recipe_from_dict({"name": "e", "tasks": [task]})
    for w in words:
        assert w in str(e.value), str(e.value)


def test_duplicate_task_names_and_empty_tasks():
    with pytest.raises(RecipeError, match="used twice"):
        eval_recipe_from_dict({"name": "e", "tasks": [TASK, TASK]})
    with pytest.raises(RecipeError, match="non-empty list"):
        eval_recipe_from_dict({"name": "e", "tasks": []})


def test_model_section_components_are_checked():
    with pytest.raises(RecipeError, match="did you mean 'audiontt20"):
        eval_recipe_from_dict({"name": "e", "model": {"encoder": {"name": "audiontt202"}}, "tasks": [TASK]})
    with pytest.raises(RecipeError, match="has no parameter 'feature_dd'"):
        eval_recipe_from_dict(
            {"name": "e", "model": {"encoder": {"name": "audiontt2020", "feature_dd": 3}}, "tasks": [TASK]}
        )
