"""One evaluation task as the protocols see it, whatever its modality: rows with labels, units (the split, or the
folds of k-fold), frozen embeddings per system and unit, and the raw inputs fine-tuning needs.

Audio tasks (eval/audio_tasks.py) keep their rows in metadata order; an image task's rows are its train split, then
its test split, then its valid split (if any). A row's name (written with the label subsets) is an audio file's path
relative to the task's audio folder, or ``<split>/<index>`` of an image split.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Union

import numpy as np
import torch

from ..audio.embedding import embed_clips, frontend_sample_rate, split_frontend
from ..data import BadItem
from ..engine.build import feature_dim_of
from . import image as image_mod
from .audio_embedder import AudioEmbedder
from .audio_tasks import Unit
from .audio_tasks import load_task as load_audio_task
from .class_coverage import split_counts
from .errors import task_error
from .finetune import FinetuneInputs
from .models import EvalModel
from .schema import AudioTask, ImageTask


class TaskView:
    task: Union[AudioTask, ImageTask]
    data: Any
    labels: np.ndarray
    classes: list
    units: list[Unit]
    names: list[str]

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def multi_label(self) -> bool:
        return bool(getattr(self.task, "multi_label", False))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def metric(self) -> str:
        return "mAP" if self.multi_label else "accuracy"

    def unit_counts(self) -> dict:
        return {u.name: split_counts(self.labels, u.train, u.valid, u.test, self.num_classes) for u in self.units}

    def features(self, model: Optional[EvalModel], feature: str, unit: Unit) -> Optional[tuple[np.ndarray, dict]]:
        """(N, D) frozen embeddings of every row for ``unit`` and info (``ok``: rows that could be read, ``cached``,
        ``prenorm``), or None when the task has no such feature."""
        raise NotImplementedError

    def finetune_inputs(self, model: EvalModel, unit: Unit, info: dict, batch_size: int) -> FinetuneInputs:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class AudioTaskView(TaskView):
    task: AudioTask

    def __init__(self, task: AudioTask, model0: EvalModel, recipe, cache, device, precision, progress: bool):
        data = load_audio_task(task)
        self.sample_rate = frontend_sample_rate(model0.frontend)
        self.emb = AudioEmbedder(
            data, self.sample_rate, cache, device, precision, recipe.batch_size, recipe.prenorm, recipe.seed, progress
        )
        self.model0, self.device, self.precision = model0, device, precision
        self.task = task

    @property
    def data(self):
        return self.emb.data  # rows of unreadable clips leave it (on_bad_file: skip)

    labels = property(lambda self: self.data.labels)
    classes = property(lambda self: self.data.classes)
    units = property(lambda self: self.data.units)
    names = property(lambda self: [str(p.relative_to(self.data.base)) for p in self.data.files])

    def describe(self) -> str:
        d = self.data
        how = f"k-fold over {len(d.units)} folds" if self.task.fold_column else "split"
        return f"task '{self.name}': {len(d.files)} clips, {d.num_classes} classes, {how}; metric {self.metric}"

    def features(self, model, feature, unit):
        if feature == "logmel":
            if "log_mel" not in [s.get("name") for s in self.model0.frontend_spec]:
                return None
            upstream, _, _ = split_frontend(self.model0.frontend)
            return self.emb.embeddings(
                None, unit, "logmel", frontend=upstream, frontend_spec=self.model0.frontend_spec[: len(upstream)]
            )
        return self.emb.embeddings(model, unit, "encoder")

    def finetune_inputs(self, model, unit, info, batch_size):
        frontend = copy.deepcopy(model.frontend)
        _, prenorm, _ = split_frontend(frontend)
        if prenorm is not None and "prenorm" in info:  # this unit's statistics, as its frozen embeddings used
            prenorm.mean.fill_(info["prenorm"]["mean"])
            prenorm.std.fill_(info["prenorm"]["std"])
        waves, task, device, rate = self.emb.waves(), self.task, self.device, self.sample_rate
        unit_len = int(round(task.unit_sec * rate))

        def train_batch(rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
            out = np.zeros((len(rows), unit_len), dtype=np.float32)
            for j, r in enumerate(rows):
                w = waves[int(r)]
                s = int(rng.integers(0, len(w) - unit_len + 1)) if len(w) > unit_len else 0
                piece = w[s : s + unit_len]
                out[j, : len(piece)] = piece
            return torch.from_numpy(out).to(device)

        def features(encoder, rows: np.ndarray) -> np.ndarray:
            return embed_clips(
                [waves[int(r)] for r in rows],
                encoder,
                frontend,
                rate,
                task.unit_sec,
                task.long_clips,
                device=device,
                batch_size=batch_size,
                precision=self.precision,
            )

        return FinetuneInputs(train_batch, features, frontend)


class ImageTaskView(TaskView):
    task: ImageTask

    def __init__(self, task: ImageTask, recipe, cache, device, precision, progress: bool):
        self.task = task
        self.data = image_mod.load_task(task)
        self.emb = image_mod.ImageEmbedder(
            self.data, cache, device, precision, recipe.batch_size, recipe.num_workers, progress
        )
        self.device, self.precision = device, precision
        self.roles = [r for r in ("train", "test", "valid") if r in self.data.splits]
        self.rows: list[tuple[str, int]] = [(r, i) for r in self.roles for i in range(len(self.data.splits[r].labels))]
        self.labels = np.concatenate([self.data.splits[r].labels for r in self.roles])
        self.classes = self.data.classes
        by_role = {r: np.array([j for j, (role, _) in enumerate(self.rows) if role == r]) for r in self.roles}
        self.units = [Unit("split", by_role["train"], by_role.get("valid"), by_role["test"])]
        self.names = [f"{role}/{i}" for role, i in self.rows]

    def describe(self) -> str:
        s = self.data.splits
        return (
            f"task '{self.name}': {len(s['train'].dataset)} train / {len(s['test'].dataset)} test images, "
            f"{self.num_classes} classes; protocols {', '.join(self.task.protocols)}"
        )

    def features(self, model, feature, unit):
        if feature != "encoder":
            return None
        parts = [self.emb.embeddings(model, role) for role in self.roles]
        return (
            np.concatenate([x for x, _, _ in parts]),
            {"ok": np.concatenate([ok for _, ok, _ in parts]), "cached": all(hit for _, _, hit in parts)},
        )

    def image(self, row: int) -> torch.Tensor:
        role, i = self.rows[int(row)]
        item = self.data.splits[role].dataset[i]
        if isinstance(item, BadItem):
            raise task_error(self.name, f"cannot fine-tune on an unreadable image: {item.path} ({item.reason})")
        return torch.as_tensor(item[0])

    def finetune_inputs(self, model, unit, info, batch_size):
        device = self.device

        def train_batch(rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
            return torch.stack([self.image(r) for r in rows]).to(device)

        def features(encoder, rows: np.ndarray) -> np.ndarray:
            return image_mod.embed_images(
                [self.image(r) for r in rows],
                model.frontend,
                encoder,
                device,
                batch_size,
                self.precision,
                feature_dim_of(encoder),
            )

        return FinetuneInputs(train_batch, features, list(model.frontend))
