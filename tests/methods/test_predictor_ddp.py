"""A closed-form predictor under DDP (gloo, 2 CPU processes): the batch statistics are averaged over
processes, so the run equals one process with the same global batch."""
import subprocess
import sys

import torch

from ssl_toolkit.train.checkpoint import load_checkpoint

COMMON = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.max_steps=4", "trainer.log_every=2",
          "views.branches=[[{name: identity}], [{name: random_scale, low: 1.0, high: 1.0}]]",
          "trainer.sync_batchnorm=true", "model.predictor={name: ns}", "--quiet"]


def test_two_process_ddp_with_a_closed_form_predictor_equals_single_process(tensor_recipe, tmp_path):
    single = subprocess.run([sys.executable, "-m", "ssl_toolkit", "train", str(tensor_recipe), *COMMON,
                             "data.batch_size=16", "--out", str(tmp_path / "single")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "ssl_toolkit", "train", str(tensor_recipe), *COMMON, "data.batch_size=8",
                          "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr
    a = load_checkpoint(tmp_path / "single/checkpoints/last.pt")["method"]
    b = load_checkpoint(tmp_path / "ddp/checkpoints/last.pt")["method"]
    assert "online.predictor.weight" in a and int(a["online.predictor.num_updates"]) == 4
    # the statistics are the global batch's (without the all-reduce rank 0 would hold its half's)
    for k in ("online.predictor.sigma", "online.predictor.weight"):
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (k, (a[k] - b[k]).abs().max())
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
