"""End to end: `python -m ssl_toolkit train recipes/audio/byola_fsdd.yaml` on a slice of real FSDD."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
RECIPE = ROOT / "recipes" / "audio" / "byola_fsdd.yaml"


@pytest.fixture(scope="module")
def fsdd_slice(tmp_path_factory):
    """16 real FSDD clips (2 speakers × 8 digits) listed in a CSV; the audio stays in ../shared."""
    if not (FSDD / "metadata.csv").is_file():
        pytest.skip(f"FSDD not found at {FSDD} (../shared/data/fsdd beside the checkout)")
    folder = tmp_path_factory.mktemp("fsdd_slice")
    with (FSDD / "metadata.csv").open(newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["speaker"] in ("george", "jackson") and r["take"] == "7" and int(r["label"]) < 8
        ]
    assert len(rows) == 16
    with (folder / "slice.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def train(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "ssl_toolkit",
        "train",
        str(RECIPE),
        "--out",
        str(out),
        f"data.dataset.root={data}",
        "data.dataset.metadata=slice.csv",
        f"data.dataset.audio_dir={FSDD / 'recordings'}",
        "data.batch_size=8",
        "trainer.log_every=1",
        "trainer.checkpoint_every=2",
        "trainer.progress=false",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"training failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_byola_fsdd_trains_and_resumes_exactly(fsdd_slice, tmp_path):
    full = tmp_path / "full"
    train(full, fsdd_slice, "trainer.max_steps=4")
    rows = metrics(full)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1, 1]  # 16 clips / batch 8: two epochs
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert all(int(r["skipped_files"]) == 0 for r in rows)

    from ssl_toolkit.audio.encoders import AudioNTT2020

    state = torch.load(full / "encoder.pt", weights_only=True)["state_dict"]
    enc = AudioNTT2020(feature_d=512)
    enc.load_state_dict(state)  # strict: exactly the encoder's keys
    with torch.no_grad():
        z = enc.eval()(torch.randn(2, 1, 64, 96))
    assert z.shape == (2, 512) and torch.isfinite(z).all()
    # pre_norm statistics were computed once and stored beside the slice's CSV (writable) or the run
    stored = list(fsdd_slice.glob(".ssl_toolkit/prenorm_*.json")) + list(full.glob("prenorm_*.json"))
    assert stored

    # resume from the step-2 checkpoint into another run dir: steps 3-4 repeat the uninterrupted run's
    # losses (the mixup banks, pre-norm statistics and per-epoch segment draws all come back)
    checkpoint = full / "checkpoints" / "step_00000002.pt"
    assert checkpoint.is_file()
    part = tmp_path / "part"
    train(part, fsdd_slice, "trainer.max_steps=4", "--resume", str(checkpoint))
    resumed = metrics(part)
    assert [int(r["step"]) for r in resumed] == [3, 4]
    for a, b in zip(rows[2:], resumed):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5, abs=1e-6), (a, b)
