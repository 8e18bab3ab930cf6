"""The shipped recipes keep their numbers: 20 fp32 steps (seed 7) of each give the per-step losses recorded in
tests/data/reference_losses.json.

fp32 rounding differs between CPUs (oneDNN/BLAS kernels): on another machine step 0 agrees to ~1e-7 and the
difference then grows about twofold per step (seen between two x86 CPUs: byol_cifar10_cpu 5e-7 at step 1, 4e-2
at step 16; byola_fsdd 3e-5 at step 1, 2e-4 at step 2). So the file holds one record per numerics fingerprint
(CPU model, torch's CPU capability, torch version): on a recorded machine all 20 steps must agree to 1e-5; on
any other machine the first EARLY_STEPS steps (initialization, augmentation, forward, loss and the first optimizer
and EMA updates) must agree to EARLY_TOLERANCE with the first record, and a warning asks for this machine's
record. Re-record only for an intended change of the math, on every machine you keep:
``python tests/training/test_reference_losses.py --record`` (adds or replaces this machine's record)."""

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
OVERRIDES = [
    "precision=fp32",
    "seed=7",
    "trainer.log_every=1",
    "trainer.max_steps=20",
    "trainer.max_minutes=null",
    "trainer.tensorboard=false",
    "trainer.progress=false",
]
EARLY_STEPS = 2
EARLY_TOLERANCE = 2e-4
NEEDS_SHARED = {"byol_cifar10_cpu", "tribyol_cifar10_cpu", "ns2_cifar10_cpu", "simsiam_cifar10_cpu"}


def fingerprint() -> str:
    """What fp32 results depend on besides the code: CPU model, torch's CPU capability, torch version."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} | {torch.backends.cpu.get_cpu_capability()} | torch {torch.__version__}"


def references() -> tuple[dict, bool]:
    """(the reference losses for this machine, whether they were recorded on it)."""
    records = json.loads(REFERENCE.read_text())["records"]
    own = records.get(fingerprint())
    return (own, True) if own is not None else (next(iter(records.values())), False)


def run_losses(name: str, out: Path) -> dict:
    """Per-step loss and collapse of 20 steps of recipe ``name`` (run from the repository root)."""
    import os

    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

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
    records, same_machine = references()
    expected = records[name]
    got = run_losses(name, tmp_path / name)
    assert len(got["loss"]) == len(expected["loss"]) == 20
    steps, tolerance = (20, 1e-5) if same_machine else (EARLY_STEPS, EARLY_TOLERANCE)
    if not same_machine:
        import warnings

        warnings.warn(
            f"no reference losses recorded on this machine ({fingerprint()}): only the first "
            f"{EARLY_STEPS} steps are compared; record them with {Path(__file__).name} --record"
        )
    for key in ("loss", "collapse"):
        worst = max(abs(a - b) for a, b in zip(got[key][:steps], expected[key][:steps]))
        assert worst <= tolerance, (
            f"{name}: {key} of the first {steps} steps differs from the reference by "
            f"{worst:.3g} ({'this machine' if same_machine else 'another machine'}'s "
            "record)"
        )


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = {name: run_losses(name, Path(tmp) / name) for name in sorted(RECIPES)}
    tree = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"records": {}}
    tree["records"][fingerprint()] = result
    REFERENCE.write_text(json.dumps(tree, indent=1) + "\n")
    print(f"wrote {REFERENCE} ({fingerprint()})")
