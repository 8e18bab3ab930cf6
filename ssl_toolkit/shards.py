"""Datasets that stream WebDataset tar shards (the ``webdataset`` package reads the tars: local paths, ``http://``,
``pipe:`` URLs): ``webdataset_images`` and ``webdataset_audio``, with the folder datasets' item contract.

A shard holds samples ``KEY.EXT`` (the encoded file: jpg/png/webp, wav/flac/...), ``KEY.cls`` (the label id, when
known) and ``KEY.path`` (the original file name); ``ssl-toolkit shard`` writes them, with ``shards.json`` (the
sample count of every shard and the class names) beside them.

The stream of epoch ``e`` is deterministic, which is what makes resume exact:

1. the shard list is permuted with seed + e (the same on every rank); rank r of w takes shards r, r+w, ...;
2. DataLoader worker k of K takes the rank's shards k, k+K, ... (every K-th sample of all of them when the rank has
   fewer shards than workers) and reads them in turn, again and again until its quota is met;
3. a shuffle buffer of ``shuffle_buffer`` samples, seeded by (seed, e, r, k), reorders each pass (flushed at its
   end, so a sample repeats only when the worker's quota exceeds its shards);
4. an epoch is ``epoch_size`` samples in all (default: every sample of every shard, from shards.json): each rank
   yields the same number of batches, ``epoch_size // w // batch_size``, worker k the batches k, k+K, ...

Resume restores the epoch and the position inside it exactly: the stream of the epoch is replayed and the samples
of the batches already trained on are skipped before decoding (their bytes are read again, not decoded).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Iterator, Literal, Optional

import numpy as np
import torch

from .data import BadFileError, BadItem
from .params import NonNegativeInt, PositiveFloat, PositiveInt
from .quoting import first_line
from .recipe.loading import expand_path
from .registry import DATASETS

log = logging.getLogger("ssl_toolkit.data")

INDEX_FILE = "shards.json"
INDEX_FORMAT = "ssl_toolkit.shards/1"


def expand_urls(urls: str | list) -> list[str]:
    """Brace patterns (``shard-{000000..000099}.tar``) expanded; local paths with ``~`` and ``$VARS`` expanded."""
    import braceexpand

    items = [urls] if isinstance(urls, str) else list(urls)
    out = []
    for item in items:
        for url in braceexpand.braceexpand(str(item)):
            out.append(url if "://" in url or url.startswith("pipe:") else str(expand_path(url)))
    return out


def read_index(urls: list[str]) -> Optional[dict]:
    """shards.json beside the first (local) shard, when it describes exactly these shards."""
    first = Path(urls[0])
    if "://" in urls[0] or urls[0].startswith("pipe:") or not (first.parent / INDEX_FILE).is_file():
        return None
    try:
        index = json.loads((first.parent / INDEX_FILE).read_text())
        counts = {Path(s["name"]).name: int(s["count"]) for s in index["shards"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring %s (%s)", first.parent / INDEX_FILE, e)
        return None
    if not all(Path(u).name in counts for u in urls):
        return None
    return {"counts": [counts[Path(u).name] for u in urls], "classes": list(index.get("classes") or [])}


class ShardStream(torch.utils.data.IterableDataset):
    """The shard streaming of ``webdataset_*`` (see the module docstring); subclasses decode one sample."""

    extensions: tuple[str, ...] = ()

    def __init__(
        self,
        urls: str | list,
        epoch_size: Optional[int] = None,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        on_bad_file: str = "skip",
    ):
        self.urls = expand_urls(urls)
        if not self.urls:
            raise ValueError("urls: no shard names (expected e.g. data/shard-{000000..000009}.tar)")
        missing = [u for u in self.urls if "://" not in u and not u.startswith("pipe:") and not Path(u).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of the {len(self.urls)} shards do not exist, e.g. {missing[0]}")
        index = read_index(self.urls)
        self.classes = index["classes"] if index else []
        if epoch_size is None:
            if index is None:
                raise ValueError(
                    f"epoch_size: needed, since no {INDEX_FILE} beside the shards gives their sample "
                    "counts (write shards with `ssl-toolkit shard`, or set epoch_size)"
                )
            epoch_size = sum(index["counts"])
        self.epoch_size, self.shuffle_buffer, self.seed = int(epoch_size), int(shuffle_buffer), int(seed)
        self.on_bad_file = on_bad_file
        self.epoch, self.skip_batches, self.batch_size, self.rank, self.world_size = 0, 0, 1, 0, 1

    # -------------------------------------------------------------- what the trainer sets
    def configure(self, batch_size: int, rank: int, world_size: int) -> None:
        if len(self.urls) < world_size:
            raise ValueError(
                f"{len(self.urls)} shards for {world_size} processes: every process needs at least "
                "one shard (write smaller shards: ssl-toolkit shard --max-count)"
            )
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)

    def batches_per_epoch(self) -> int:
        return self.epoch_size // self.world_size // self.batch_size

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.epoch, self.skip_batches = int(epoch), int(batches_done)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.skip_batches) * self.batch_size

    # -------------------------------------------------------------- the stream
    def _worker_shards(self, worker: int, workers: int) -> tuple[list[str], int, int]:
        """(shards, sample stride, sample offset) this worker reads in the current epoch."""
        order = torch.randperm(len(self.urls), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        mine = [self.urls[i] for i in order.tolist()[self.rank :: self.world_size]]
        if len(mine) >= workers:
            return mine[worker::workers], 1, 0
        return mine, workers, worker

    def _pass(self, shards: list[str], stride: int, offset: int) -> Iterator[dict]:
        """One pass over ``shards``: every ``stride``-th sample from ``offset``."""
        import webdataset as wds

        errors: list[Exception] = []

        def handler(e: Exception) -> bool:
            if self.on_bad_file == "fail":
                raise BadFileError(f"webdataset shard: {e}") from None
            errors.append(e)
            return True  # skip what cannot be read, go on

        for position, sample in enumerate(wds.tarfile_samples([{"url": u} for u in shards], handler=handler)):
            if position % stride == offset:
                yield sample
        for e in errors:
            log.warning("webdataset: skipped unreadable data: %s", e)

    def _stream(self, shards: list[str], stride: int, offset: int, rng: np.random.Generator) -> Iterator[dict]:
        """Passes over ``shards`` without end, each shuffled through the buffer and flushed at its end (a sample
        comes again only in a later pass)."""
        while True:
            produced = 0
            for sample in self._shuffled(self._pass(shards, stride, offset), rng):
                produced += 1
                yield sample
            if produced == 0:
                raise ValueError(f"webdataset: the shards {shards[:3]} hold no readable sample")

    def _shuffled(self, samples: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer: list[dict] = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], sample = sample, buffer[j]
            yield sample
        for j in rng.permutation(len(buffer)):
            yield buffer[j]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        total = self.batches_per_epoch()
        quota = len(range(worker, total, workers)) * self.batch_size
        done = len(range(worker, min(self.skip_batches, total), workers)) * self.batch_size
        rng = np.random.default_rng((self.seed, self.epoch, self.rank, worker))
        stream = self._stream(*self._worker_shards(worker, workers), rng)
        for position, sample in enumerate(stream):
            if position >= quota:
                return
            if position >= done:
                yield self._item(sample, (self.seed, self.epoch, self.rank, worker, position))

    def _item(self, sample: dict, seed: tuple):
        """(x, label) of a raw sample, or a BadItem; ``seed`` keys the sample's random choices (decode's rng)."""
        name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
        ext = next((e for e in self.extensions if e in sample), None)
        try:
            if ext is None:
                raise ValueError(
                    f"no {'/'.join(self.extensions)} member in the sample (members: "
                    f"{', '.join(k for k in sample if not k.startswith('__'))})"
                )
            x = self.decode(sample[ext], ext, seed)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            reason = first_line(e)
            if self.on_bad_file == "fail":
                raise BadFileError(f"{name}: {reason}") from None
            return BadItem(name, reason)
        label = int(sample["cls"]) if "cls" in sample else -1
        return x, label

    def decode(self, data: bytes, ext: str, seed: tuple) -> torch.Tensor:
        """The item tensor of one encoded file; random choices from ``numpy.random.default_rng(seed)``."""
        raise NotImplementedError

    def ordered_items(self) -> Iterator:
        """Every decoded item once, shards and samples in their stored order (fixed pools: statistics, monitors)."""
        for i, sample in enumerate(self._pass(list(self.urls), 1, 0)):
            yield self._item(sample, (self.seed, i))

    def describe(self) -> dict:
        return {"urls": [Path(u).name for u in self.urls], "epoch_size": self.epoch_size}

    @property
    def stats_dir(self) -> Path:
        return Path(self.urls[0]).parent / ".ssl_toolkit"


@DATASETS.register("webdataset_images")
class WebDatasetImages(ShardStream):
    """Images from WebDataset shards (jpg/jpeg/png/webp members) as RGB uint8 (3, H, W), like ``image_folder``."""

    extensions = ("jpg", "jpeg", "png", "webp")

    def __init__(
        self,
        urls: str | list,
        epoch_size: Optional[PositiveInt] = None,
        shuffle_buffer: NonNegativeInt = 1000,
        seed: NonNegativeInt = 0,
        size: Optional[PositiveInt] = None,
        on_bad_file: Literal["skip", "fail"] = "skip",
    ):
        super().__init__(urls, epoch_size, shuffle_buffer, seed, on_bad_file)
        self.size = size

    def decode(self, data: bytes, ext: str, seed: tuple) -> torch.Tensor:
        from .image.decode import decode_image_bytes

        return decode_image_bytes(data, self.size)


@DATASETS.register("webdataset_audio")
class WebDatasetAudio(ShardStream):
    """Audio from WebDataset shards as random ``unit_sec`` mono segments at ``sample_rate``, like ``audio_folder``.

    Members wav/flac/ogg/oga/opus/mp3/aiff/aif/au hold the encoded files."""

    extensions = ("wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "au")

    def __init__(
        self,
        urls: str | list,
        epoch_size: Optional[PositiveInt] = None,
        shuffle_buffer: NonNegativeInt = 1000,
        seed: NonNegativeInt = 0,
        sample_rate: PositiveInt = 16000,
        unit_sec: PositiveFloat = 0.95,
        on_bad_file: Literal["skip", "fail"] = "skip",
    ):
        super().__init__(urls, epoch_size, shuffle_buffer, seed, on_bad_file)
        self.sample_rate, self.unit_sec = int(sample_rate), float(unit_sec)
        self.segment_samples = int(round(self.unit_sec * self.sample_rate))

    def decode(self, data: bytes, ext: str, seed: tuple) -> torch.Tensor:
        from .audio.dataset import decode_audio, random_segment

        wave = decode_audio(io.BytesIO(data), f".{ext}", self.sample_rate)
        segment = random_segment(wave, self.segment_samples, np.random.default_rng(seed))
        return torch.from_numpy(np.array(segment, dtype=np.float32))

    def describe(self) -> dict:
        return {**super().describe(), "sample_rate": self.sample_rate, "unit_sec": self.unit_sec}
