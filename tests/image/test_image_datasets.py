"""Image datasets: folders (class / flat), CIFAR-10/100 pickles, .npz; bad files and clear errors."""

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import ssl_toolkit.components  # noqa: F401 - registers the datasets
from ssl_toolkit.data import BadFileError, BadItem, collate_skipping_bad
from ssl_toolkit.registry import DATASETS

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CIFAR_NPZ = SHARED / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"


def build(name, **params):
    return DATASETS.build(name, **params)


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"lossless": True} if (fmt or path.suffix.lstrip(".")).lower() == "webp" else {}
    Image.fromarray(arr).save(path, **kwargs)


# ----------------------------------------------------------------------------- .npz
def write_npz(path, n_train=10, n_test=4, hwc=True):
    xs = {
        s: np.stack([rgb(8, 6, seed=i + 100 * (s == "test")) for i in range(n)])
        for s, n in (("train", n_train), ("test", n_test))
    }
    if not hwc:
        xs = {s: x.transpose(0, 3, 1, 2) for s, x in xs.items()}
    np.savez_compressed(
        path,
        x_train=xs["train"],
        y_train=np.arange(n_train) % 3,
        x_test=xs["test"],
        y_test=np.arange(n_test) % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    return xs


@pytest.mark.parametrize("hwc", [True, False])
def test_npz_splits_limit_and_layout(tmp_path, hwc):
    xs = write_npz(tmp_path / "d.npz", hwc=hwc)
    train = build("npz", path=str(tmp_path / "d.npz"))
    assert len(train) == 10 and train.classes == ["a", "b", "c"]
    x, y = train[4]
    assert x.dtype == torch.uint8 and x.shape == (3, 8, 6) and y == 1
    expect = xs["train"][4] if not hwc else xs["train"][4].transpose(2, 0, 1)
    assert np.array_equal(x.numpy(), expect)
    test = build("npz", path=str(tmp_path / "d.npz"), split="test", limit=3)
    assert len(test) == 3 and test.labels == [0, 1, 2]


def test_npz_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        build("npz", path=str(tmp_path / "nope.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="bad.npz"):
        build("npz", path=str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="x_train.*images"):
        build("npz", path=str(tmp_path / "other.npz"))
    with pytest.raises(ValueError, match="split"):
        build("npz", path=str(tmp_path / "other.npz"), split="val")


def test_npz_path_expands_home_and_vars(tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz")
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    assert len(build("npz", path="$MY_DATA/d.npz")) == 10


# ----------------------------------------------------------------------------- CIFAR pickles
def write_cifar10(root, per_batch=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        batches[name] = (data, labels)
        with open(d / name, "wb") as f:  # the official files: bytes keys, labels as a list
            pickle.dump(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * per_batch},
                f,
                protocol=2,
            )
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, f, protocol=2)
    return d, batches


def test_cifar10_train_and_test(tmp_path):
    d, batches = write_cifar10(tmp_path)
    train = build("cifar10", path=str(tmp_path))  # the parent folder works
    assert len(train) == 20 and train.classes[:2] == ["c0", "c1"]
    x, y = train[5]  # second batch, second row
    data, labels = batches["data_batch_2"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert np.array_equal(x.numpy(), data[1].reshape(3, 32, 32)) and y == labels[1]
    assert x[0, 0, 1] == data[1][1] and x[1, 0, 0] == data[1][1024]  # channel-major rows
    test = build("cifar10", path=str(d), split="test")  # the folder itself works too
    assert len(test) == 4 and test.labels == batches["test_batch"][1]
    assert len(build("cifar10", path=str(d), limit=6)) == 6


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        build("cifar10", path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        build("cifar10", path=str(tmp_path / "empty"))
    d, _ = write_cifar10(tmp_path / "c")
    (d / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="data_batch_3"):
        build("cifar10", path=str(d))


def test_cifar_loader_refuses_code_in_pickles(tmp_path):
    d, _ = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing"):
        build("cifar10", path=str(d), split="test")


def test_cifar100_fine_and_coarse(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 3)):
        with open(d / split, "wb") as f:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"fine_labels": list(range(n)),
                    b"coarse_labels": [7] * n,
                },
                f,
                protocol=2,
            )
    with open(d / "meta", "wb") as f:
        pickle.dump(
            {
                b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"k{i}".encode() for i in range(20)],
            },
            f,
            protocol=2,
        )
    fine = build("cifar100", path=str(tmp_path))
    assert len(fine) == 6 and fine[4][1] == 4 and fine.classes[4] == "f4"
    coarse = build("cifar100", path=str(tmp_path), split="test", labels="coarse")
    assert len(coarse) == 3 and coarse.labels == [7, 7, 7] and len(coarse.classes) == 20


# ----------------------------------------------------------------------------- image folders
def make_class_folder(root):
    save(root / "cat" / "a.png", rgb(12, 10, 1))
    save(root / "cat" / "b.jpg", rgb(12, 10, 2))
    save(root / "dog" / "c.webp", rgb(12, 10, 3))
    save(root / "dog" / "sub" / "d.PNG", rgb(12, 10, 4))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_class_subfolders_in_all_formats(tmp_path):
    root = make_class_folder(tmp_path / "imgs")
    ds = build("image_folder", path=str(root))
    assert ds.classes == ["cat", "dog"] and ds.labels == [0, 0, 1, 1]
    assert [Path(p).name for p in ds.paths] == ["a.png", "b.jpg", "c.webp", "d.PNG"]
    x, y = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 10) and y == 0
    assert torch.equal(x, torch.from_numpy(rgb(12, 10, 1)).permute(2, 0, 1))  # png: lossless
    assert torch.equal(ds[2][0], torch.from_numpy(rgb(12, 10, 3)).permute(2, 0, 1))  # webp: lossless
    assert (ds[1][0].float() - torch.from_numpy(rgb(12, 10, 2)).permute(2, 0, 1).float()).abs().mean() < 60
    assert len(build("image_folder", path=str(root), limit=3)) == 3


def test_flat_folder_is_unlabeled_and_grayscale_becomes_rgb(tmp_path):
    save(tmp_path / "x1.png", rgb(9, 9))
    Image.fromarray(rgb(9, 9)[..., 0]).save(tmp_path / "x2.png")  # 1-channel file
    ds = build("image_folder", path=str(tmp_path))
    assert ds.classes == [] and ds.labels == [-1, -1]
    x, y = ds[1]
    assert x.shape == (3, 9, 9) and y == -1 and torch.equal(x[0], x[2])


def test_split_subfolder_and_resize_center_crop(tmp_path):
    save(tmp_path / "train" / "a" / "wide.png", rgb(20, 40))
    save(tmp_path / "train" / "b" / "tall.jpg", rgb(50, 16))
    ds = build("image_folder", path=str(tmp_path), split="train", size=16)
    assert [ds[i][0].shape for i in range(2)] == [(3, 16, 16)] * 2
    from torchvision.transforms.v2 import functional as TF

    wide = torch.from_numpy(rgb(20, 40)).permute(2, 0, 1)
    assert torch.equal(ds[0][0], TF.center_crop(TF.resize(wide, [16], antialias=True), [16, 16]))


def test_bad_files_skip_or_fail(tmp_path, caplog):
    root = make_class_folder(tmp_path / "imgs")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "cat" / "empty.png").write_bytes(b"")
    ds = build("image_folder", path=str(root))
    bad = [ds[i] for i in range(len(ds)) if isinstance(ds[i], BadItem)]
    assert sorted(Path(b.path).name for b in bad) == ["broken.jpg", "empty.png"]
    assert all(b.reason for b in bad)
    # the loader drops them and reports them
    x, y, dropped = next(iter(DataLoader(ds, batch_size=len(ds), collate_fn=collate_skipping_bad)))
    assert x.shape == (4, 3, 12, 10) and len(dropped) == 2
    strict = build("image_folder", path=str(root), on_bad_file="fail")
    idx = [Path(p).name for p in strict.paths].index("broken.jpg")
    with pytest.raises(BadFileError, match="broken.jpg"):
        strict[idx]
    # in memory: dropped at scan time, with a log line naming the file
    with caplog.at_level(logging.WARNING, logger="ssl_toolkit.image"):
        mem = build("image_folder", path=str(root), in_memory=True)
    assert len(mem) == 4 and "broken.jpg" in caplog.text
    assert mem[0][0].shape == (3, 12, 10)
    with pytest.raises(BadFileError, match="broken.jpg|empty.png"):
        build("image_folder", path=str(root), in_memory=True, on_bad_file="fail")


def test_mismatched_sizes_without_size_are_bad_items(tmp_path):
    save(tmp_path / "a.png", rgb(8, 8))
    save(tmp_path / "b.png", rgb(9, 8))
    ds = build("image_folder", path=str(tmp_path))
    item = ds[1]
    assert isinstance(item, BadItem) and "size" in item.reason and item.path.endswith("b.png")


def test_missing_and_empty_folders_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build("image_folder", path=str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images.*empty"):
        build("image_folder", path=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="train"):
        build("image_folder", path=str(tmp_path / "empty"), split="train")


# ----------------------------------------------------------------------------- the real subset
def test_real_cifar_subset():
    if not CIFAR_NPZ.exists():
        pytest.skip(f"shared CIFAR-10 subset not found at {CIFAR_NPZ}")
    train = build("npz", path=str(CIFAR_NPZ), limit=2000)
    test = build("npz", path=str(CIFAR_NPZ), split="test")
    assert len(train) == 2000 and len(test) == 5000
    assert train.classes[0] == "airplane" and len(set(train.labels)) == 10
    x, _ = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    mean = train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.02)


def png_header_only(width, height):
    """A PNG whose header claims width × height (what a decompression bomb looks like before decoding)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def test_images_above_the_pixel_limit_are_bad_files_refused_before_decoding(tmp_path):
    import time

    save(tmp_path / "ok.png", rgb(12, 10))
    (tmp_path / "huge.png").write_bytes(png_header_only(30000, 30000))  # 0.9 GP: beyond Pillow's own limit too
    (tmp_path / "large.png").write_bytes(png_header_only(8000, 8000))
    ds = build("image_folder", path=str(tmp_path))
    start = time.perf_counter()
    names = [Path(p).name for p in ds.paths]
    huge, large = ds[names.index("huge.png")], ds[names.index("large.png")]
    assert isinstance(huge, BadItem) and "image too large to decode" in huge.reason and "900000000" in huge.reason
    assert (
        isinstance(large, BadItem)
        and "8000 x 8000 = 64,000,000 pixels, above the dataset's max_pixels 50,000,000" in large.reason
    )
    assert time.perf_counter() - start < 1.0  # header only: decoding would take GBs and seconds
    small_limit = build("image_folder", path=str(tmp_path), max_pixels=100, size=8)
    assert all(isinstance(small_limit[i], BadItem) for i in range(3))
    with pytest.raises(BadFileError, match=r"cannot use .*/(huge|large).png: ValueError: image"):
        build("image_folder", path=str(tmp_path), on_bad_file="fail")


def test_16_bit_images_are_scaled_to_8_bits(tmp_path):
    grey16 = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    save(tmp_path / "plain.png", rgb(12, 10))
    ds = build("image_folder", path=str(tmp_path))
    x, _ = ds[[Path(p).name for p in ds.paths].index("deep.png")]
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 10)
    assert torch.equal(x[0], torch.from_numpy((grey16 >> 8).astype(np.uint8)))
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_skipping_bad)))
    assert batch[0].dtype == torch.uint8 and batch[0].shape == (2, 3, 12, 10) and not batch[2]
