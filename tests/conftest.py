import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RECIPES = ROOT / "recipes"

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def shared_data():
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real data not found at {data} (../shared/data beside the checkout)")
    return data


@pytest.fixture
def tensor_recipe():
    return RECIPES / "tensors" / "byol_gaussian.yaml"


def pytest_sessionstart(session):
    """In CI the real data and the official fixtures must be there: a skipped reference check is no check."""
    if os.environ.get("CI") == "true" and not (SHARED / "data").is_dir():
        raise pytest.UsageError(f"CI=true but {SHARED / 'data'} is missing: the real-data and fixture tests need it")
