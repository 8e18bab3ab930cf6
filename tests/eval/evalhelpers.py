"""Helpers of the evaluation tests: small synthetic audio tasks and fast settings (fixtures: conftest.py)."""

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

# a tiny BYOL-A v1 model: fast enough to embed a few hundred clips in seconds on 2 CPU cores
TINY_MODEL = {
    "encoder": {"name": "audiontt2020", "n_mels": 64, "feature_d": 64},
    "frontend": [
        {"name": "log_mel", "frontend": "torchaudio_mel", "sample_rate": 16000, "n_mels": 64},
        {"name": "pre_norm"},
    ],
}
FAST_LINEAR = {"runs": 2, "epochs": 60, "patience": 10}


def write_tone_task(
    folder: Path,
    n_per_class: int = 8,
    classes=(300.0, 900.0, 2000.0),
    seconds: float = 0.5,
    sr: int = 16000,
    split: str = "split",
    seed: int = 0,
) -> Path:
    """Sine tones (one frequency per class, random phase/amplitude/noise) as wav files plus an EVAR
    metadata CSV with label, split (train/valid/test) and fold columns."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wav").mkdir(exist_ok=True)
    rows = []
    t = np.arange(int(seconds * sr)) / sr
    for c, freq in enumerate(classes):
        for i in range(n_per_class):
            wave = (0.3 + 0.2 * rng.random()) * np.sin(
                2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t + rng.random() * 6.28
            )
            wave = wave + 0.02 * rng.standard_normal(len(t))
            name = f"c{c}_{i}.wav"
            sf.write(folder / "wav" / name, wave.astype(np.float32), sr)
            role = "test" if i % 4 == 0 else ("valid" if i % 4 == 1 else "train")
            rows.append({"file_name": name, "label": f"class{c}", split: role, "fold": str(i % 3 + 1), "take": str(i)})
    with open(folder / "meta.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder / "meta.csv"


def audio_recipe(csv_path: Path, tmp_path: Path, **task):
    tree = {
        "name": "t",
        "model": TINY_MODEL,
        "linear": dict(FAST_LINEAR),
        "cache_dir": str(tmp_path / "cache"),
        "plots": {"enabled": False},
        "tasks": [
            {
                "name": "tones",
                "kind": "audio_classification",
                "metadata": str(csv_path),
                "audio_dir": "wav",
                "unit_sec": 0.5,
                **task,
            }
        ],
    }
    return tree
