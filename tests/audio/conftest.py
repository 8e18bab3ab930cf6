"""Shared paths and helpers of the audio tests (real data and fixtures live in ../shared)."""

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "byola"
FSDD = SHARED / "data" / "fsdd"
DEMO = ROOT / "data" / "demo" / "fsdd_mini"
RECIPES = ROOT / "recipes" / "audio"


@pytest.fixture(scope="session")
def byola_ref():
    """The official BYOL-A reference outputs (reference.npz) and their parameters."""
    if not (FIXTURES / "reference.npz").is_file():
        pytest.skip(f"BYOL-A reference fixtures not found at {FIXTURES} (../shared/fixtures/byola beside the checkout)")
    ref = dict(np.load(FIXTURES / "reference.npz"))
    ref["params"] = json.loads((FIXTURES / "reference_params.json").read_text())
    return ref


@pytest.fixture(scope="session")
def fsdd():
    if not (FSDD / "metadata.csv").is_file():
        pytest.skip(f"FSDD not found at {FSDD} (../shared/data/fsdd beside the checkout)")
    return FSDD


@pytest.fixture
def write_wav():
    """write_wav(path, wave, sr, subtype="PCM_16") -> path: a small test file."""
    import soundfile as sf

    def write(path: Path, wave, sr: int, subtype: str = "PCM_16") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.asarray(wave, dtype=np.float32), sr, subtype=subtype)
        return path

    return write
