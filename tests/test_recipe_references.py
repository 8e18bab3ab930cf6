"""Recipe keys that name a file, a folder or another recipe are checked when the recipe is (issue 37): exists,
readable, right kind, right modality — a one-line error naming the file and key, before a run or output folder is
touched. And a YAML mapping that names a key twice is refused, naming the key and both lines."""

from pathlib import Path

import pytest

from ssl_toolkit.cli import main
from ssl_toolkit.eval.schema import eval_recipe_from_dict, load_eval_recipe
from ssl_toolkit.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT / "recipes" / "audio" / "byola_fsdd.yaml"
CIFAR = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"


@pytest.mark.parametrize(
    "recipe, override, key, words",
    [
        (
            FSDD,
            "trainer.hooks=[{name: probe, recipe: /nonexistent.yaml}]",
            "trainer.hooks.0.recipe",
            "'/nonexistent.yaml': no such file or folder; expected an eval recipe file",
        ),
        (
            FSDD,
            "trainer.hooks=[{name: probe, recipe: recipes/eval/cifar10.yaml}]",
            "trainer.hooks.0.recipe",
            "task 'cifar10' of eval recipe recipes/eval/cifar10.yaml is an image task, but model.encoder "
            "(audiontt2020) takes audio input",
        ),
        (
            FSDD,
            "trainer.hooks=[{name: probe, recipe: recipes/eval/fsdd.yaml}]",
            "trainer.hooks.0.recipe",
            "has 2 tasks (fsdd_digits, fsdd_speaker); name one with task: <name>",
        ),
        (
            FSDD,
            "trainer.hooks=[{name: probe, recipe: recipes/eval/fsdd_demo.yaml, task: nope}]",
            "trainer.hooks.0.recipe",
            "no task 'nope'",
        ),
        (FSDD, "trainer.hooks=[{name: probe, recipe: recipes}]", "trainer.hooks.0.recipe", "'recipes' is a folder"),
        (FSDD, "data.dataset.root=/no/such/root", "data.dataset.root", "'/no/such/root': no such file or folder"),
        (
            FSDD,
            "data.dataset.metadata=nope.csv",
            "data.dataset.metadata",
            "'nope.csv': no such file or folder (resolved to " + str(ROOT / "data/demo/fsdd_mini/nope.csv") + ")",
        ),
        (FSDD, "data.dataset.audio_dir=metadata.csv", "data.dataset.audio_dir", "'metadata.csv' is a file"),
        (FSDD, "model.init_from=/no/weights.pth", "model.init_from", "'/no/weights.pth': no such file or folder"),
        (
            CIFAR,
            "data.dataset.path=recipes",
            "data.dataset.path",
            "'recipes' is a folder (resolved to " + str(ROOT / "recipes") + "); expected a file",
        ),
        (CIFAR, "data.dataset={name: image_folder, path: README.md}", "data.dataset.path", "'README.md' is a file"),
        (
            CIFAR,
            "model.encoder={name: timm, model: resnet18, pretrained_path: /no/w.safetensors}",
            "model.encoder.pretrained_path",
            "no such file or folder",
        ),
    ],
)
def test_training_recipe_references_are_checked(recipe, override, key, words):
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe, [override])
    assert f"key '{key}'" in str(e.value) and words in str(e.value), str(e.value)
    load_recipe(recipe, [override], check_files=False)  # the shape is fine: only the file is at fault


def test_a_bad_reference_stops_train_before_the_run_dir_exists(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", str(FSDD), "trainer.hooks=[{name: probe, recipe: /nonexistent.yaml}]", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'trainer.hooks.0.recipe'" in err and not out.exists()
    assert main(["recipe", str(FSDD), "data.dataset.root=/no/such/root"]) == 0  # printing a recipe checks no files


def test_eval_recipe_task_files_are_checked_before_any_work(tmp_path, capsys):
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("file_name,label,split\na.wav,x,train\n")
    task = {"name": "t", "kind": "audio_classification", "metadata": str(csv_path), "unit_sec": 1.0}
    with pytest.raises(
        RecipeError,
        match=r"key 'tasks.0.audio_dir': 'wav': no such file or folder \(resolved to " + str(tmp_path / "wav"),
    ):
        eval_recipe_from_dict({"name": "e", "tasks": [{**task, "audio_dir": "wav"}]})
    (tmp_path / "wav").mkdir()
    assert eval_recipe_from_dict({"name": "e", "tasks": [{**task, "audio_dir": "wav"}]}).parsed_tasks
    second = {**task, "name": "u", "metadata": str(tmp_path / "gone.csv")}
    with pytest.raises(RecipeError, match=r"key 'tasks.1.metadata': .*gone.csv': no such file or folder"):
        eval_recipe_from_dict({"name": "e", "tasks": [task, second]})
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                str(ROOT / "recipes/eval/fsdd_demo.yaml"),
                "--checkpoint",
                "random",
                "--out",
                str(out),
                f"tasks.0.metadata={tmp_path / 'gone.csv'}",
                "--quiet",
            ]
        )
        == 2
    )
    assert "key 'tasks.0.metadata'" in capsys.readouterr().err and not out.exists()
    with pytest.raises(RecipeError, match="key 'tasks.0.dataset.path': '/no/cifar.npz': no such file"):
        load_eval_recipe(ROOT / "recipes/eval/cifar10.yaml", ["tasks.0.dataset.path=/no/cifar.npz"])


@pytest.mark.parametrize(
    "text, words",
    [
        ("seed: 1\nname: x\nseed: 2\n", "duplicate key 'seed': set on line 1 and again on line 3"),
        (
            "data:\n  batch_size: 8\n  num_workers: 0\n  batch_size: 16\n",
            "duplicate key 'batch_size': set on line 2 and again on line 4",
        ),
        ("tasks:\n  - {name: a, kind: x, name: b}\n", "duplicate key 'name': set on line 2 and again on line 2"),
    ],
)
def test_duplicate_keys_are_refused_in_training_and_eval_recipes(tmp_path, text, words):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    for load in (load_recipe, load_eval_recipe):
        with pytest.raises(RecipeError, match=words) as e:
            load(path)
        assert str(path) in str(e.value)


def test_duplicate_keys_in_a_command_line_mapping_are_refused():
    with pytest.raises(RecipeError, match="duplicate key 'name'"):
        load_recipe(FSDD, ["model.encoder={name: audiontt2020, name: audiontt2022}"])


def test_yaml_merge_keys_still_load_and_may_be_overridden(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "base: " + str(FSDD) + "\nanchors:\n  d: &d {batch_size: 16, num_workers: 0}\n"
        "data:\n  <<: *d\n  batch_size: 8\n"
    )
    text = path.read_text().replace("anchors:\n  d: &d {batch_size: 16, num_workers: 0}\n", "")
    path.write_text("x-defaults: &d {batch_size: 16, num_workers: 0}\n" + text)
    from ssl_toolkit.recipe.loading import read_recipe_file

    tree = read_recipe_file(path)
    assert tree["data"] == {"batch_size": 8, "num_workers": 0}
