"""Multi-node torchrun on one machine: two agents (2 "nodes" × 1 gloo process) joined by a c10d rendezvous on
127.0.0.1 equal one process with the same global batch, and resume from the checkpoint after a killed worker."""

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from test_ddp import DETERMINISTIC_VIEWS
from test_elastic import ARGS, KILL_RANK1_ONCE

from ssl_toolkit.checkpoint import load_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tensors" / "byol_gaussian.yaml"
MULTINODE_ARGS = [str(RECIPE), *ARGS, DETERMINISTIC_VIEWS]  # 16 steps, checkpoint at 8, batch 8 per process
TIMEOUT = 240

# Rank 0 stays 5 s in its step-8 checkpoint (a long step on a real node) while rank 1 dies: its agent then restarts
# it for the membership change (the other node re-joining the rendezvous), as on a cluster, not for its own failure.
HOLD_RANK0_ONCE = textwrap.dedent("""
    import os, time
    from ssl_toolkit.training import trainer
    real_save = trainer.Trainer._save
    def save_then_hold(self, pos, name):
        out = real_save(self, pos, name)
        if self.dist.rank == 0 and pos.step == 8 and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
            time.sleep(5)
        return out
    trainer.Trainer._save = save_then_hold
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(program, args, out, max_restarts=0):
    """Two torchrun agents of 1 process each meeting at a c10d rendezvous; returns their exit codes (None: timed out,
    then stopped) and their two logs."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--max-restarts",
        str(max_restarts),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        f"multinode-{port}",
        "--local-addr",
        "127.0.0.1",
        *program,
        "train",
        *args,
        "--out",
        str(out),
    ]
    logs = [out.parent / f"{out.name}.node{i}.log" for i in range(2)]
    agents = []
    for log in logs:
        with log.open("w") as f:
            agents.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT))
    deadline, codes = time.monotonic() + TIMEOUT, []
    for agent in agents:
        try:
            codes.append(agent.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
    texts = [log.read_text() for log in logs]  # before stopping a hung job adds the agents' tracebacks
    for agent in agents:
        if agent.poll() is None:
            agent.terminate()  # the agent stops its workers
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
    return codes, texts


def tails(logs: list[str]) -> str:
    return "\n".join(f"--- node {i}\n{text[-2000:]}" for i, text in enumerate(logs))


def assert_states_close(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], **tol), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k


def steps_logged(run_dir: Path) -> list[str]:
    return [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run dir of an uninterrupted 2-node run of MULTINODE_ARGS, and its logs."""
    out = tmp_path_factory.mktemp("multinode") / "run"
    codes, logs = two_nodes(["-m", "ssl_toolkit"], MULTINODE_ARGS, out)
    assert codes == [0, 0], tails(logs)
    return out, "".join(logs)


def test_two_nodes_equal_one_process_with_the_same_global_batch(uninterrupted, tmp_path):
    nodes, log = uninterrupted
    assert "global batch 16, 2 process(es)" in log
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssl_toolkit",
            "train",
            *MULTINODE_ARGS,
            "data.batch_size=16",
            "--out",
            str(tmp_path / "single"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_checkpoint(tmp_path / "single/checkpoints/last.pt")
    b = load_checkpoint(nodes / "checkpoints/last.pt")
    assert a["step"] == b["step"] == 16
    assert_states_close(a["method"], b["method"], rtol=1e-4, atol=1e-5)
    # both nodes got the same --out and rank 0 alone wrote there: the files and metrics rows of one process
    files = {p.relative_to(tmp_path / "single") for p in (tmp_path / "single").rglob("*")}
    assert {p.relative_to(nodes) for p in nodes.rglob("*")} == files
    assert steps_logged(nodes) == steps_logged(tmp_path / "single") == ["4", "8", "12", "16"]


def test_killed_worker_on_one_node_restarts_both_from_the_checkpoint(uninterrupted, tmp_path):
    script = tmp_path / "kill_rank1.py"
    script.write_text(HOLD_RANK0_ONCE + KILL_RANK1_ONCE)
    out = tmp_path / "elastic"
    codes, logs = two_nodes([str(script)], MULTINODE_ARGS, out, max_restarts=1)
    assert codes == [0, 0], tails(logs)
    assert f"resuming from {out / 'checkpoints/last.pt'} (step 8)" in "".join(logs)
    a = load_checkpoint(out / "checkpoints/last.pt")
    b = load_checkpoint(uninterrupted[0] / "checkpoints/last.pt")
    assert a["step"] == b["step"] == 16
    assert_states_close(a["method"], b["method"], atol=1e-6)
    assert steps_logged(out) == steps_logged(uninterrupted[0])
