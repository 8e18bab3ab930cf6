"""Run directories cannot be corrupted: one process at a time (a killed one leaves no stuck lock), no silent
overwrite of a run, no silent recipe change on resume, and every recipe a run was trained with is kept."""

import csv
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ssl_toolkit.checkpoint import TrainingState
from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.runner import run_eval
from ssl_toolkit.eval.schema import load_eval_recipe
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.run_dir import RunDirError, RunDirLock, held_lock, recipe_changes
from ssl_toolkit.training.loop import TrainingError
from ssl_toolkit.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.log_every=1"]
CONSTANT = ["schedule.name=constant", "schedule.warmup_epochs=0"]


def train(recipe, out, overrides=(), **kw):
    return Trainer(load_recipe(recipe, [*FAST, *overrides]), out_dir=out, quiet=True, **kw).fit()


def rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_a_second_trainer_refuses_a_locked_run_dir(tensor_recipe, tmp_path):
    out = tmp_path / "run"
    with RunDirLock(out):
        assert held_lock(out / "eval") == out.resolve()  # also seen from a folder inside it (eval --out)
        with pytest.raises(RunDirError, match="in use by another run"):
            train(tensor_recipe, out, ["trainer.max_steps=2"])
    assert held_lock(out) is None
    train(tensor_recipe, out, ["trainer.max_steps=2"])  # released: the run goes ahead


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from ssl_toolkit.run_dir import RunDirLock
        with RunDirLock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    assert held_lock(out / "eval") == out.resolve()
    with pytest.raises(RunDirError, match=r"in use by another run \(pid \d+\)"):
        with RunDirLock(out):
            pass
    with pytest.raises(EvalError, match="in use by a training process"):
        run_eval(load_eval_recipe(ROOT / "recipes/eval/emodb.yaml"), "random", out / "eval", progress=False)
    from ssl_toolkit.embed import EmbedSettings, run_embed

    with pytest.raises(EvalError, match="embed: --out .* in use by a training process"):
        run_embed(
            "random",
            ROOT / "data" / "demo" / "fsdd_mini",
            out / "emb",
            EmbedSettings(progress=False),
            encoder={"name": "audiontt2020", "feature_d": 32},
        )
    assert not (out / "emb").exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunDirLock(out):  # the kernel released it
        pass
    assert held_lock(out) is None


def test_two_cli_trainers_on_one_dir_one_refuses(tensor_recipe, tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "ssl_toolkit",
        "train",
        str(tensor_recipe),
        *FAST,
        "trainer.max_steps=400",
        "--out",
        str(out),
        "--quiet",
    ]
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while held_lock(out) is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, capture_output=True, text=True)
    assert second.returncode == 1 and "in use by another run" in second.stderr
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)


def test_a_run_dir_is_never_overwritten_silently(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", ["trainer.max_steps=3"])
    before = (out / "metrics.csv").read_text()
    with pytest.raises(RunDirError, match=r"already holds a run.*--resume auto.*--overwrite"):
        train(tensor_recipe, out, ["trainer.max_steps=2"])
    assert (out / "metrics.csv").read_text() == before and TrainingState.load(out / "checkpoints/last.pt").step == 3
    train(tensor_recipe, out, ["trainer.max_steps=2"], overwrite=True)
    assert [int(r["step"]) for r in rows(out)] == [1, 2]
    assert TrainingState.load(out / "checkpoints/last.pt").step == 2


def test_resume_refuses_a_changed_recipe_and_names_the_keys(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", [*CONSTANT, "trainer.max_steps=4"])
    for change, key in (
        ("optimizer.lr=2.0", "optimizer.lr"),
        ("data.batch_size=16", "data.batch_size"),
        ("seed=3", "seed"),
    ):
        with pytest.raises(TrainingError, match=rf"(?s)recipe differs.*{key}: .* \(checkpoint\) -> .* \(now\)"):
            train(tensor_recipe, out, [*CONSTANT, "trainer.max_steps=8", change], resume="auto")
    assert TrainingState.load(out / "checkpoints/last.pt").step == 4  # nothing was written
    train(tensor_recipe, out, [*CONSTANT, "trainer.max_steps=6", "trainer.log_every=2"], resume="auto")  # safe keys
    assert TrainingState.load(out / "checkpoints/last.pt").step == 6


def test_an_accepted_change_takes_effect_and_every_recipe_is_kept(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", [*CONSTANT, "trainer.max_steps=4"])
    lr_before = float(rows(out)[-1]["lr"])
    train(
        tensor_recipe,
        out,
        [*CONSTANT, "trainer.max_steps=8", "optimizer.lr=2.0"],
        resume="auto",
        allow_recipe_change=True,
    )
    lrs = [float(r["lr"]) for r in rows(out)]
    assert lrs[:4] == [lr_before] * 4 and lrs[4:] == [pytest.approx(lr_before * 2.0 / 0.2)] * 4  # lr 0.2 → 2.0
    assert yaml.safe_load((out / "recipe.yaml").read_text())["optimizer"]["lr"] == 2.0
    assert yaml.safe_load((out / "recipe.until-step-4.yaml").read_text())["optimizer"]["lr"] == 0.2


def test_recipe_changes_ignore_the_safe_keys():
    a = {"trainer": {"max_steps": 4, "log_every": 1, "epochs": 5}, "optimizer": {"lr": 0.2}, "seed": 0}
    b = {"trainer": {"max_steps": 9, "log_every": 3, "epochs": 7}, "optimizer": {"lr": 0.2}, "seed": 0}
    assert recipe_changes(a, b) == []
    assert recipe_changes(a, {**b, "seed": 1}) == [("seed", 0, 1)]


def test_a_schema_key_newer_than_the_checkpoint_is_unchanged_at_its_default(tensor_recipe):
    """A checkpoint written before a schema key existed lacks it: at the key's default the run behaves as it did
    (no change, for every defaulted schema key); another value is a change like any other."""
    import copy

    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.recipe.schema import schema_defaults

    now = load_recipe(tensor_recipe).to_dict()
    defaults = schema_defaults()
    assert {"optimizer.constant_lr", "trainer.sync_batchnorm", "ema.schedule"} <= set(defaults)
    for key, default in defaults.items():
        *path, leaf = key.split(".")
        new, old = copy.deepcopy(now), copy.deepcopy(now)
        node_new, node_old = new, old
        for part in path:
            node_new, node_old = node_new[part], node_old[part]
        node_new[leaf] = copy.deepcopy(default)
        del node_old[leaf]
        assert recipe_changes(old, new, safe=()) == [], key
    old, new = copy.deepcopy(now), copy.deepcopy(now)
    del old["optimizer"]["constant_lr"]
    new["optimizer"]["constant_lr"] = ["online.predictor"]
    assert recipe_changes(old, new) == [("optimizer.constant_lr", "<unset>", ["online.predictor"])]


def test_a_changed_architecture_on_resume_names_the_recipe_keys(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", ["trainer.max_steps=2"])
    with pytest.raises(
        TrainingError,
        match=r"(?s)does not fit what this recipe builds \(.*shape mismatch.*"
        r"recipe keys changed since: model.encoder.hidden_dim.*cannot be resumed",
    ):
        train(
            tensor_recipe,
            out,
            ["trainer.max_steps=4", "model.encoder.hidden_dim=48"],
            resume="auto",
            allow_recipe_change=True,
        )
    with pytest.raises(TrainingError, match=r"(?s)missing .*recipe keys changed since: model.predictor.num_layers"):
        train(
            tensor_recipe,
            out,
            ["trainer.max_steps=4", "model.predictor.num_layers=3"],
            resume="auto",
            allow_recipe_change=True,
        )
    assert TrainingState.load(out / "checkpoints/last.pt").step == 2


def test_optimizer_groups_holding_other_parameters_are_refused_on_resume(tensor_recipe, tmp_path):
    """``optimizer.constant_lr`` moved from the predictor to the projector keeps every group's size on the tensor
    recipe, so torch would load the predictor's momentum into the projector's parameters: the groups' parameter
    names tell, and the resume is refused even with --allow-recipe-change; the same groups resume."""
    out = train(tensor_recipe, tmp_path / "run", ["trainer.max_steps=2", "optimizer.constant_lr=[online.predictor]"])
    state = TrainingState.load(out / "checkpoints/last.pt")
    sizes = [len(g["params"]) for g in state.optimizer["param_groups"]]
    with pytest.raises(
        TrainingError,
        match=r"(?s)optimizer group \d holds other parameters.*recipe keys changed since: optimizer.constant_lr",
    ):
        train(
            tensor_recipe,
            out,
            ["trainer.max_steps=4", "optimizer.constant_lr=[online.projector]"],
            resume="auto",
            allow_recipe_change=True,
        )
    from ssl_toolkit.engine.build import build_method
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.optim import param_groups

    method = build_method(load_recipe(tensor_recipe))
    assert [len(g["params"]) for g in param_groups(method, 0.0, True, ("online.projector",))] == sizes
    train(tensor_recipe, out, ["trainer.max_steps=4", "optimizer.constant_lr=[online.predictor]"], resume="auto")
    assert TrainingState.load(out / "checkpoints/last.pt").step == 4


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ssl_toolkit", *map(str, args)], capture_output=True, text=True)


def test_unusable_output_locations_are_refused_before_any_work(tensor_recipe, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    start = time.perf_counter()
    done = _cli("train", tensor_recipe, "--out", a_file / "run", "trainer.max_steps=2")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"--out {a_file / 'run'}: {a_file} is a file, not a folder" in done.stderr
    assert "run dir:" not in done.stderr  # nothing started
    done = _cli("eval", ROOT / "recipes/eval/fsdd_demo.yaml", "--checkpoint", "random", "--out", a_file / "e")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{a_file} is a file, not a folder" in done.stderr and "eval '" not in done.stderr
    assert time.perf_counter() - start < 60


def test_an_unwritable_output_location_is_refused(tensor_recipe, tmp_path, monkeypatch):
    import tempfile

    from ssl_toolkit.run_dir import check_output_location

    def read_only(*args, **kwargs):  # what a read-only mount or a chmod 555 folder gives (CI may run as root)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(RunDirError, match=r"--out .*/new/run: cannot write in .*: Read-only file system"):
        check_output_location(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # creates nothing
    with pytest.raises(RunDirError, match="Read-only file system"):
        train(tensor_recipe, tmp_path / "r2", ["trainer.max_steps=2"])
    monkeypatch.undo()
    check_output_location(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".ssl_toolkit-write-test-*"))
