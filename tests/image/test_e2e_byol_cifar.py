"""End to end: `python -m ssl_toolkit train recipes/image/byol_cifar10_cpu.yaml` for a few steps on a
slice of the real CIFAR-10 subset."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_toolkit.image.encoders import resnet18

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"
RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"


def test_byol_cifar10_cpu_recipe_trains_a_few_steps(tmp_path):
    if not DATA.exists():
        pytest.skip(f"shared CIFAR-10 subset not found at {DATA} (../shared/data beside the checkout)")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [
        sys.executable,
        "-m",
        "ssl_toolkit",
        "train",
        str(RECIPE),
        "--out",
        str(out),
        "--quiet",
        "trainer.max_steps=4",
        "trainer.log_every=2",
        "trainer.checkpoint_every=1000",
        "trainer.progress=false",
        "trainer.tensorboard=false",
        "data.dataset.limit=256",
        "data.batch_size=32",
    ]
    # run from the repository root: the recipe's data path (../shared/...) is relative to it
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    state = torch.load(out / "encoder.pt", weights_only=True)["state_dict"]
    enc = resnet18(cifar_stem=True, width=0.25)
    enc.load_state_dict(state)
    feats = enc.eval()(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 128) and torch.isfinite(feats).all()
