"""WebDataset shards: ``ssl-toolkit shard`` writes them, ``webdataset_images`` / ``webdataset_audio`` stream them
with the folder datasets' items, split per rank and per worker, and resume an epoch exactly."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_toolkit.cli import main
from ssl_toolkit.data import BadFileError, BadItem, collate_skipping_bad
from ssl_toolkit.image.datasets import ImageFolder
from ssl_toolkit.shard_command import ShardError, write_shards
from ssl_toolkit.shards import WebDatasetAudio, WebDatasetImages

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "eel"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    return tmp_path / "img"


@pytest.fixture
def image_shards(image_folder, tmp_path):
    write_shards(image_folder, tmp_path / "shards", max_count=5, progress=False)
    return str(tmp_path / "shards" / "shard-{000000..000004}.tar")


def key_of(x: torch.Tensor) -> bytes:
    return x.numpy().tobytes()


def epoch(ds, workers=0, batch=4):
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate_skipping_bad)
    return [(x, y) for x, y, _ in loader]


def test_shard_writes_every_file_once_with_its_label_and_an_index(image_folder, tmp_path):
    index = write_shards(image_folder, tmp_path / "s", max_count=5, progress=False)
    assert index["count"] == 24 and [s["count"] for s in index["shards"]] == [5, 5, 5, 5, 4]
    assert index["classes"] == ["cat", "dog", "eel"] and index["modality"] == "image"
    assert json.loads((tmp_path / "s" / "shards.json").read_text()) == index
    seen = {}
    for tar in sorted((tmp_path / "s").glob("shard-*.tar")):
        with tarfile.open(tar) as t:
            members = {m.name: t.extractfile(m).read() for m in t.getmembers()}
        for name, data in members.items():
            if name.endswith(".path"):
                key = name[:-5]
                seen[data.decode()] = (members[key + ".png"], int(members[key + ".cls"]))
    assert len(seen) == 24
    for rel, (data, label) in seen.items():
        assert data == (image_folder / rel).read_bytes() and label == ["cat", "dog", "eel"].index(rel.split("/")[0])
    with pytest.raises(ShardError, match="already holds shards"):
        write_shards(image_folder, tmp_path / "s", progress=False)
    write_shards(image_folder, tmp_path / "s", max_count=100, overwrite=True, progress=False)
    assert len(list((tmp_path / "s").glob("shard-*.tar"))) == 1
    write_shards(image_folder, tmp_path / "t", max_count=100, progress=False)  # same input, same bytes
    assert (tmp_path / "s" / "shard-000000.tar").read_bytes() == (tmp_path / "t" / "shard-000000.tar").read_bytes()
    with tarfile.open(tmp_path / "t" / "shard-000000.tar") as t:
        assert not any(m.pax_headers for m in t.getmembers())  # no per-member PAX header to parse


def test_shard_from_a_csv_and_errors(tmp_path, capsys):
    csv_path = ROOT / "data" / "demo" / "fsdd_mini" / "metadata.csv"
    index = write_shards(csv_path, tmp_path / "a", max_count=128, root="recordings", progress=False)
    assert index["count"] == 300 and index["modality"] == "audio" and index["classes"] == [str(d) for d in range(10)]
    assert main(["shard", str(tmp_path / "nothing"), str(tmp_path / "b"), "--quiet"]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no audio .* or image .* files"):
        write_shards(tmp_path / "empty", tmp_path / "c", progress=False)


def test_stream_items_are_the_folder_dataset_items(image_folder, image_shards):
    folder = ImageFolder(str(image_folder))
    want = sorted((key_of(folder[i][0]), folder[i][1]) for i in range(len(folder)))
    ds = WebDatasetImages(image_shards, shuffle_buffer=0)
    ds.configure(1, 0, 1)
    got = sorted((key_of(x[0]), int(y[0])) for x, y in epoch(ds, batch=1))
    assert got == want


def test_ranks_and_workers_split_an_epoch_without_overlap(image_folder, tmp_path):
    """4 shards of 6, 2 ranks × 2 workers, batch 3: each worker's quota (2 batches) is exactly its one shard, so the
    epoch is every sample once."""
    write_shards(image_folder, tmp_path / "s", max_count=6, progress=False)
    urls = str(tmp_path / "s" / "shard-{000000..000003}.tar")
    per_rank = []
    for rank in (0, 1):
        ds = WebDatasetImages(urls, shuffle_buffer=4)
        ds.configure(3, rank, 2)
        batches = epoch(ds, workers=2, batch=3)
        assert len(batches) == ds.batches_per_epoch() == 4  # 24 // 2 ranks // 3
        per_rank.append({key_of(x[i]) for x, _ in batches for i in range(len(x))})
    assert len(per_rank[0]) == len(per_rank[1]) == 12 and not per_rank[0] & per_rank[1]


def test_uneven_shards_still_give_every_rank_the_same_batches_from_its_own_shards(image_shards):
    """5 shards (5, 5, 5, 5, 4 samples) over 2 ranks: equal batch counts (no DDP rank waits for another); a rank
    that runs out of samples reads its own shards again, never another rank's."""
    keys = []
    for rank in (0, 1):
        ds = WebDatasetImages(image_shards, shuffle_buffer=4)
        ds.configure(4, rank, 2)
        batches = epoch(ds, workers=2)
        assert len(batches) == 3
        keys.append({key_of(x[i]) for x, _ in batches for i in range(len(x))})
    assert not keys[0] & keys[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_is_deterministic_and_resumes_exactly(image_shards, workers):
    ds = WebDatasetImages(image_shards, shuffle_buffer=6, seed=3)
    ds.configure(4, 0, 1)
    full = epoch(ds, workers)
    again = epoch(ds, workers)
    assert len(full) == 6 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full, again))
    ds.set_position(0, 4)
    rest = epoch(ds, workers)
    assert len(rest) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(rest, full[4:]))
    ds.set_position(1, 0)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(epoch(ds, workers), full))  # another epoch, another order


def test_bad_samples_are_bad_items_or_fail(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "b.png").write_bytes(b"not a png")
    write_shards(tmp_path / "img", tmp_path / "s", progress=False)
    ds = WebDatasetImages(str(tmp_path / "s" / "shard-000000.tar"), shuffle_buffer=0)
    items = list(ds.ordered_items())
    assert isinstance(items[1], BadItem) and items[1].path.endswith(":00000001") and isinstance(items[0], tuple)
    strict = WebDatasetImages(str(tmp_path / "s" / "shard-000000.tar"), shuffle_buffer=0, on_bad_file="fail")
    with pytest.raises(BadFileError, match="00000001"):
        list(strict.ordered_items())


def test_missing_shards_and_unknown_epoch_size_are_clear_errors(image_shards, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"1 of the 6 shards do not exist, e.g. .*shard-000005.tar"):
        WebDatasetImages(image_shards.replace("000004", "000005"))
    (Path(image_shards).parent / "shards.json").unlink()
    with pytest.raises(ValueError, match="epoch_size: needed"):
        WebDatasetImages(image_shards)
    ds = WebDatasetImages(image_shards, epoch_size=24)
    with pytest.raises(ValueError, match="5 shards for 8 processes"):
        ds.configure(2, 0, 8)


def test_audio_stream_gives_unit_segments(tmp_path):
    write_shards(ROOT / "data" / "demo" / "fsdd_mini" / "recordings", tmp_path / "s", max_count=100, progress=False)
    ds = WebDatasetAudio(str(tmp_path / "s" / "shard-{000000..000002}.tar"), unit_sec=0.5, shuffle_buffer=0)
    ds.configure(8, 0, 1)
    x, y = epoch(ds, batch=8)[0]
    assert x.shape == (8, 8000) and x.dtype == torch.float32 and torch.all(y == -1)


def test_training_on_shards_resumes_bit_exactly(image_shards, tmp_path):
    """A run resumed from its step-3 checkpoint (mid-epoch) ends with the weights of the straight run."""
    import shutil

    from ssl_toolkit.checkpoint import TrainingState
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

    overrides = [
        f"data.dataset={{name: webdataset_images, urls: '{image_shards}', shuffle_buffer: 8}}",
        "data.batch_size=4",
        "data.num_workers=2",
        "model.encoder.width=0.125",
        "trainer.max_steps=5",
        "trainer.checkpoint_every=1",
        "trainer.log_every=1",
        "trainer.progress=false",
        "trainer.tensorboard=false",
        "trainer.hooks=[]",
        "precision=fp32",
        "model.projector.hidden_dim=32",
        "model.predictor.hidden_dim=32",
    ]
    recipe = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
    straight = Trainer(load_recipe(recipe, overrides), out_dir=tmp_path / "a", quiet=True).fit()
    shutil.copytree(straight, tmp_path / "b")
    for p in (tmp_path / "b" / "checkpoints").glob("*.pt"):
        if p.name != "step_3.pt":
            p.unlink()
    resumed = Trainer(load_recipe(recipe, overrides), out_dir=tmp_path / "b", resume="auto", quiet=True).fit()
    a = TrainingState.load(straight / "checkpoints" / "last.pt")
    b = TrainingState.load(resumed / "checkpoints" / "last.pt")
    assert (a.epoch, a.batches_done) == (b.epoch, b.batches_done) == (0, 5)
    assert all(torch.equal(a.method[k], b.method[k]) for k in a.method)
