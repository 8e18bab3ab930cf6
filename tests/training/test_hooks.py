"""Hooks: the documented call points and their order, a user hook registered under `imports:` and turned on
by `trainer.hooks`, validated like any component, resuming with its state, and without effect on training."""

import csv
import textwrap

import pytest
import torch

from ssl_toolkit.checkpoint import TrainingState
from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.training.hooks import Hook, Hooks
from ssl_toolkit.training.loop import TrainingError
from ssl_toolkit.training.trainer import Trainer

FAST = ["trainer.tensorboard=false", "trainer.progress=false"]

PLUGIN = textwrap.dedent('''
    from ssl_toolkit.registry import HOOKS
    from ssl_toolkit.training.hooks import Hook

    CALLS = []

    @HOOKS.register("recorder")
    class Recorder(Hook):
        """Records every call point; counts steps as its checkpointed state; adds a column."""

        def __init__(self, column: str = "steps_seen"):
            self.column, self.seen = column, 0

        def on_resume(self, run, state): CALLS.append(("resume", state.step))
        def on_start(self, run): CALLS.append(("start", run.pos.step))
        def on_step(self, run, out):
            self.seen += 1
            CALLS.append(("step", run.pos.step))
        def on_log(self, run, row):
            row[self.column] = self.seen
            CALLS.append(("log", run.pos.step))
        def on_step_end(self, run): CALLS.append(("step_end", run.pos.step))
        def on_epoch_end(self, run): CALLS.append(("epoch_end", run.pos.epoch))
        def on_checkpoint(self, run, state): CALLS.append(("checkpoint", state.step))
        def on_end(self, run): CALLS.append(("end", run.pos.step))
        def state_dict(self): return {"seen": self.seen}
        def load_state_dict(self, state): self.seen = state["seen"]

    @HOOKS.register("bad_hook")
    def bad_hook():
        """Not a Hook."""
        return object()
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "hook_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("hook_plugin", None)
    from ssl_toolkit.registry import HOOKS

    for name in ("recorder", "bad_hook"):
        HOOKS._entries.pop(name, None)  # a fresh registration per test
    module = importlib.import_module("hook_plugin")
    yield module
    sys.modules.pop("hook_plugin", None)


def recipe(tensor_recipe, overrides=()):
    return load_recipe(tensor_recipe, [*FAST, "imports=[hook_plugin]", *overrides])


def test_call_points_in_order_and_hook_column(plugin, tensor_recipe, tmp_path):
    r = recipe(
        tensor_recipe,
        [
            "trainer.hooks=[{name: recorder}]",
            "trainer.max_steps=10",
            "trainer.log_every=4",
            "trainer.checkpoint_every=6",
        ],
    )
    out = Trainer(r, out_dir=tmp_path / "run", quiet=True).fit()
    calls = plugin.CALLS
    assert calls[0] == ("start", 0) and calls[-1] == ("end", 10)
    steps = [c for c in calls if c[0] == "step"]
    assert steps == [("step", s) for s in range(1, 11)]
    # per step: step → (log at 4, 8 and the last step) → step_end; checkpoints (6, last.pt at 10) in between
    assert calls[calls.index(("step", 4)) : calls.index(("step", 5))] == [("step", 4), ("log", 4), ("step_end", 4)]
    assert calls[calls.index(("step", 6)) : calls.index(("step", 7))] == [  # the built-in checkpoint hook first
        ("step", 6),
        ("checkpoint", 6),
        ("checkpoint", 6),
        ("step_end", 6),
    ]  # step_00000006.pt, last.pt
    assert ("epoch_end", 0) in calls and calls.index(("epoch_end", 0)) == calls.index(("step_end", 8)) + 1
    assert calls[-4:] == [("log", 10), ("step_end", 10), ("checkpoint", 10), ("end", 10)]
    with open(out / "metrics.csv") as f:
        assert [int(r["steps_seen"]) for r in csv.DictReader(f)] == [4, 8, 10]
    assert TrainingState.load(out / "checkpoints/last.pt").hooks == {"Recorder": {"seen": 10}}


def test_hook_state_resumes(plugin, tensor_recipe, tmp_path):
    out = tmp_path / "run"
    Trainer(
        recipe(tensor_recipe, ["trainer.hooks=[{name: recorder}]", "trainer.max_steps=6"]), out_dir=out, quiet=True
    ).fit()
    plugin.CALLS.clear()
    Trainer(
        recipe(tensor_recipe, ["trainer.hooks=[{name: recorder}]", "trainer.max_steps=9"]),
        out_dir=out,
        resume="auto",
        quiet=True,
    ).fit()
    assert plugin.CALLS[0] == ("resume", 6) and plugin.CALLS[1] == ("start", 6)
    assert TrainingState.load(out / "checkpoints/last.pt").hooks == {"Recorder": {"seen": 9}}


def test_hooks_do_not_change_training(plugin, tensor_recipe, tmp_path):
    a = Trainer(
        recipe(tensor_recipe, ["trainer.max_steps=8", "trainer.log_every=1"]), out_dir=tmp_path / "a", quiet=True
    ).fit()
    b = Trainer(
        recipe(tensor_recipe, ["trainer.max_steps=8", "trainer.log_every=1", "trainer.hooks=[{name: recorder}]"]),
        out_dir=tmp_path / "b",
        quiet=True,
    ).fit()
    loss = [[r["loss"] for r in csv.DictReader(open(d / "metrics.csv"))] for d in (a, b)]
    assert loss[0] == loss[1]
    sa, sb = (TrainingState.load(d / "checkpoints/last.pt").method for d in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hook_recipe_keys_are_validated(plugin, tensor_recipe):
    with pytest.raises(RecipeError, match=r"trainer\.hooks\.0.*recordr|recorder"):
        recipe(tensor_recipe, ["trainer.hooks=[{name: recordr}]"])
    with pytest.raises(RecipeError, match="column_name"):
        recipe(tensor_recipe, ["trainer.hooks=[{name: recorder, column_name: x}]"])
    with pytest.raises(TrainingError, match="not a Hook"):
        Trainer(recipe(tensor_recipe, ["trainer.hooks=[{name: bad_hook}]"]), quiet=True).fit()


def test_hooks_run_in_order_and_only_overridden_points_are_called():
    seen = []

    class A(Hook):
        order = 60

        def on_step(self, run, out):
            seen.append("A")

    class B(Hook):
        order = 5

        def on_step(self, run, out):
            seen.append("B")

    hooks = Hooks([A(), B()])
    hooks.on_step(None, None)
    hooks.on_log(None, {})  # nobody overrides it: a no-op
    assert seen == ["B", "A"]


def test_an_epoch_that_can_make_no_step_is_an_error_not_a_hang(tensor_recipe, tmp_path):
    with pytest.raises(TrainingError, match=r"epoch 0 made no optimizer step.*data\.batch_size=1"):
        Trainer(load_recipe(tensor_recipe, [*FAST, "data.batch_size=1"]), out_dir=tmp_path / "r", quiet=True).fit()


def test_log_lines_about_bad_files_and_left_out_batches_are_bounded(tensor_recipe, tmp_path, capsys, monkeypatch):
    from ssl_toolkit.data import BadItem
    from ssl_toolkit.tensors import GaussianClusters
    from ssl_toolkit.training.loop import MAX_LOGGED

    real = GaussianClusters.__getitem__
    monkeypatch.setattr(
        GaussianClusters,
        "__getitem__",  # 3 of every 4 items bad: each batch of 4 has one usable
        lambda self, i: real(self, i) if i % 4 == 0 else BadItem(f"item{i}.bin", "corrupt"),
    )
    recipe = load_recipe(tensor_recipe, [*FAST, "data.batch_size=4", "data.shuffle=false", "data.dataset.size=256"])
    with pytest.raises(TrainingError, match=r"epoch 0 made no optimizer step: 64 batches read, 192 bad file\(s\)"):
        Trainer(recipe, out_dir=tmp_path / "r").fit()
    err = capsys.readouterr().err
    assert err.count("skipped item") == MAX_LOGGED and "further skipped files are listed in" in err
    assert err.count("was left out at step") == MAX_LOGGED
    assert "note: epoch 0: 64 batches with fewer than 2 usable items were left out" in err
    assert len((tmp_path / "r" / "skipped_files.txt").read_text().splitlines()) == 192  # every file is listed


def test_first_ctrl_c_asks_for_a_checkpoint_and_the_second_stops_at_once():
    import os
    import signal
    from types import SimpleNamespace

    from ssl_toolkit.training.hooks import StopSignals

    messages = []
    run = SimpleNamespace(interrupt=None, log=messages.append)
    hook = StopSignals()
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    hook.on_start(run)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert run.interrupt == signal.SIGINT and "Ctrl-C again" in messages[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        hook.on_end(run)
    assert signal.getsignal(signal.SIGINT) is before  # restored
