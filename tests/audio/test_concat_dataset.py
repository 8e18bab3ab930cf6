"""The concat dataset on audio folders: items in order, per-epoch crops reach every part, its description keys
statistics, errors name the part, and a recipe trains on it."""

import numpy as np
import pytest
import torch

import ssl_toolkit.audio.dataset  # noqa: F401  (registers audio_folder)
from ssl_toolkit.data import ConcatDatasets, DatasetError
from ssl_toolkit.registry import DATASETS

SR = 16000


@pytest.fixture
def two_folders(tmp_path, write_wav):
    rng = np.random.default_rng(0)
    for folder, n, amp in (("a", 3, 0.1), ("b", 2, 0.5)):
        for k in range(n):
            write_wav(tmp_path / folder / f"{k}.wav", rng.normal(0, amp, int(1.5 * SR)), SR)
    return tmp_path / "a", tmp_path / "b"


def part(root, **kw):
    return {"name": "audio_folder", "root": str(root), "unit_sec": 0.5, **kw}


def test_items_are_the_parts_in_order_and_epochs_reach_every_part(two_folders):
    a, b = two_folders
    ds = DATASETS.build("concat", datasets=[part(a), part(b)])
    pa, pb = (DATASETS.build("audio_folder", **{k: v for k, v in part(r).items() if k != "name"}) for r in (a, b))
    assert len(ds) == 5 and ds.segment_samples == int(0.5 * SR)
    for epoch in (0, 3):
        for d in (ds, pa, pb):
            d.set_epoch(epoch)
        got = [ds[i][0] for i in range(5)]
        want = [pa[i][0] for i in range(3)] + [pb[i][0] for i in range(2)]
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    ds.set_epoch(0)
    first = ds[4][0].clone()
    ds.set_epoch(1)
    assert not torch.equal(first, ds[4][0])  # the second part's crops follow the epoch too
    desc = ds.describe()
    assert [d["num_files"] for d in desc["concat"]] == [3, 2]
    assert desc != DATASETS.build("concat", datasets=[part(a)]).describe()


def test_errors_name_the_part_and_what_was_expected(two_folders, tmp_path):
    a, b = two_folders
    with pytest.raises(ValueError, match="non-empty list"):
        ConcatDatasets([])
    with pytest.raises(ValueError, match=r"datasets.1 must be a section with a name"):
        ConcatDatasets([part(a), {"root": str(b)}])
    with pytest.raises(ValueError, match=r"datasets.0: 'audio_fold' is not a dataset to combine"):
        ConcatDatasets([{"name": "audio_fold", "root": str(a)}])
    with pytest.raises(DatasetError, match=r"datasets.1 \(audio_folder\): audio dataset root not found: .*nope"):
        ConcatDatasets([part(a), part(tmp_path / "nope")])
    with pytest.raises(ValueError, match="different lengths"):
        ConcatDatasets([part(a), part(b, unit_sec=0.25)])


def test_a_recipe_trains_on_two_folders(two_folders, tmp_path):
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

    a, b = two_folders
    parts = ", ".join(f"{{name: audio_folder, root: {r}, unit_sec: 0.95}}" for r in (a, b))
    recipe = load_recipe(
        "recipes/audio/byola_fsdd.yaml",
        [
            f"data.dataset={{name: concat, datasets: [{parts}]}}",
            "data.batch_size=4",
            "trainer.max_steps=2",
            "model.encoder.feature_d=32",
            "model.projector.hidden_dim=16",
            "model.predictor.hidden_dim=16",
            "views.input.1.n_stats=4",
            "trainer.hooks=[]",
            "trainer.progress=false",
            "trainer.tensorboard=false",
        ],
    )
    out = Trainer(recipe, out_dir=tmp_path / "run", quiet=True).fit()
    assert (out / "encoder.pt").exists()
    assert list(out.glob("prenorm_*.json"))  # statistics of the combined data, kept in the run dir
