"""DDP launched by torchrun (gloo, 2 CPU processes) equals one process with the same global batch."""

import os
import subprocess
import sys

import torch

DETERMINISTIC_VIEWS = "views.branches=[[{name: identity}], [{name: random_scale, low: 1.0, high: 1.0}]]"


def test_two_process_ddp_equals_single_process(single_and_ddp, tmp_path):
    a, b = single_and_ddp(
        ["trainer.max_steps=6", "trainer.log_every=3", DETERMINISTIC_VIEWS, "trainer.sync_batchnorm=true"]
    )
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
    # only rank 0 wrote: one metrics file, one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints").iterdir()) == ["last.pt"]


BAD_ON_RANK_1 = '''
from ssl_toolkit.data import BadItem
from ssl_toolkit.registry import DATASETS
from ssl_toolkit.tensors import GaussianClusters


@DATASETS.register("clusters_bad_first_batch_of_rank_1")
class Clusters(GaussianClusters):
    """Items 1, 3, 5 unreadable: rank 1's first batch of 4 (items 1, 3, 5, 7) keeps one usable item."""

    def __getitem__(self, i):
        return BadItem(f"item{i}.bin", "corrupt") if i in (1, 3, 5) else super().__getitem__(i)
'''


def test_a_batch_too_small_on_one_rank_is_left_out_on_every_rank_instead_of_hanging(tensor_recipe, tmp_path):
    """Rank 1's first batch has 1 usable item (batch statistics need 2), rank 0's has 4: both leave it out (one
    vote per batch). Without the vote rank 0 stepped on it alone: each step's gradient all-reduce then paired
    different batches of the two processes, their epochs ended at different steps (where a collective in an
    epoch-end hook waits or mismatches), and rank 0 logged nothing; with it rank 0 logs the left-out batch."""
    (tmp_path / "bad_rank1_plugin.py").write_text(BAD_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ddp = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
            *("-m", "ssl_toolkit", "train", str(tensor_recipe), "imports=[bad_rank1_plugin]"),
            "data.dataset={name: clusters_bad_first_batch_of_rank_1, size: 64}",
            *("data.batch_size=4", "data.shuffle=false", "trainer.epochs=1", "trainer.tensorboard=false"),
            *("trainer.progress=false", "--out", str(tmp_path / "run")),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "a batch of 4 usable item(s) was left out at step 0 (batch statistics need 2 in every process)" in (
        ddp.stderr + ddp.stdout
    )
    steps = [line.split(",")[0] for line in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[-1] == "8"  # 8 steps: the left-out batch is made up from the next epoch


SIGNAL_ON_RANK_1 = '''
import signal

import torch.distributed as dist

from ssl_toolkit.registry import HOOKS
from ssl_toolkit.training.hooks import Hook


@HOOKS.register("sigterm_on_rank_1")
class SigtermOnRank1(Hook):
    """A preemption signal that reaches rank 1 alone, after its step 3."""

    def on_step_end(self, run):
        if dist.get_rank() == 1 and run.pos.step == 3:
            run.interrupt = signal.SIGTERM
'''


def test_a_signal_to_one_process_stops_every_process_at_the_same_step(tensor_recipe, tmp_path):
    """Rank 1 alone is signalled; the vote carries it, so both ranks stop after step 4 and rank 0 saves last.pt.
    Without it rank 1 stopped while rank 0 waited in the next step's all-reduce until gloo's timeout."""
    (tmp_path / "sigterm_rank1_plugin.py").write_text(SIGNAL_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ddp = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
            *("-m", "ssl_toolkit", "train", str(tensor_recipe), "imports=[sigterm_rank1_plugin]"),
            *("trainer.hooks=[{name: sigterm_on_rank_1}]", "trainer.max_steps=20", "trainer.tensorboard=false"),
            *("trainer.progress=false", "--out", str(tmp_path / "run")),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "received signal (in another process): saved" in ddp.stderr + ddp.stdout
    from ssl_toolkit.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 4
    assert not (tmp_path / "run" / "encoder.pt").exists()  # stopped, to be resumed
