"""Image datasets: folders of image files, CIFAR-10/100 (official pickle layout) and ``.npz`` arrays.

Every dataset returns ``(image uint8 (C, H, W), label int)`` (label −1 when unknown) and exposes
``labels`` (list of ints), ``classes`` (names, possibly empty) and ``paths`` where items come from files.
Array datasets hold the whole split in memory as one uint8 tensor (N, C, H, W); folders decode lazily
(or eagerly with ``in_memory: true``). Images stay uint8 until the device (``to_float`` view op).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import BadFileError, BadItem
from ..params import DirPath, FilePath, PositiveInt
from ..recipe import expand_path
from ..registry import DATASETS
from .decode import IMAGE_EXTENSIONS, MAX_PIXELS, decode_image

log = logging.getLogger("ssl_toolkit.image")

SPLITS = ("train", "test")


def _check_choice(value, choices, what: str):
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_limit(limit):
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer or null, got {limit!r}")
    return limit


def to_chw_uint8(x: np.ndarray, where: str) -> torch.Tensor:
    """(N, H, W, C) / (N, C, H, W) / (N, H, W) uint8 array → contiguous uint8 tensor (N, C, H, W)."""
    if x.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 pixels, got {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise ValueError(f"{where}: expected images of shape (N, H, W, C), (N, C, H, W) or (N, H, W), got {x.shape}")
    elif x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x))


class ArrayImageDataset(Dataset):
    """Images held in memory as one uint8 tensor (N, C, H, W) with integer labels."""

    def __init__(self, images: torch.Tensor, labels, classes=(), source: str = ""):
        if len(images) == 0:
            raise ValueError(f"{source}: the dataset is empty")
        self.images = images
        self.labels = [int(v) for v in labels] if labels is not None else [-1] * len(images)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{source}: {len(self.images)} images but {len(self.labels)} labels")
        self.classes = list(classes)
        self.source = source

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, n={len(self)}, shape={self.image_shape})"


# ----------------------------------------------------------------------------- .npz
@DATASETS.register("npz")
class NpzImages(ArrayImageDataset):
    """Images from a .npz of uint8 arrays x_train/y_train/x_test/y_test (HWC or CHW), held in memory."""

    def __init__(
        self,
        path: FilePath,
        split: str = "train",
        limit: Optional[PositiveInt] = None,
        x_key: Optional[str] = None,
        y_key: Optional[str] = None,
    ):
        p = expand_path(path)
        _check_choice(split, SPLITS, "npz: split")
        _check_limit(limit)
        if not p.is_file():
            raise FileNotFoundError(f"npz dataset: file not found: {p}")
        x_key, y_key = x_key or f"x_{split}", y_key or f"y_{split}"
        try:
            z = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - not a zip / corrupt / pickled content
            raise ValueError(f"npz dataset: cannot read {p}: {type(e).__name__}: {e}") from e
        with z:
            keys = list(z.files)
            if x_key not in keys:
                raise ValueError(f"npz dataset {p}: no array '{x_key}' (it has: {', '.join(keys)})")
            try:
                x = z[x_key][:limit]
                y = z[y_key][:limit] if y_key in keys else None
                classes = [str(c) for c in z["class_names"]] if "class_names" in keys else []
            except Exception as e:  # noqa: BLE001 - truncated / corrupt member
                raise ValueError(f"npz dataset: cannot read {p}: {type(e).__name__}: {e}") from e
        super().__init__(
            to_chw_uint8(x, f"npz dataset {p} '{x_key}'"),
            None if y is None else np.asarray(y).reshape(-1),
            classes,
            str(p),
        )


# ----------------------------------------------------------------------------- CIFAR pickles
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (the CIFAR batch files), nothing executable."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only arrays are allowed in a CIFAR batch)")


def _load_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR dataset: file not found: {path}") from None
    except Exception as e:  # corrupt pickles raise many exception types
        raise ValueError(f"CIFAR dataset: cannot read {path}: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"CIFAR dataset: {path} does not hold a dict (got {type(data).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}


def _cifar_root(path: str, folder: str, marker: str) -> Path:
    p = expand_path(path)
    if not p.exists():
        raise FileNotFoundError(f"CIFAR dataset: path not found: {p}")
    if (p / folder).is_dir():
        p = p / folder
    if not (p / marker).exists():
        raise FileNotFoundError(f"CIFAR dataset: {p} is not a '{folder}' folder (no '{marker}' in it)")
    return p


class _CifarBase(ArrayImageDataset):
    def _from_batches(self, root: Path, files: list[str], label_key: str, classes, limit):
        xs, ys, have = [], [], 0
        for name in files:
            d = _load_batch(root / name)
            try:
                x = np.asarray(d["data"], dtype=np.uint8)
                y = np.asarray(d[label_key]).reshape(-1)
            except KeyError as e:
                raise ValueError(f"CIFAR dataset: {root / name} has no '{e.args[0]}' entry") from None
            if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
                raise ValueError(
                    f"CIFAR dataset: {root / name}: expected data (N, 3072) and N labels, got {x.shape} and {len(y)}"
                )
            xs.append(x.reshape(-1, 3, 32, 32))
            ys.append(y)
            have += len(x)
            if limit is not None and have >= limit:
                break
        x = np.concatenate(xs)[:limit]
        y = np.concatenate(ys)[:limit]
        super().__init__(torch.from_numpy(np.ascontiguousarray(x)), y, classes, str(root))


def _meta_names(root: Path, meta_file: str, key: str) -> list[str]:
    if not (root / meta_file).exists():
        return []
    names = _load_batch(root / meta_file).get(key, [])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


@DATASETS.register("cifar10")
class Cifar10(_CifarBase):
    """CIFAR-10 from the official python pickles (folder cifar-10-batches-py or its parent), in memory."""

    def __init__(self, path: DirPath, split: Literal["train", "test"] = "train", limit: Optional[PositiveInt] = None):
        _check_choice(split, SPLITS, "cifar10: split")
        _check_limit(limit)
        root = _cifar_root(path, "cifar-10-batches-py", "data_batch_1" if split == "train" else "test_batch")
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        self._from_batches(root, files, "labels", _meta_names(root, "batches.meta", "label_names"), limit)


@DATASETS.register("cifar100")
class Cifar100(_CifarBase):
    """CIFAR-100 from the official python pickles (folder cifar-100-python or its parent), in memory."""

    def __init__(
        self,
        path: DirPath,
        split: Literal["train", "test"] = "train",
        limit: Optional[PositiveInt] = None,
        labels: Literal["fine", "coarse"] = "fine",
    ):
        _check_choice(split, SPLITS, "cifar100: split")
        _check_choice(labels, ("fine", "coarse"), "cifar100: labels")
        _check_limit(limit)
        root = _cifar_root(path, "cifar-100-python", split)
        self._from_batches(root, [split], f"{labels}_labels", _meta_names(root, "meta", f"{labels}_label_names"), limit)


# ----------------------------------------------------------------------------- image folders
def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _walk_images(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if _is_image(Path(f)))
    return out


@DATASETS.register("image_folder")
class ImageFolder(Dataset):
    """Images from a folder: one subfolder per class (labels by sorted name), or a flat unlabeled folder.

    Unreadable files, and files above ``max_pixels`` (read from the header before decoding), are bad files
    (``on_bad_file``); 16-bit images are scaled to 8 bits.
    """

    def __init__(
        self,
        path: DirPath,
        split: Optional[str] = None,
        size: Optional[PositiveInt] = None,
        limit: Optional[PositiveInt] = None,
        on_bad_file: Literal["skip", "fail"] = "skip",
        in_memory: bool = False,
        max_pixels: PositiveInt = MAX_PIXELS,
    ):
        _check_choice(on_bad_file, ("skip", "fail"), "image_folder: on_bad_file")
        _check_limit(limit)
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"image_folder: size must be a positive integer or null, got {size!r}")
        root = expand_path(path)
        if split is not None:
            root = root / split
        if not root.is_dir():
            raise FileNotFoundError(f"image_folder: folder not found: {root}")
        self.root, self.size, self.on_bad_file, self.max_pixels = root, size, on_bad_file, int(max_pixels)
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        labelled = [(d.name, _walk_images(d)) for d in class_dirs]
        labelled = [(n, files) for n, files in labelled if files]
        if labelled:
            self.classes = [n for n, _ in labelled]
            items = [(f, c) for c, (_, files) in enumerate(labelled) for f in files]
            stray = [p for p in root.iterdir() if p.is_file() and _is_image(p)]
            if stray:
                log.warning(
                    "image_folder %s: %d image(s) directly in the folder are ignored (it has class subfolders)",
                    root,
                    len(stray),
                )
        else:
            self.classes = []
            items = [(p, -1) for p in sorted(root.iterdir()) if p.is_file() and _is_image(p)]
        if not items:
            raise ValueError(f"image_folder: no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
        items = items[:limit]
        self.paths = [str(p) for p, _ in items]
        self.labels = [c for _, c in items]
        self.shape: Optional[tuple[int, ...]] = (3, size, size) if size is not None else None
        self.images: Optional[torch.Tensor] = None
        if in_memory:
            self._load_all()
        elif self.shape is None:
            self._find_reference_shape()

    # -- scanning
    def _find_reference_shape(self) -> None:
        for p in self.paths:
            try:
                self.shape = tuple(decode_image(Path(p), None, self.max_pixels).shape)
                return
            except Exception as e:  # noqa: BLE001 - reported below
                self._bad(p, e, scan=True)
        raise ValueError(f"image_folder: no readable image in {self.root}")

    def _load_all(self) -> None:
        images, paths, labels = [], [], []
        for p, c in zip(self.paths, self.labels):
            item = self._read(p)
            if isinstance(item, BadItem):
                log.warning("image_folder: dropped %s: %s", item.path, item.reason)
                continue
            images.append(item)
            paths.append(p)
            labels.append(c)
        if not images:
            raise ValueError(f"image_folder: no readable image in {self.root}")
        self.images = torch.stack(images)
        self.paths, self.labels = paths, labels

    def _bad(self, path: str, err: Exception | str, scan: bool = False) -> BadItem:
        reason = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        reason = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
        if self.on_bad_file == "fail":
            raise BadFileError(f"image_folder: cannot use {path}: {reason}")
        if scan:
            log.warning("image_folder: skipping %s: %s", path, reason)
        return BadItem(path, reason)

    def _read(self, path: str):
        try:
            img = decode_image(Path(path), self.size, self.max_pixels)
        except Exception as e:  # noqa: BLE001 - any decoder failure makes the file bad
            return self._bad(path, e)
        if self.shape is None:
            self.shape = tuple(img.shape)
        elif tuple(img.shape) != self.shape:
            return self._bad(
                path,
                f"image is {img.shape[-2]}x{img.shape[-1]}, the dataset's images are "
                f"{self.shape[-2]}x{self.shape[-1]} (set the dataset's 'size' to resize)",
            )
        return img

    # -- Dataset
    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if self.images is not None:
            return self.images[i], self.labels[i]
        img = self._read(self.paths[i])
        if isinstance(img, BadItem):
            return img
        return img, self.labels[i]

    @property
    def image_shape(self):
        return self.shape

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, n={len(self)}, classes={len(self.classes)})"
