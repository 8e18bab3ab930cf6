"""torchrun --max-restarts: a worker killed mid-run makes the job restart from the last checkpoint."""

import subprocess
import sys
import textwrap

import torch

from ssl_toolkit.checkpoint import load_checkpoint

ARGS = [
    "trainer.tensorboard=false",
    "trainer.progress=false",
    "trainer.max_steps=16",
    "trainer.checkpoint_every=8",
    "trainer.sync_batchnorm=true",
    "data.batch_size=8",
]

KILL_RANK1_ONCE = textwrap.dedent("""
    import os, signal, sys
    from ssl_toolkit.training import trainer
    real = trainer.Trainer._save
    def save_then_die(self, pos, name):
        out = real(self, pos, name)
        if (self.dist.rank == 1 and name == "last.pt" and pos.step == 8
                and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"):
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    trainer.Trainer._save = save_then_die
    from ssl_toolkit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def torchrun(script_or_module, args, out, max_restarts=0):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--max-restarts",
        str(max_restarts),
    ]
    cmd += ["-m", "ssl_toolkit"] if script_or_module is None else [str(script_or_module)]
    return subprocess.run(cmd + ["train", *args, "--out", str(out)], capture_output=True, text=True, timeout=240)


def test_killed_worker_restarts_from_checkpoint_and_matches(tensor_recipe, tmp_path):
    script = tmp_path / "kill_rank1.py"
    script.write_text(KILL_RANK1_ONCE)
    job = torchrun(script, [str(tensor_recipe), *ARGS], tmp_path / "elastic", max_restarts=1)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "resuming from" in job.stderr and "(step 8)" in job.stderr
    ref = torchrun(None, [str(tensor_recipe), *ARGS], tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    a = load_checkpoint(tmp_path / "elastic/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "ref/checkpoints/last.pt")
    assert a["step"] == b["step"] == 16
    for k in a["method"]:
        assert torch.allclose(a["method"][k].float(), b["method"][k].float(), atol=1e-6), k
