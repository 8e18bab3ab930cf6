"""Modality-agnostic data plumbing: resumable epoch sampling and collation that skips bad items.

Dataset contract (every registered dataset follows it):
- ``dataset[i]`` returns ``(x, label)`` with ``x`` a tensor of a fixed shape (images stay uint8)
  and ``label`` an int (−1 when unknown), or a :class:`BadItem` when the file cannot be used
  (unreadable, empty, NaN...) and the dataset was asked to skip such files.
- Optional ``set_epoch(epoch)``: datasets with random per-item choices (e.g. audio segment crops)
  derive them from (seed, epoch, index) so that a resumed run draws exactly what it would have.
- Streaming datasets (``torch.utils.data.IterableDataset``, e.g. :mod:`ssl_toolkit.shards`) yield the same items
  and are their own sampler: ``configure(batch_size, rank, world_size)``, ``batches_per_epoch()``,
  ``set_position(epoch, batches_done)``, ``ordered_items()`` (a fixed order for statistics and monitors).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import Sampler, default_collate

from .registry import DATASETS

log = logging.getLogger("ssl_toolkit.data")


@dataclass(frozen=True)
class BadItem:
    """A dataset item that could not be used, with the file and the reason."""

    path: str
    reason: str


class BadFileError(RuntimeError):
    """Raised instead of returning a BadItem when a recipe asks for ``on_bad_file: fail``."""


class DatasetError(RuntimeError):
    """A recipe's dataset that cannot be built (missing folder, bad metadata...), with the recipe key."""


def build_dataset(spec, key: str = "data.dataset"):
    """The dataset a recipe's ``{name: ..., **params}`` section names; its construction errors become a
    :class:`DatasetError` naming ``key`` and the component."""
    try:
        return DATASETS.build(spec.name, **spec.params)
    except (OSError, ValueError, BadFileError) as e:  # missing folders/files, bad metadata, on_bad_file: fail
        raise DatasetError(f"{key} ({spec.name}): {e}") from e


def collate_skipping_bad(items):
    """Collate ``(x, label)`` pairs, dropping BadItems; returns ``(x, labels, bad_items)``."""
    good = [it for it in items if not isinstance(it, BadItem)]
    bad = [it for it in items if isinstance(it, BadItem)]
    if not good:
        return None, None, bad
    x, y = default_collate(good)
    return x, y, bad


class EpochSampler(Sampler[int]):
    """Shuffled indices for one epoch, sharded over DDP ranks, resumable mid-epoch.

    The order of epoch ``e`` is a permutation drawn from ``seed + e`` (the same on every rank);
    rank ``r`` of ``w`` takes positions ``r, r+w, ...``. ``set_position(epoch, batches_done)``
    makes the next iteration skip the batches a run had already consumed.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.shuffle, self.drop_last, self.rank, self.world_size = shuffle, drop_last, rank, world_size
        self.epoch, self.skip_batches = 0, 0

    @property
    def per_rank(self) -> int:
        if self.drop_last:
            return self.length // self.world_size
        return math.ceil(self.length / self.world_size)

    def batches_per_epoch(self) -> int:
        n = self.per_rank
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, batches_done

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        if total > len(order):  # pad by wrapping so that every rank gets the same count
            order += order[: total - len(order)]
        mine = order[self.rank : total : self.world_size]
        usable = self.batches_per_epoch() * self.batch_size if self.drop_last else len(mine)
        start = self.skip_batches * self.batch_size
        self.skip_batches = 0
        return iter(mine[start:usable])

    def __len__(self) -> int:
        usable = self.batches_per_epoch() * self.batch_size if self.drop_last else self.per_rank
        return max(0, usable - self.skip_batches * self.batch_size)


def preparation_batches(dataset, batch_size: int, num_workers: int, seed: int, device: torch.device):
    """A callable yielding raw training batches on ``device`` in a fixed random order (seed + 7919; a shard stream's
    stored order), for ops that compute statistics before training (e.g. BYOL-A's pre_norm). It never touches the
    global RNG, so preparing (or loading cached statistics) does not change a run's randomness."""
    from torch.utils.data import DataLoader

    def batches():
        if hasattr(dataset, "ordered_items"):  # a shard stream: its items in stored order
            items = []
            for item in dataset.ordered_items():
                items.append(item)
                if len(items) == batch_size:
                    x, _, _ = collate_skipping_bad(items)
                    items = []
                    if x is not None:
                        yield x.to(device, non_blocking=True)
            return
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + 7919))
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=order.tolist(),
            num_workers=num_workers,
            collate_fn=collate_skipping_bad,
            generator=torch.Generator().manual_seed(seed),
        )
        for x, _, _ in loader:
            if x is not None:
                yield x.to(device, non_blocking=True)

    return batches


@DATASETS.register("concat")
class ConcatDatasets(torch.utils.data.ConcatDataset):
    """Several datasets read as one: ``{name: concat, datasets: [{name: audio_folder, root: ...}, {...}]}``, items
    numbered in the order listed. Each part is built as a recipe's ``data.dataset`` would be; ``set_epoch`` and
    ``describe()`` (which keys cached statistics) reach every part. Items must have one shape: audio
    parts need the same ``sample_rate`` and ``unit_sec``. Statistics computed on it are stored in the run dir."""

    def __init__(self, datasets: list):
        from .recipe.schema import Component

        if not isinstance(datasets, (list, tuple)) or not datasets:
            raise ValueError(f"concat: datasets must be a non-empty list of dataset sections, got {datasets!r}")
        parts = []
        for i, spec in enumerate(datasets):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ValueError(f"concat: datasets.{i} must be a section with a name, got {spec!r}")
            if spec["name"] == "concat" or spec["name"] not in DATASETS:
                raise ValueError(
                    f"concat: datasets.{i}: {spec['name']!r} is not a dataset to combine "
                    f"(known: {', '.join(n for n in DATASETS.names() if n != 'concat')})"
                )
            parts.append(build_dataset(Component(spec), key=f"datasets.{i}"))
            if isinstance(parts[-1], torch.utils.data.IterableDataset):
                raise ValueError(
                    f"concat: datasets.{i} ({spec['name']}) is a stream; shards are combined by "
                    "listing them all in one webdataset section"
                )
        shapes = {i: getattr(p, "segment_samples", None) for i, p in enumerate(parts)}
        if len({s for s in shapes.values() if s is not None}) > 1:
            raise ValueError(
                f"concat: the parts cut audio to different lengths (samples per item by part: {shapes}); "
                "give every part the same sample_rate and unit_sec"
            )
        super().__init__(parts)
        if shapes[0] is not None:
            self.segment_samples = shapes[0]

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def describe(self) -> dict:
        return {"concat": [p.describe() if hasattr(p, "describe") else type(p).__name__ for p in self.datasets]}

    def __repr__(self) -> str:
        return f"ConcatDatasets({', '.join(repr(p) for p in self.datasets)})"


def visible_files(root: Path, extensions: Optional[Sequence[str]] = None) -> list[Path]:
    """The files under ``root``, recursively, in sorted path order, leaving out hidden files and whatever lies in a
    hidden folder below ``root`` (``.ipynb_checkpoints``, ``.git``); with ``extensions``, only files of those types
    (lower-case suffixes). The one listing of audio folders, ``embed`` / ``list_files`` inputs and ``shard``."""
    return sorted(
        p
        for p in root.rglob("*")
        if (extensions is None or p.suffix.lower() in extensions)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
