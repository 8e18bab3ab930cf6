"""A data worker killed mid-run (as the kernel's OOM killer does) ends the run with one line naming the likely cause,
the newest valid checkpoint and the resume command — also when the kill lands while a checkpoint is being written,
whose write then completes (issue 37). Real runs of byola_fsdd.yaml with data.num_workers=2."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ssl_toolkit import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "train",
    "recipes/audio/byola_fsdd.yaml",
    "data.num_workers=2",
    "trainer.progress=false",
    "trainer.hooks=[]",
    "trainer.tensorboard=false",
    "model.encoder.feature_d=64",
    "model.projector.hidden_dim=32",
    "model.predictor.hidden_dim=32",
]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def check_error(proc: subprocess.CompletedProcess, run: Path) -> None:
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert (
        err[-1].startswith("error: a data loader worker died (DataLoader worker (pid")
        and "Traceback" not in proc.stderr
    ), proc.stderr
    assert "out-of-memory killer" in err[-1] and f"--out {run} --resume auto" in err[-1]
    newest = ckpt.checkpoint_candidates(run)[0]
    step = ckpt.TrainingState.load(newest).step  # valid, and the one the message names
    assert f"the newest valid checkpoint is {newest} (step {step})" in err[-1]


def test_a_killed_worker_is_one_line_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssl_toolkit", *ARGS, "trainer.checkpoint_every=2", "--out", str(run)],
        cwd=ROOT,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "step_00000002.pt").exists():
        time.sleep(0.2)
    workers = []
    while time.time() < deadline and not workers:
        workers = children(proc.pid)
        time.sleep(0.05)
    assert workers, "no data loader worker appeared"
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    check_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr), run)
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssl_toolkit",
            "train",
            str(run / "recipe.yaml"),
            "--out",
            str(run),
            "--resume",
            "auto",
            "trainer.max_steps=8",
            "--allow-recipe-change",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert ckpt.TrainingState.load(run / "checkpoints" / "last.pt").step == 8


KILL_DURING_WRITE = """
import os, signal, sys, time
import ssl_toolkit.checkpoint as ck
real, writes = ck.atomic_write, []
def slow_write(path, write):
    writes.append(path)
    def writing(f):
        write(f)
        if len(writes) == 2:  # the second checkpoint: a worker is killed while the file is being written
            me = os.getpid()
            kids = [int(p) for p in open(f"/proc/{me}/task/{me}/children").read().split()]
            os.kill(kids[0], signal.SIGKILL)
            time.sleep(1.0)
            print(f"killed {kids[0]} while writing {path}", file=sys.stderr)
    return real(path, writing)
ck.atomic_write = slow_write
from ssl_toolkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_worker_killed_during_a_checkpoint_write_costs_no_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_WRITE, *ARGS, "trainer.checkpoint_every=2", "--out", str(run)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "killed" in proc.stderr and "while writing" in proc.stderr, proc.stderr
    check_error(proc, run)
    written = Path(proc.stderr.split("while writing ")[1].split()[0])
    assert written.name == "last.pt"  # step 2 writes step_00000002.pt, then last.pt: the kill lands in the second
    assert ckpt.TrainingState.load(written).step == 2  # the interrupted write completed and loads
    assert ckpt.TrainingState.load(run / "checkpoints" / "step_00000002.pt").step == 2
