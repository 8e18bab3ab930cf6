"""The shipped recipes keep their numbers: 20 fp32 steps (seed 7) of each give the per-step losses recorded in
tests/data/reference_losses.json (|Δ| ≤ 1e-5). Re-record only for an intended change of the math:
``python tests/train/test_reference_losses.py --record``."""
import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "reference_losses.json"
RECIPES = {
    "byola_fsdd": "recipes/audio/byola_fsdd.yaml",
    "byol_cifar10_cpu": "recipes/image/byol_cifar10_cpu.yaml",
    "byol_gaussian": "recipes/tensors/byol_gaussian.yaml",
    "tribyol_cifar10_cpu": "recipes/variants/image/tribyol_cifar10_cpu.yaml",
    "ns2_cifar10_cpu": "recipes/variants/image/ns2_cifar10_cpu.yaml",
    "simsiam_cifar10_cpu": "recipes/variants/image/simsiam_cifar10_cpu.yaml",
    "ccsl_fsdd": "recipes/variants/audio/ccsl_fsdd.yaml",
}
OVERRIDES = ["precision=fp32", "seed=7", "trainer.log_every=1", "trainer.max_steps=20", "trainer.max_minutes=null",
             "trainer.tensorboard=false", "trainer.progress=false"]
NEEDS_SHARED = {"byol_cifar10_cpu", "tribyol_cifar10_cpu", "ns2_cifar10_cpu", "simsiam_cifar10_cpu"}


def run_losses(name: str, out: Path) -> dict:
    """Per-step loss and collapse of 20 steps of recipe ``name`` (run from the repository root)."""
    import os

    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.train.trainer import Trainer

    cwd = os.getcwd()
    os.chdir(ROOT)  # the recipes' data paths are relative to the repository root
    try:
        Trainer(load_recipe(RECIPES[name], OVERRIDES), out_dir=out, quiet=True).fit()
    finally:
        os.chdir(cwd)
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {"loss": [float(r["loss"]) for r in rows], "collapse": [float(r["collapse"]) for r in rows]}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_reproduces_reference_losses(name, tmp_path):
    if name in NEEDS_SHARED and not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("needs ../shared/data (CIFAR-10 subset)")
    expected = json.loads(REFERENCE.read_text())[name]
    got = run_losses(name, tmp_path / name)
    assert len(got["loss"]) == len(expected["loss"]) == 20
    for key in ("loss", "collapse"):
        worst = max(abs(a - b) for a, b in zip(got[key], expected[key]))
        assert worst <= 1e-5, f"{name}: {key} differs from the reference by {worst:.3g}"


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = {name: run_losses(name, Path(tmp) / name) for name in sorted(RECIPES)}
    REFERENCE.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
