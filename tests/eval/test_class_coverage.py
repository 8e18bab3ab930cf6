"""A class the probe cannot learn (test items, no training items) or early stopping cannot see (no validation items
in a given validation split) is named with its counts per split, in the log, results.json and results.md; the
per-class counts are in both (issue 37)."""

import csv
import json

import numpy as np
from evalhelpers import audio_recipe

from ssl_toolkit.eval.class_coverage import coverage_warnings, markdown_table, split_counts
from ssl_toolkit.eval.runner import run_eval
from ssl_toolkit.eval.schema import eval_recipe_from_dict


def test_counts_and_warnings_single_and_multi_label():
    y = np.array([0, 0, 1, 2, 2, 2])
    c = split_counts(y, [0, 1, 2], None, [3, 4, 5], 3)
    assert c == {"train": [2, 1, 0], "valid": None, "test": [0, 0, 3]}
    (w,) = coverage_warnings("t", ["a", "b", "c"], {"split": c})
    assert w == (
        "task 't': class 'c' has test items but no training items (train 0, test 3): the probe can never "
        "predict it, so the score cannot reach 100 %"
    )
    multi = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    c = split_counts(multi, [0], [1], [2], 3)
    assert c == {"train": [1, 0, 1], "valid": [1, 1, 0], "test": [0, 0, 1]}
    (w,) = coverage_warnings("m", ["a", "b", "c"], {"fold 2": c})
    assert w.startswith("task 'm' (fold 2): class 'c' has no validation items (train 1, valid 0, test 1)")
    assert coverage_warnings("t", ["a"], {"split": {"train": [3], "valid": [1], "test": [2]}}) == []


def _move(csv_path, label, src, dst):
    rows = list(csv.DictReader(open(csv_path)))
    for r in rows:
        if r["label"] == label and r["split"] == src:
            r["split"] = dst
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_eval_names_an_unlearnable_class_and_shows_the_counts(tone_csv, tmp_path, capsys):
    _move(tone_csv, "class2", "train", "test")  # class2: no training items
    _move(tone_csv, "class1", "valid", "train")  # class1: no validation items (the valid split stops early)
    tree = audio_recipe(tone_csv, tmp_path)
    tree["linear"]["runs"] = 1
    results = run_eval(eval_recipe_from_dict(tree), "random", out_dir=tmp_path / "out", progress=False)
    err = capsys.readouterr().err
    assert (
        "warning: task 'tones': class 'class2' has test items but no training items (train 0, valid 2, test 6)" in err
        and "class 'class1' has no validation items (train 6, valid 0, test 2)" in err
    )
    stored = json.loads((tmp_path / "out" / "results.json").read_text())
    assert stored["warnings"] == results["warnings"] and len(stored["warnings"]) == 2
    counts = stored["tasks"]["tones"]["class_counts"]
    assert counts["classes"] == ["class0", "class1", "class2"]
    assert counts["units"]["split"] == {"train": [4, 6, 0], "valid": [2, 0, 2], "test": [2, 2, 6]}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Warnings" in md and "| class2 | 0 | 2 | 6 |" in md and "| class1 | 6 | 0 | 2 |" in md


def test_k_fold_tables_show_each_fold_s_test_items():
    entry = {
        "class_counts": {
            "classes": ["a", "b"],
            "units": {
                "fold 1": {"train": [2, 2], "valid": None, "test": [1, 0]},
                "fold 2": {"train": [1, 2], "valid": None, "test": [2, 2]},
            },
        }
    }
    lines = markdown_table("k", entry)
    assert "| class | test in fold 1 | test in fold 2 |" in lines and "| b | 0 | 2 |" in lines
