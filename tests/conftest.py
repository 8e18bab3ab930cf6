import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RECIPES = ROOT / "recipes"

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def deny_reading(monkeypatch):
    """``deny_reading(path)``: opening ``path`` raises what a chmod 000 file gives a non-root user (tests may run as
    root, which reads any file)."""
    import builtins

    denied, real_open = set(), builtins.open

    def denying_open(file, *args, **kwargs):
        if str(file) in denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denying_open)
    return lambda path: denied.add(str(path))


@pytest.fixture
def shared_data():
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real data not found at {data} (../shared/data beside the checkout)")
    return data


@pytest.fixture
def tensor_recipe():
    return RECIPES / "tensors" / "byol_gaussian.yaml"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA device: skipped, saying so, where torch sees none (CI, this machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="needs a CUDA device (none here): run `pytest -m cuda` on a GPU machine, see benchmarks/gpu/README.md"
    )
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session):
    """In CI the real data and the official fixtures must be there: a skipped reference check is no check."""
    if os.environ.get("CI") == "true" and not (SHARED / "data").is_dir():
        raise pytest.UsageError(f"CI=true but {SHARED / 'data'} is missing: the real-data and fixture tests need it")


@pytest.fixture
def single_and_ddp(tensor_recipe, tmp_path):
    """Train the tensor recipe once in 1 process (batch 2b) and once with torchrun in 2 gloo processes
    (batch b each); returns the two final method state dicts."""
    from ssl_toolkit.checkpoint import load_checkpoint

    def run(overrides, batch_per_process=8):
        common = [str(tensor_recipe), "trainer.tensorboard=false", "trainer.progress=false", *overrides, "--quiet"]
        single = subprocess.run(
            [
                sys.executable,
                "-m",
                "ssl_toolkit",
                "train",
                *common,
                f"data.batch_size={2 * batch_per_process}",
                "--out",
                str(tmp_path / "single"),
            ],
            capture_output=True,
            text=True,
        )
        assert single.returncode == 0, single.stderr
        ddp = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                "2",
                "-m",
                "ssl_toolkit",
                "train",
                *common,
                f"data.batch_size={batch_per_process}",
                "--out",
                str(tmp_path / "ddp"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ddp.returncode == 0, ddp.stderr
        return (
            load_checkpoint(tmp_path / "single/checkpoints/last.pt")["method"],
            load_checkpoint(tmp_path / "ddp/checkpoints/last.pt")["method"],
        )

    return run
