"""The trainer on the tensor recipe: outputs, exact resume, kill/resume, bad input."""

import csv
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ssl_toolkit.checkpoint import TrainingState, load_checkpoint
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.training.trainer import NonFiniteLossError, Trainer, TrainingError

FAST = ["trainer.tensorboard=false", "trainer.progress=false"]


def train(recipe_path, out, overrides=(), resume=None):
    recipe = load_recipe(recipe_path, [*FAST, *overrides])
    return Trainer(recipe, out_dir=out, resume=resume, quiet=True).fit()


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def assert_same_weights(a, b):
    sa, sb = load_checkpoint(a)["method"], load_checkpoint(b)["method"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_run_writes_everything_and_learns(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", ["trainer.tensorboard=true"])
    for name in ("recipe.yaml", "metrics.csv", "checkpoints/last.pt", "encoder.pt"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    r = rows(out)
    assert [int(x["step"]) for x in r] == list(range(4, 41, 4))
    assert set(r[0]) >= {"step", "epoch", "loss", "lr", "tau", "samples_per_s", "collapse"}
    assert float(r[-1]["loss"]) < 0.5 * float(r[0]["loss"])
    assert float(r[-1]["collapse"]) > 0.25
    assert float(r[-1]["tau"]) == pytest.approx(1 - 0.01 * (torch.cos(torch.tensor(torch.pi * 39 / 40)) + 1) / 2)
    encoder_file = torch.load(out / "encoder.pt", weights_only=True)
    assert encoder_file["card"]["encoder"] == {"name": "mlp_encoder", "in_dim": 16, "hidden_dim": 32}
    enc = encoder_file["state_dict"]
    assert set(enc) == {
        k.removeprefix("online.encoder.")
        for k in load_checkpoint(out / "checkpoints/last.pt")["method"]
        if k.startswith("online.encoder.")
    }
    assert load_recipe(out / "recipe.yaml").trainer.epochs == 5  # the stored recipe is complete and valid


def test_max_steps_overrides_epochs_and_accumulation(tensor_recipe, tmp_path):
    out = train(
        tensor_recipe, tmp_path / "run", ["trainer.max_steps=6", "trainer.grad_accum_steps=2", "trainer.log_every=3"]
    )
    assert [int(x["step"]) for x in rows(out)] == [3, 6]
    assert load_checkpoint(out / "checkpoints/last.pt")["step"] == 6


def test_max_minutes_ends_the_run_at_the_first_log_step_past_the_budget(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "run", ["trainer.max_minutes=0", "trainer.log_every=3"])
    assert [int(x["step"]) for x in rows(out)] == [3]
    assert load_checkpoint(out / "checkpoints/last.pt")["step"] == 3
    assert (out / "encoder.pt").exists()
    generous = train(
        tensor_recipe, tmp_path / "long", ["trainer.max_minutes=60", "trainer.max_steps=9", "trainer.log_every=3"]
    )
    assert [int(x["step"]) for x in rows(generous)] == [3, 6, 9]


def test_elapsed_time_and_the_max_minutes_budget_carry_over_a_resume(tensor_recipe, tmp_path):
    """elapsed_s counts training time over every session, and trainer.max_minutes budgets that same time."""
    out = train(tensor_recipe, tmp_path / "run", ["trainer.max_steps=8", "trainer.log_every=4"])
    carried = load_checkpoint(out / "checkpoints/last.pt")["elapsed_s"]
    assert carried >= float(rows(out)[-1]["elapsed_s"]) > 0
    train(tensor_recipe, out, ["trainer.max_steps=12", "trainer.log_every=4"], resume="auto")
    assert [int(r["step"]) for r in rows(out)] == [4, 8, 12] and float(rows(out)[-1]["elapsed_s"]) > carried
    # a checkpoint that has spent 2 of a 1-minute budget: the resumed run ends at its first log step
    state = TrainingState.load(out / "checkpoints/last.pt")
    state.elapsed_s = 120.0
    state.save(out / "checkpoints/last.pt")
    (out / "encoder.pt").unlink()
    train(tensor_recipe, out, ["trainer.max_steps=40", "trainer.log_every=2", "trainer.max_minutes=1"], resume="auto")
    assert [int(r["step"]) for r in rows(out)] == [4, 8, 12, 14] and float(rows(out)[-1]["elapsed_s"]) >= 120
    assert load_checkpoint(out / "checkpoints/last.pt")["elapsed_s"] >= 120 and (out / "encoder.pt").exists()


def test_resume_mid_epoch_is_bit_exact(tensor_recipe, tmp_path):
    full = train(tensor_recipe, tmp_path / "full", ["trainer.max_steps=22", "trainer.checkpoint_every=5"])
    part = tmp_path / "part"
    train(tensor_recipe, part, ["trainer.max_steps=22", "trainer.checkpoint_every=5"])
    # roll the second run back to its step-15 checkpoint (mid-epoch: 8 steps per epoch) and resume
    (part / "checkpoints/step_00000015.pt").replace(part / "checkpoints/last.pt")
    (part / "encoder.pt").unlink()
    assert load_checkpoint(part / "checkpoints/last.pt")["batches_done"] == 7
    train(tensor_recipe, part, ["trainer.max_steps=22", "trainer.checkpoint_every=5"], resume="auto")
    assert_same_weights(full / "checkpoints/last.pt", part / "checkpoints/last.pt")
    assert [r["loss"] for r in rows(full)] == [r["loss"] for r in rows(part)]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from ssl_toolkit import checkpoint
    real = checkpoint.atomic_save
    def save_then_die(obj, path):
        out = real(obj, path)
        if str(path).endswith("step_00000010.pt"):
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    checkpoint.atomic_save = save_then_die
    from ssl_toolkit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigkill_then_resume_ends_with_the_same_weights(tensor_recipe, tmp_path):
    args = [str(tensor_recipe), *FAST, "trainer.max_steps=20", "trainer.checkpoint_every=10"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, "train", *args, "--out", str(tmp_path / "k"), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "k" / "encoder.pt").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "ssl_toolkit", "train", *args, "--out", str(tmp_path / "k"), "--resume", "auto"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "(step 10)" in resumed.stderr
    train(tensor_recipe, tmp_path / "ref", ["trainer.max_steps=20", "trainer.checkpoint_every=10"])
    assert_same_weights(tmp_path / "ref/checkpoints/last.pt", tmp_path / "k/checkpoints/last.pt")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_preemption_signal_checkpoints_exits_zero_and_resumes_exactly(tensor_recipe, tmp_path, sig):
    args = [str(tensor_recipe), *FAST, "trainer.max_steps=1000", "trainer.checkpoint_every=100000"]
    out = tmp_path / "pre"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssl_toolkit", "train", *args, "--out", str(out)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while not (out / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"received signal {sig.name}" in err and "--resume auto" in err
    step = load_checkpoint(out / "checkpoints/last.pt")["step"]
    assert 0 < step < 1000 and not (out / "encoder.pt").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "ssl_toolkit", "train", *args, "--out", str(out), "--resume", "auto"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0 and f"(step {step})" in resumed.stderr, resumed.stderr
    train(tensor_recipe, tmp_path / "ref", ["trainer.max_steps=1000", "trainer.checkpoint_every=100000"])
    assert_same_weights(tmp_path / "ref/checkpoints/last.pt", out / "checkpoints/last.pt")


def test_missing_data_file_and_empty_dataset_fail_clearly(tensor_recipe, tmp_path, monkeypatch):
    from ssl_toolkit.recipe import RecipeError
    from ssl_toolkit.tensors import GaussianClusters

    with pytest.raises(RecipeError, match=r"data.dataset.size': expected a value in \[1, inf\)"):
        train(tensor_recipe, tmp_path / "a", ["data.dataset.size=0"])
    monkeypatch.setattr(GaussianClusters, "__len__", lambda self: 0)  # a dataset that finds nothing
    with pytest.raises(TrainingError, match="zero items"):
        train(tensor_recipe, tmp_path / "a")
    monkeypatch.undo()
    with pytest.raises(TrainingError, match="fewer than one batch"):
        train(tensor_recipe, tmp_path / "b", ["data.dataset.size=8"])


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tensor_recipe, tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf at step \d+.*optimizer.lr"):
        train(
            tensor_recipe,
            out,
            [
                "optimizer.lr=1e30",
                "optimizer.name=sgd",
                "optimizer.options={}",
                "trainer.checkpoint_every=1",
                "trainer.log_every=1",
                "schedule.name=constant",
            ],
        )
    last = load_checkpoint(out / "checkpoints/last.pt")
    assert all(torch.isfinite(v).all() for v in last["method"].values() if v.is_floating_point())


def test_resume_auto_falls_back_from_a_corrupt_last_checkpoint(tensor_recipe, tmp_path, capsys):
    out = train(tensor_recipe, tmp_path / "c", ["trainer.max_steps=20", "trainer.checkpoint_every=10"])
    (out / "checkpoints/last.pt").write_bytes(b"garbage")
    recipe = load_recipe(tensor_recipe, [*FAST, "trainer.max_steps=20", "trainer.checkpoint_every=10"])
    Trainer(recipe, out_dir=out, resume="auto").fit()
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and "step_00000010.pt (step 10)" in err


def test_bf16_autocast_runs(tensor_recipe, tmp_path):
    out = train(tensor_recipe, tmp_path / "bf16", ["precision=bf16", "trainer.max_steps=4"])
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows(out))


def test_same_recipe_and_seed_give_the_same_metrics(tensor_recipe, tmp_path):
    a = rows(train(tensor_recipe, tmp_path / "a", ["trainer.max_steps=12"]))
    b = rows(train(tensor_recipe, tmp_path / "b", ["trainer.max_steps=12"]))
    timing = {"samples_per_s", "elapsed_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in a] == [
        {k: v for k, v in r.items() if k not in timing} for r in b
    ]


def test_method_diagnostics_and_labels_reach_metrics(tensor_recipe, tmp_path):
    """CCSL takes the batch labels (for its label-agreement diagnostic); its scalars become columns."""
    out = train(tensor_recipe, tmp_path / "ccsl", ["method.name=ccsl", "method.gamma=0.5", "trainer.max_steps=8"])
    r = rows(out)
    assert {"sl_selected", "sl_label_agreement"} <= set(r[0])
    assert all(0.0 <= float(x["sl_selected"]) <= 1.0 for x in r)
    # resumed runs keep the same columns
    train(tensor_recipe, out, ["method.name=ccsl", "method.gamma=0.5", "trainer.max_steps=12"], resume="auto")
    assert list(rows(out)[0]) == list(r[0]) and len(rows(out)) == 3


def test_resume_refuses_a_checkpoint_without_rng_state(tensor_recipe, tmp_path, capsys):
    """A checkpoint that cannot resume exactly (no RNG state) is skipped like a corrupt one, with the reason."""
    out = train(tensor_recipe, tmp_path / "r", ["trainer.max_steps=20", "trainer.checkpoint_every=10"])

    def drop_rng():
        state = TrainingState.load(out / "checkpoints/last.pt")
        state.rng = None
        state.save(out / "checkpoints/last.pt")

    drop_rng()
    recipe = load_recipe(tensor_recipe, [*FAST, "trainer.max_steps=20", "trainer.checkpoint_every=10"])
    Trainer(recipe, out_dir=out, resume="auto").fit()
    err = capsys.readouterr().err
    assert "last.pt: no RNG state, so it cannot resume exactly" in err and "step_00000010.pt (step 10)" in err
    drop_rng()  # the resumed run wrote a new last.pt
    with pytest.raises(TrainingError, match="no RNG state"):
        Trainer(recipe, out_dir=out, resume=str(out / "checkpoints/last.pt")).fit()
