"""The claim harnesses that feed validity_verdicts.py: bench_audio_budget.py's levers (the shipped 8-minute recipe,
the ablation's components), what they log and skip, bench_variants.py's logged rows, bench_finetune.py's lr sweep."""

import json

import pytest
from test_validity_claims import ROOT, budget, finetune_bench, variants

from ssl_toolkit.recipe import load_recipe


def test_the_shipped_8_minute_recipe_is_the_benchmarked_v2_lever():
    shipped = load_recipe(ROOT / "recipes" / "audio" / "byola_cpu_8min.yaml").to_dict()
    lever = load_recipe(ROOT / budget.RECIPE, budget.LEVERS["v2"][1]).to_dict()
    for key in ("name", "description"):
        shipped.pop(key), lever.pop(key)
    assert shipped == lever


def test_the_fine_tuning_recipes_hold_the_swept_lr_of_each_system():
    """The lr of every fine-tuned system in the claims' eval recipes is the one the logged sweep chose (the best
    validation accuracy over all held-out items; never the test split)."""
    for claim in finetune_bench.CLAIMS:
        chosen = finetune_bench.chosen_lrs(claim)
        shipped = finetune_bench.recipe_lrs(claim)
        assert {k: shipped[k] for k in chosen} == chosen, claim


def test_the_sweep_choice_is_pooled_over_items_at_the_tested_epoch_and_written_into_the_recipe(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep.jsonl"
    lines = [  # (row, lr, validation curve, items): best epoch — 1 %: 20 items favour lr 0.1; 10 %: 200 favour 0.01
        ("t@1% byol", 0.1, [0.9, 0.5], 20),
        ("t@1% byol", 0.01, [0.5, 0.5], 20),
        ("t byol", 0.1, [0.40, 0.40], 200),
        ("t byol", 0.01, [0.50, 0.30], 200),  # ... but at the last epoch, 0.1 is ahead
        ("t@1% random", 0.1, [0.5, 0.5], 20),
        ("t random", 0.1, [0.5, 0.5], 200),
        ("t@1% random", 0.3, [0.6, 0.6], 20),
        ("t random", 0.3, [0.6, 0.6], 200),
    ]
    sweep.write_text(
        "".join(
            json.dumps({"claim": "x", "key": k, "lr": lr, "valid": [max(v)], "valid_curves": [v], "n_valid": n}) + "\n"
            for k, lr, v, n in lines
        )
    )
    task = "tasks:\n  - name: t\n    kind: image_classification\n    dataset: {name: npz, path: d.npz}\n"
    recipe = tmp_path / "t.yaml"
    recipe.write_text("name: t\nlinear:\n  lr: 0.0003\nfinetune:\n  epochs: 30\n  lr: 0.5\n  runs: 1\n" + task)
    monkeypatch.setattr(finetune_bench, "SWEEP_FILE", sweep)
    monkeypatch.setattr(finetune_bench, "ROOT", tmp_path)
    monkeypatch.setitem(finetune_bench.CLAIMS, "x", {"evals": ["t.yaml"]})
    assert finetune_bench.pooled_valid("x")["t", "byol"] == pytest.approx({0.01: 0.5, 0.1: (18 + 80) / 220})
    assert finetune_bench.chosen_lrs("x") == {("t", "byol"): 0.01, ("t", "random"): 0.3}
    finetune_bench.apply_sweep("x")
    want = "name: t\nlinear:\n  lr: 0.0003\nfinetune:\n  epochs: 30\n  lr: 0.01\n  baseline_lr: 0.3\n  runs: 1\n" + task
    assert recipe.read_text() == want
    finetune_bench.apply_sweep("x")  # idempotent
    assert recipe.read_text() == want
    recipe.write_text(want.replace("  runs: 1", "  runs: 1\n  select_epoch: last"))  # the last epoch's scores
    assert finetune_bench.pooled_valid("x")["t", "byol"] == pytest.approx({0.01: (10 + 60) / 220, 0.1: (10 + 80) / 220})
    assert finetune_bench.chosen_lrs("x")["t", "byol"] == 0.1
    monkeypatch.setattr(finetune_bench, "pooled_valid", lambda claim: {("t", "random"): {0.03: 0.1 + 0.2, 0.01: 0.3}})
    assert finetune_bench.chosen_lrs("x") == {("t", "random"): 0.01}  # a tie (up to rounding): the smaller lr
    assert "  lr: 0.00001\n" in finetune_bench.set_finetune_keys("finetune:\n  lr: 1\n", {"lr": 1e-5}, "r")


def test_the_audio_bench_runs_a_seed_once_and_refuses_a_logged_run_of_other_overrides(tmp_path, monkeypatch):
    for name, value in (("RESULTS", tmp_path / "a.jsonl"), ("VALIDITY", tmp_path / "v.jsonl"), ("FSDD", tmp_path)):
        monkeypatch.setattr(budget, name, value)
    monkeypatch.setattr(budget, "EMODB", tmp_path)
    monkeypatch.setattr(budget, "table", lambda rows: "")
    monkeypatch.setattr(budget, "validity_rows", lambda rows: [])
    ran = []

    def run_one(label, seed, out):
        ran.append((label, seed))
        scores = {"model": {t: [0.5] for t in budget.TASKS}}
        return {"lever": label, "seed": seed, "overrides": budget.LEVERS[label][1], "steps": 320, "scores": scores}

    monkeypatch.setattr(budget, "run_one", run_one)
    assert budget.main(["--levers", "abl_no_rrc", "--seeds", "0", "0", "1"]) == 0
    assert ran == [("abl_no_rrc", 0), ("abl_no_rrc", 1)]
    assert budget.main(["--levers", "abl_no_rrc", "--seeds", "0", "1"]) == 0 and len(ran) == 2  # logged: skipped
    rows = [json.loads(line) for line in budget.RESULTS.read_text().splitlines()]
    rows[0]["overrides"] = ["trainer.max_steps=100"]  # the lever has changed since seed 0 was logged
    budget.RESULTS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit, match="abl_no_rrc seed 0 was logged with overrides"):
        budget.main(["--levers", "abl_no_rrc", "--seeds", "0"])


def test_a_logged_image_run_of_another_size_is_refused():
    key = variants._config("recipes/image/byol_cifar10_cpu.yaml", ["ema.tau_base=0.9"], 1)
    full = {"overrides": variants.train_overrides("image", "full", 1, ["ema.tau_base=0.9"])}
    args = ({key: full}, "v.jsonl", "recipes/image/byol_cifar10_cpu.yaml", ["ema.tau_base=0.9"], 1, "image")
    assert variants.logged_result(*args, "full") is full
    assert variants.logged_result({}, *args[1:], "full") is None
    with pytest.raises(SystemExit, match="--size medium trains it with"):
        variants.logged_result(*args, "medium")


def test_each_audio_ablation_lever_takes_away_exactly_its_component():
    def ops(label):
        r = load_recipe(ROOT / budget.RECIPE, budget.LEVERS[label][1])
        v = r.to_dict()["views"]
        names = [[op["name"] for op in branch] for branch in v["branches"]]
        return names, [op["name"] for op in v["input"]], [op["name"] for op in v["joint"]], r.trainer.max_steps

    full = ops("abl_full")
    assert full == (
        [["mixup", "random_resize_crop", "random_linear_fader"]] * 2,
        ["log_mel", "pre_norm"],
        ["post_norm"],
        320,
    )
    for label, branch_op in (
        ("abl_no_mixup", "mixup"),
        ("abl_no_rrc", "random_resize_crop"),
        ("abl_no_fader", "random_linear_fader"),
    ):
        assert ops(label) == ([[o for o in b if o != branch_op] for b in full[0]], *full[1:])
    assert ops("abl_no_prenorm") == (full[0], ["log_mel"], *full[2:])
    assert ops("abl_no_postnorm") == (*full[:2], [], 320)


def test_saved_bench_results_count_only_for_a_run_of_the_same_recipe(tmp_path, monkeypatch):
    """bench_result.json of a finished run is reused when its recipe.yaml is the recipe asked for (overrides alone
    are not enough: the recipe file may have changed), and a run of another recipe is refused."""
    import yaml

    from ssl_toolkit.recipe.schema import to_plain

    path, run_dir = "recipes/image/byol_cifar10_cpu.yaml", tmp_path / "run"
    overrides = variants.train_overrides("image", "full", 0, [])
    run_dir.mkdir()
    (run_dir / "encoder.pt").write_bytes(b"")
    (run_dir / "bench_result.json").write_text(json.dumps({"overrides": overrides, "linear": 0.42}))
    monkeypatch.setattr(variants, "train_or_reuse", lambda *a: pytest.fail("a finished run must not train"))

    def write_recipe(ov):
        plain = to_plain(load_recipe(ROOT / path, ov).to_dict())
        (run_dir / "recipe.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))

    write_recipe(overrides)
    assert variants.train_and_eval(path, [], 0, run_dir, "image", "full", "byol")["linear"] == 0.42
    write_recipe([*overrides, "optimizer.weight_decay=0.5"])  # the same overrides over an edited recipe file
    with pytest.raises(SystemExit, match=r"another recipe:\n  optimizer.weight_decay"):
        variants.train_and_eval(path, [], 0, run_dir, "image", "full", "byol")
