"""Audio task metadata: splits, derived splits, folds, clear errors, and how clips are cut."""

import csv

import numpy as np
import pytest
from evalhelpers import write_tone_task

from ssl_toolkit.audio.embedding import piece_spans
from ssl_toolkit.eval.audio_tasks import load_task
from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.schema import eval_recipe_from_dict


def task_of(csv_path, **kw):
    """The task as validated without the file checks: load_task's own checks (for tasks made in code) are tested."""
    tree = {
        "name": "e",
        "tasks": [
            {
                "name": "tones",
                "kind": "audio_classification",
                "metadata": str(csv_path),
                "audio_dir": "wav",
                "unit_sec": 0.5,
                **kw,
            }
        ],
    }
    return eval_recipe_from_dict(tree, check_files=False).parsed_tasks[0]


def rewrite(csv_path, fn):
    rows = list(csv.DictReader(open(csv_path)))
    rows = fn(rows)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_split_column(tone_csv):
    data = load_task(task_of(tone_csv))
    assert data.classes == ["class0", "class1", "class2"] and len(data.files) == 24
    (u,) = data.units
    assert u.name == "split" and len(u.train) == 12 and len(u.valid) == 6 and len(u.test) == 6
    assert set(u.train) | set(u.valid) | set(u.test) == set(range(24))
    assert not (set(u.train) & set(u.test))


def test_no_valid_rows_means_holdout(tone_csv):
    rewrite(tone_csv, lambda rows: [{**r, "split": "train" if r["split"] == "valid" else r["split"]} for r in rows])
    (u,) = load_task(task_of(tone_csv)).units
    assert u.valid is None and len(u.train) == 18


def test_split_synonyms(tone_csv):
    rewrite(
        tone_csv,
        lambda rows: [{**r, "split": {"valid": "val", "train": "TRAIN"}.get(r["split"], r["split"])} for r in rows],
    )
    (u,) = load_task(task_of(tone_csv)).units
    assert len(u.valid) == 6 and len(u.train) == 12


def test_fold_column_each_fold_tests_once(tone_csv):
    data = load_task(task_of(tone_csv, fold_column="fold"))
    assert [u.name for u in data.units] == ["fold 1", "fold 2", "fold 3"]
    tested = np.concatenate([u.test for u in data.units])
    assert sorted(tested) == list(range(24))
    for u in data.units:
        assert u.valid is None and not (set(u.train) & set(u.test)) and len(u.train) + len(u.test) == 24


def test_derived_split_from_another_column(tone_csv):
    data = load_task(task_of(tone_csv, split_column="take", split_values={"test": "0-1", "valid": [2]}))
    (u,) = data.units
    assert len(u.test) == 6 and len(u.valid) == 3 and len(u.train) == 15  # takes 3..7 go to train
    data = load_task(task_of(tone_csv, split_column="take", split_values={"test": "0-1", "train": "4-5"}))
    (u,) = data.units
    assert len(u.train) == 6 and u.valid is None  # takes 2, 3, 6, 7 are left out when train is listed
    assert len(data.files) == 12 and len(data.labels) == 12  # ... and not embedded at all


def test_multi_label(tone_csv):
    rewrite(
        tone_csv, lambda rows: [{**r, "label": r["label"] + (",extra" if i % 2 else "")} for i, r in enumerate(rows)]
    )
    data = load_task(task_of(tone_csv, multi_label=True))
    assert data.classes == ["class0", "class1", "class2", "extra"]
    assert data.labels.shape == (24, 4) and data.labels[:, 3].sum() == 12 and data.labels[:, :3].sum() == 24


@pytest.mark.parametrize(
    "change, kw, words",
    [
        (None, {"label_column": "lable"}, ["task 'tones'", "label_column 'lable'", "did you mean 'label'"]),
        (None, {"fold_column": "folds"}, ["task 'tones'", "fold_column 'folds'", "did you mean 'fold'"]),
        (None, {"split_column": "take"}, ["task 'tones'", "besides train/valid/test", "split_values"]),
        (
            lambda rows: [{**r, "split": "train" if r["split"] == "test" else r["split"]} for r in rows],
            {},
            ["task 'tones'", "the test split is empty"],
        ),
        (lambda rows: [{**r, "split": "test"} for r in rows], {}, ["task 'tones'", "the train split is empty"]),
        (
            lambda rows: [{**r, "fold": "1"} for r in rows],
            {"fold_column": "fold"},
            ["single value", "at least 2 folds"],
        ),
        (
            lambda rows: [*rows, {**rows[0], "file_name": "gone.wav"}],
            {},
            ["task 'tones'", "1 of 25 audio files", "missing", "gone.wav"],
        ),
        (
            lambda rows: [{**r, "file_name": "gone_" + r["file_name"]} for r in rows],
            {},
            ["task 'tones'", "24 of 24 audio files", "are missing (looked in", "set audio_dir"],
        ),
        (
            lambda rows: [{**r, "label": ""} if i == 3 else r for i, r in enumerate(rows)],
            {},
            ["task 'tones'", "empty 'label'", "line 5"],
        ),
        (None, {"audio_dir": "nowhere"}, ["task 'tones'", "audio_dir not found"]),
        (lambda rows: [{k: v for k, v in r.items() if k != "file_name"} for r in rows], {}, ["'file_name' column"]),
    ],
)
def test_metadata_errors_name_the_task_and_the_problem(tone_csv, change, kw, words):
    if change is not None:
        rewrite(tone_csv, change)
    with pytest.raises(EvalError) as e:
        load_task(task_of(tone_csv, **kw))
    for w in words:
        assert w in str(e.value), str(e.value)


def test_missing_csv_and_unset_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR_X", raising=False)
    with pytest.raises(EvalError, match="metadata CSV not found.*NO_SUCH_VAR_X is not set"):
        load_task(task_of("$NO_SUCH_VAR_X/meta.csv"))
    with pytest.raises(EvalError, match="task 'tones': metadata CSV not found"):
        load_task(task_of(tmp_path / "none.csv"))


@pytest.mark.parametrize("names", [None, {"class0": "10", "class1": "2", "class2": "-1"}])
def test_training_dataset_and_eval_task_number_classes_alike(tone_csv, names):
    from ssl_toolkit.audio.dataset import AudioFolder

    if names is not None:
        rewrite(tone_csv, lambda rows: [{**r, "label": names[r["label"]]} for r in rows])
    data = load_task(task_of(tone_csv))
    ds = AudioFolder(str(tone_csv), audio_dir="wav", cache="none")
    assert ds.classes == data.classes == (["class0", "class1", "class2"] if names is None else ["-1", "2", "10"])
    assert list(ds.labels) == data.labels.tolist()
    train = AudioFolder(str(tone_csv), audio_dir="wav", split="train", cache="none")  # a split numbers alike
    assert train.classes == data.classes and list(train.labels) == data.labels[data.units[0].train].tolist()


def test_piece_spans():
    assert piece_spans(100, 160, "chunks") == [(0, 100)]  # short: one piece, padded later
    assert piece_spans(160, 160, "chunks") == [(0, 160)]
    assert piece_spans(400, 160, "chunks") == [(0, 160), (160, 160), (240, 160)]  # last piece ends the clip
    assert piece_spans(400, 160, "crop") == [(0, 160)]
    assert piece_spans(400, 160, "whole") == [(0, 400)]


def test_tone_helper_makes_distinct_tasks(tmp_path):
    p = write_tone_task(tmp_path / "x", n_per_class=4, classes=(500.0, 1500.0))
    assert len(list(csv.DictReader(open(p)))) == 8
