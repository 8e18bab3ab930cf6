"""End to end on a slice of the real FSDD (../shared/data/fsdd) with the `random` checkpoint."""

import csv
import json

from evalhelpers import ROOT

from ssl_toolkit.eval.runner import run_eval
from ssl_toolkit.eval.schema import load_eval_recipe


def test_fsdd_slice_random_checkpoint(shared_data, tmp_path):
    fsdd = shared_data / "fsdd"
    rows = list(csv.DictReader(open(fsdd / "metadata.csv")))
    # 4 takes of every (digit, speaker): 240 clips, speaker independent split (160 train / 80 test)
    rows = [r for r in rows if int(r["take"]) < 4]
    meta = tmp_path / "fsdd_slice.csv"
    with open(meta, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    recipe = load_eval_recipe(
        ROOT / "recipes" / "eval" / "fsdd.yaml",
        [
            f"tasks.0.metadata={meta}",
            f"tasks.0.audio_dir={fsdd / 'recordings'}",
            "model.encoder.feature_d=128",
            "linear.runs=2",
            f"cache_dir={tmp_path / 'cache'}",
            "plots.tsne=false",
        ],
    )
    recipe.parsed_tasks = recipe.parsed_tasks[:1]
    out = tmp_path / "out"
    res = run_eval(recipe, "random", out_dir=out, quiet=True)
    e = res["tasks"]["fsdd_digits"]
    assert e["n_test"] == 80 and e["n_train"] + e["n_valid"] == 160 and e["num_classes"] == 10
    assert e["metric"] == "accuracy" and 0.1 < e["mean"] <= 1.0
    assert set(res["baselines"]) == {"logmel"}
    json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().count("| fsdd_digits |") == 1
