"""Image classification tasks: frozen features of a registered image dataset's splits.

The task's ``dataset`` section is written as in a training recipe (``{name: npz, path: ...}``,
``{name: cifar10, path: ...}``, ``{name: image_folder, path: ..., size: 224}``); the runner builds it
once per split (``train_split`` / ``test_split`` / optional ``valid_split``). Images go through the
model's front end (``to_float``, ``normalize``) and the encoder; the features feed the linear probe
and the weighted kNN.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ..data import BadItem
from ..devices import precision_autocast
from ..registry import DATASETS, RegistryError
from .cache import EmbeddingCache, digest, files_fingerprint
from .errors import task_error
from .models import EvalModel
from .schema import ImageTask

log = logging.getLogger("ssl_toolkit.eval")
EMBED_FORMAT = "image-embed/1"


@dataclass
class ImageSplit:
    name: str
    dataset: Any  # a map-style dataset: len() and [i]
    labels: np.ndarray


@dataclass
class ImageTaskData:
    task: ImageTask
    splits: dict[str, ImageSplit]
    classes: list[str]
    fingerprint: str
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _labels(ds) -> np.ndarray:
    labels = getattr(ds, "labels", None)
    if labels is None:
        labels = [ds[i][1] if not isinstance(ds[i], BadItem) else -1 for i in range(len(ds))]
    return np.asarray([int(v) for v in labels], dtype=np.int64)


def _path_fingerprint(params: dict) -> str:
    paths = []
    for v in params.values():
        if isinstance(v, str) and v and os.path.exists(os.path.expanduser(os.path.expandvars(v))):
            paths.append(os.path.abspath(os.path.expanduser(os.path.expandvars(v))))
    return files_fingerprint(paths)


def load_task(task: ImageTask) -> ImageTaskData:
    splits = {}
    params = dict(task.dataset.params)
    for role, split in (("train", task.train_split), ("test", task.test_split), ("valid", task.valid_split)):
        if role == "valid" and split is None:
            continue
        kwargs = dict(params)
        if split is not None:
            kwargs["split"] = split
        try:
            ds = DATASETS.build(task.dataset.name, **kwargs)
        except (RegistryError, OSError, ValueError, TypeError) as e:
            raise task_error(task.name, f"dataset {task.dataset.name} ({role} split {split!r}): {e}") from None
        if len(ds) == 0:
            raise task_error(task.name, f"the {role} split ({split!r}) of dataset {task.dataset.name} is empty")
        labels = _labels(ds)
        if (labels < 0).any():
            raise task_error(
                task.name,
                f"the {role} split ({split!r}) has {(labels < 0).sum()} unlabeled images; "
                "classification needs a label for every image",
            )
        splits[role] = ImageSplit(role, ds, labels)
    classes = list(getattr(splits["train"].dataset, "classes", []) or [])
    n = int(max(s.labels.max() for s in splits.values())) + 1
    if len(classes) < n:
        classes = [str(i) for i in range(n)]
    if n < 2:
        raise task_error(task.name, "the dataset has a single class; classification needs at least 2")
    fp = digest(
        {
            "dataset": dict(task.dataset),
            "splits": [task.train_split, task.test_split, task.valid_split],
            "files": _path_fingerprint(params),
            "sizes": {k: len(s.dataset) for k, s in splits.items()},
            "labels": {k: digest(s.labels.tolist()) for k, s in splits.items()},
        }
    )
    return ImageTaskData(task, splits, classes, fp)


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return i, self.ds[i]


def _collate(items):
    good = [(i, it) for i, it in items if not isinstance(it, BadItem)]
    bad = [it for _, it in items if isinstance(it, BadItem)]
    if not good:
        return None, None, bad
    idx = torch.tensor([i for i, _ in good])
    x = torch.stack([torch.as_tensor(it[0]) for _, it in good])
    return idx, x, bad


def embed_split(
    model: EvalModel,
    split: ImageSplit,
    device: torch.device,
    precision: str,
    batch_size: int,
    num_workers: int,
    desc: str,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), ok mask (N,)) of one split; unreadable images have ok=False."""
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(
        _Indexed(split.dataset), batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
    )
    n = len(split.dataset)
    out = np.zeros((n, model.feature_dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    for idx, x, bad in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        for item in bad:
            log.warning("%s: skipped %s: %s", desc, item.path, item.reason)
        if idx is None:
            continue
        out[idx.numpy()] = encode_batch(model.frontend, model.encoder, x.to(device), device, precision)
        ok[idx.numpy()] = True
    return out, ok


def encode_batch(
    frontend: list, encoder: torch.nn.Module, x: torch.Tensor, device: torch.device, precision: str
) -> np.ndarray:
    """(B, D) float32 features of a raw image batch on ``device``: the front-end ops in fp32, then the
    encoder (under bf16 autocast for ``precision: bf16``). Shared by ``eval``, ``embed`` and the API."""
    with torch.inference_mode():
        for op in frontend:
            x = op(x, None)
        with precision_autocast(device, precision):
            y = encoder(x)
    return y.float().cpu().numpy()


def embed_images(
    images: list,
    frontend: list,
    encoder: torch.nn.Module,
    device: torch.device,
    batch_size: int,
    precision: str,
    feature_dim: int,
    progress: bool = False,
) -> np.ndarray:
    """(N, feature_dim) float32 features of uint8 (3, H, W) images, in order: images of one size are batched
    together through :func:`encode_batch` (``ssl-toolkit embed`` and ``Encoder.embed``); ``progress``: a tqdm bar
    over the images."""
    from tqdm.auto import tqdm

    by_size: dict[tuple, list[int]] = {}
    for j, img in enumerate(images):
        by_size.setdefault(tuple(img.shape), []).append(j)
    out = np.zeros((len(images), feature_dim), dtype=np.float32)
    with tqdm(total=len(images), desc="embedding", unit="image", disable=not progress) as bar:
        for group in by_size.values():
            for s in range(0, len(group), batch_size):
                idx = group[s : s + batch_size]
                out[idx] = encode_batch(
                    frontend, encoder, torch.stack([images[j] for j in idx]).to(device), device, precision
                )
                bar.update(len(idx))
    return out


class ImageEmbedder:
    def __init__(
        self,
        data: ImageTaskData,
        cache: EmbeddingCache,
        device: torch.device,
        precision: str,
        batch_size: int,
        num_workers: int,
        progress: bool = True,
    ):
        self.data, self.cache, self.device, self.precision = data, cache, device, precision
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress

    def embeddings(self, model: EvalModel, role: str) -> tuple[np.ndarray, np.ndarray, bool]:
        split = self.data.splits[role]
        desc = {
            "format": EMBED_FORMAT,
            "model": model.identity,
            "frontend": model.frontend_spec,
            "data": self.data.fingerprint,
            "role": role,
            "precision": self.precision,
        }
        n = len(split.dataset)

        def compute():
            emb, ok = embed_split(
                model,
                split,
                self.device,
                self.precision,
                self.batch_size,
                self.num_workers,
                f"{self.data.task.name}: {model.name} ({role})",
                self.progress,
            )
            # rows of unreadable images are NaN in memory but stored as 0 with a mask
            return emb, {"bad_rows": np.flatnonzero(~ok).tolist()}

        emb, extra, hit = self.cache.get_or_compute(f"{self.data.task.name}-{model.name}-{role}", desc, n, compute)
        ok = np.ones(n, dtype=bool)
        ok[np.asarray(extra.get("bad_rows", []), dtype=np.int64)] = False
        return emb, ok, hit


def valid_rows(ok: np.ndarray) -> Optional[np.ndarray]:
    return np.flatnonzero(ok)
