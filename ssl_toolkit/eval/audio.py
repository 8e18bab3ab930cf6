"""Audio classification tasks in EVAR's metadata format, and clip embedding.

A task's CSV has a ``file_name`` column (relative to ``audio_dir``, default the CSV's folder), a label
column and either a ``split`` column (train / valid / test; or any column mapped with
``split_values``) or a fold column (k-fold cross-validation: each fold is the test set once). This is
the layout of EVAR's task metadata (ESC-50, US8K, SPCV2, VoxCeleb1, CREMA-D, GTZAN, NSynth, ...).
Classes are numbered as in training (:func:`~ssl_toolkit.audio.metadata.class_ids`): names sorted,
by number when all are integers; rows that ``split_values`` leaves out are not part of the task.

Clips are decoded to mono at the front end's sample rate. Each clip is cut into ``unit_sec`` pieces
(shorter clips are zero-padded to ``unit_sec``; longer ones are chunked, embedded whole or cropped,
see ``long_clips``); a clip's embedding is the mean of its pieces' embeddings. The front end's
``pre_norm`` statistics are measured on the task's training clips (EVAR), per fold for k-fold tasks.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..audio.metadata import class_ids, read_metadata_csv, sort_classes
from ..recipe import expand_path, to_plain
from ..registry import AUGMENTATIONS, did_you_mean
from .cache import EmbeddingCache, files_fingerprint
from .errors import EvalError, task_error
from .models import EvalModel
from .schema import AudioTask

log = logging.getLogger("ssl_toolkit.eval")

SPLITS = ("train", "valid", "test")
SPLIT_SYNONYMS = {"val": "valid", "validation": "valid", "dev": "valid", "training": "train", "eval": "test"}
EMBED_FORMAT = "audio-embed/1"
MAX_STATS_PIECES = 10000


@dataclass
class Unit:
    """One train/test partition of a task: the split, or one fold of k-fold CV."""

    name: str                   # 'split' or 'fold <value>'
    train: np.ndarray           # row indices
    valid: Optional[np.ndarray]  # None → hold out a fraction of train
    test: np.ndarray


@dataclass
class AudioTaskData:
    task: AudioTask
    csv_path: Path
    base: Path
    files: list[Path]
    labels: np.ndarray          # (N,) class indices, or (N, C) multi-hot
    classes: list[str]
    units: list[Unit]
    csv_sha256: str
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multi_label(self) -> bool:
        return self.task.multi_label


# ----------------------------------------------------------------------------- metadata
def _range_values(values) -> set[str]:
    """['0-9', 12, 'x'] → {'0', ..., '9', '12', 'x'}."""
    out = set()
    for v in values if isinstance(values, (list, tuple)) else [values]:
        s = str(v).strip()
        m = re.fullmatch(r"(-?\d+)\s*-\s*(-?\d+)", s)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            out.update(str(i) for i in range(min(lo, hi), max(lo, hi) + 1))
        else:
            out.add(s)
    return out


def _column(task: AudioTask, csv_path: Path, columns: list[str], name: str, key: str) -> None:
    if name not in columns:
        raise task_error(task.name, f"{key} '{name}' is not a column of {csv_path}{did_you_mean(name, columns)}; "
                                    f"columns: {', '.join(columns)}")


def load_task(task: AudioTask) -> AudioTaskData:
    """Read and check a task's metadata: columns, labels, splits/folds and that every file exists."""
    csv_path = expand_path(task.metadata)
    if not csv_path.is_file():
        unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", str(csv_path))
        hint = (" (a directory; name the .csv file)" if csv_path.is_dir() else
                f" (environment variable {unset[0]} is not set)" if unset else "")
        raise task_error(task.name, f"metadata CSV not found: {csv_path}{hint}")
    try:
        table = read_metadata_csv(csv_path)
    except ValueError as e:
        raise task_error(task.name, str(e)) from None
    columns, rows = table.columns, table.rows
    for i, r in enumerate(rows):
        r[" line"] = i + 2  # the CSV line, for messages
    if not rows:
        raise task_error(task.name, f"{csv_path} has no rows")
    _column(task, csv_path, columns, task.label_column, "label_column")
    base = csv_path.parent if task.audio_dir is None else csv_path.parent / expand_path(task.audio_dir)
    if not base.is_dir():
        raise task_error(task.name, f"audio_dir not found: {base}")

    # partitions
    if task.fold_column is not None:
        _column(task, csv_path, columns, task.fold_column, "fold_column")
        fold_of = np.array([r[task.fold_column] for r in rows], dtype=object)
        if (fold_of == "").any():
            raise task_error(task.name, f"rows with an empty '{task.fold_column}' value in {csv_path}")
        folds = sort_classes(fold_of)
        if len(folds) < 2:
            raise task_error(task.name, f"fold_column '{task.fold_column}' has a single value {folds}: "
                                        "k-fold evaluation needs at least 2 folds")
        units = [Unit(f"fold {f}", np.flatnonzero(fold_of != f), None, np.flatnonzero(fold_of == f)) for f in folds]
    else:
        _column(task, csv_path, columns, task.split_column, "split_column")
        values = [r[task.split_column] for r in rows]
        if task.split_values is not None:
            mapping: dict[str, str] = {}
            for split_name, vals in task.split_values.items():
                for v in _range_values(vals):
                    if v in mapping and mapping[v] != split_name:
                        raise task_error(task.name, f"split_values lists {task.split_column}={v!r} under both "
                                                    f"{mapping[v]} and {split_name}")
                    mapping[v] = split_name
            rest = None if "train" in task.split_values else "train"
            split = np.array([mapping.get(v, rest) for v in values], dtype=object)
        else:
            values = [SPLIT_SYNONYMS.get(v.lower(), v.lower()) if v.lower() in SPLIT_SYNONYMS or v.lower() in SPLITS
                      else v for v in values]
            unknown = sorted({v for v in values} - set(SPLITS))
            if unknown:
                raise task_error(task.name, f"split_column '{task.split_column}' has values {unknown[:5]} besides "
                                            "train/valid/test; map them with split_values or choose another column")
            split = np.array(values, dtype=object)
        train, valid, test = (np.flatnonzero(split == s) for s in SPLITS)
        for name, idx in (("train", train), ("test", test)):
            if len(idx) == 0:
                present = sorted({str(v) for v in split if v is not None})
                raise task_error(task.name, f"the {name} split is empty ({csv_path} has no row with "
                                            f"{task.split_column} mapped to {name}; splits present: {present})")
        used = np.array([v is not None for v in split])
        if not used.all():  # rows that split_values leaves out are not used at all
            rows = [r for r, u in zip(rows, used) if u]
            split = split[used]
            train, valid, test = (np.flatnonzero(split == s) for s in SPLITS)
        units = [Unit("split", train, valid if len(valid) else None, test)]

    # labels
    raw_labels = [r[task.label_column] for r in rows]
    empty = [i for i, v in enumerate(raw_labels) if v == ""]
    if empty:
        raise task_error(task.name, f"{len(empty)} row(s) of {csv_path} have an empty '{task.label_column}' "
                                    f"(first: line {rows[empty[0]][' line']}, file {rows[empty[0]]['file_name']!r})")
    if task.multi_label:
        lists = [[p.strip() for p in v.split(",") if p.strip()] for v in raw_labels]
        classes = sort_classes(c for lst in lists for c in lst)
        index = {c: i for i, c in enumerate(classes)}
        labels = np.zeros((len(rows), len(classes)), dtype=np.float32)
        for i, lst in enumerate(lists):
            labels[i, [index[c] for c in lst]] = 1.0
    else:
        if any("," in v for v in raw_labels):
            log.warning("task '%s': some '%s' values contain commas; set multi_label: true if they are class lists",
                        task.name, task.label_column)
        ids, classes = class_ids(raw_labels)
        labels = np.array(ids, dtype=np.int64)
    if len(classes) < 2:
        raise task_error(task.name, f"'{task.label_column}' has {len(classes)} class(es) ({classes}); "
                                    "classification needs at least 2")

    files = [base / r["file_name"] for r in rows]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise task_error(task.name, f"{len(missing)} of {len(files)} audio files listed in {csv_path} are missing "
                                    f"(looked in {base}), e.g. {missing[0]}"
                                    + ("; set audio_dir to where the files are" if len(missing) == len(files) else ""))
    return AudioTaskData(task, csv_path, base, files, labels, classes, units, table.sha256)


def drop_rows(data: AudioTaskData, bad: set[int]) -> AudioTaskData:
    """The task without rows ``bad`` (unreadable files with on_bad_file: skip)."""
    if not bad:
        return data
    keep = np.array([i for i in range(len(data.files)) if i not in bad])
    remap = -np.ones(len(data.files), dtype=np.int64)
    remap[keep] = np.arange(len(keep))

    def sub(idx):
        if idx is None:
            return None
        return remap[idx[remap[idx] >= 0]]

    units = [Unit(u.name, sub(u.train), sub(u.valid), sub(u.test)) for u in data.units]
    for u in units:
        if len(u.train) == 0 or len(u.test) == 0:
            raise task_error(data.task.name, f"{u.name}: no readable train or test clip left after skipping bad files")
    return AudioTaskData(data.task, data.csv_path, data.base, [data.files[i] for i in keep], data.labels[keep],
                         data.classes, units, data.csv_sha256, data.skipped)


# ----------------------------------------------------------------------------- decoding
def decode_all(data: AudioTaskData, sample_rate: int, progress: bool = True) -> list[np.ndarray]:
    """Every clip as float32 mono at ``sample_rate`` (bad files: error or dropped per on_bad_file)."""
    from tqdm.auto import tqdm

    from ..audio.dataset import load_audio

    waves, bad = [], {}
    for p in tqdm(data.files, desc=f"{data.task.name}: decoding", unit="clip", disable=not progress, leave=False):
        try:
            waves.append(load_audio(p, sample_rate))
        except Exception as e:  # noqa: BLE001 - AudioDecodeError and anything a decoder throws
            reason = str(e).strip() or type(e).__name__
            if data.task.on_bad_file == "fail":
                raise task_error(data.task.name, f"cannot use {p}: {reason} (set on_bad_file: skip to leave "
                                                 "unreadable clips out)") from None
            bad[len(waves)] = reason
            waves.append(None)
    if bad:
        for i, reason in bad.items():
            data.skipped[str(data.files[i])] = reason
            log.warning("task '%s': skipped %s: %s", data.task.name, data.files[i], reason)
    return waves


# ----------------------------------------------------------------------------- pieces
def piece_spans(n: int, unit: int, long_clips: str) -> list[tuple[int, int]]:
    """(start, length) of the pieces of an ``n``-sample clip that are embedded and averaged; a piece
    shorter than ``unit`` is zero-padded to ``unit``."""
    if n <= unit:
        return [(0, n)]
    if long_clips == "crop":
        return [(0, unit)]
    if long_clips == "whole":
        return [(0, n)]
    starts = list(range(0, n - unit + 1, unit))
    if starts[-1] != n - unit:
        starts.append(n - unit)  # the last piece ends with the clip (overlapping the one before)
    return [(s, unit) for s in starts]


@dataclass
class Pieces:
    """Every piece of every clip, materialized batch by batch."""

    waves: list
    unit: int
    clip: np.ndarray            # owner clip of each piece
    start: np.ndarray
    length: np.ndarray

    @classmethod
    def cut(cls, waves: list, unit: int, long_clips: str) -> "Pieces":
        clip, start, length = [], [], []
        for i, w in enumerate(waves):
            for s, n in piece_spans(w.shape[0], unit, long_clips):
                clip.append(i)
                start.append(s)
                length.append(n)
        return cls(waves, unit, np.asarray(clip, dtype=np.int64), np.asarray(start, dtype=np.int64),
                   np.asarray(length, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.clip)

    def size(self, i: int) -> int:
        return max(int(self.length[i]), self.unit)

    def batch(self, idx) -> torch.Tensor:
        size = self.size(idx[0])
        out = np.zeros((len(idx), size), dtype=np.float32)
        for row, i in enumerate(idx):
            s, n = int(self.start[i]), int(self.length[i])
            out[row, :n] = self.waves[self.clip[i]][s:s + n]
        return torch.from_numpy(out)

    def batches(self, batch_size: int, subset: Optional[np.ndarray] = None):
        """Index batches of equal-size pieces (in order of size, then position)."""
        idx_all = np.arange(len(self)) if subset is None else np.asarray(subset)
        by_size: dict[int, list[int]] = {}
        for i in idx_all:
            by_size.setdefault(self.size(int(i)), []).append(int(i))
        for size in sorted(by_size):
            idx = by_size[size]
            for s in range(0, len(idx), batch_size):
                yield idx[s:s + batch_size]


def _is_prenorm(op) -> bool:
    try:
        return isinstance(op, AUGMENTATIONS.get("pre_norm").builder)
    except Exception:  # noqa: BLE001
        return type(op).__name__ == "PreNorm"


def split_frontend(frontend: list) -> tuple[list, Optional[object], list]:
    """(ops before pre_norm, the pre_norm op or None, ops after it)."""
    for i, op in enumerate(frontend):
        if _is_prenorm(op):
            return frontend[:i], op, frontend[i + 1:]
    return list(frontend), None, []


def frontend_sample_rate(frontend: list, default: int = 16000) -> int:
    for op in frontend:
        rate = getattr(op, "sample_rate", None)
        if rate is not None:
            return int(rate)
    return default


def _apply(ops, x):
    for op in ops:
        x = op(x, None)
    return x


def prenorm_stats(pieces_: Pieces, subset: np.ndarray, upstream: list, device, batch_size: int,
                  seed: int = 0) -> dict:
    """Mean and population std over every value of the upstream output (log-mel) of up to 10,000
    pieces drawn from ``subset`` (BYOL-A / EVAR pre-normalization)."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(np.asarray(subset))[:MAX_STATS_PIECES]
    total = total_sq = 0.0
    count = 0
    with torch.inference_mode():
        for idx in pieces_.batches(batch_size, chosen):
            y = _apply(upstream, pieces_.batch(idx).to(device)).double()
            total += float(y.sum())
            total_sq += float((y * y).sum())
            count += y.numel()
    if count == 0:
        raise EvalError("pre_norm statistics: no training audio")
    mean = total / count
    std = max(total_sq / count - mean * mean, 0.0) ** 0.5
    if not std > 0:
        raise EvalError(f"pre_norm statistics are degenerate (mean {mean}, std {std}): is the training audio silent?")
    return {"mean": mean, "std": std, "n_pieces": int(len(chosen))}


def embed_pieces(pieces_: Pieces, n_clips: int, fn: Callable[[torch.Tensor], torch.Tensor], device,
                 batch_size: int, desc: str, progress: bool) -> np.ndarray:
    """Per clip, the mean over its pieces of ``fn(batch of pieces)``."""
    from tqdm.auto import tqdm

    out: Optional[np.ndarray] = None
    batches = list(pieces_.batches(batch_size))
    with torch.inference_mode():
        for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            y = fn(pieces_.batch(idx).to(device)).float().cpu().numpy().astype(np.float64)
            if out is None:
                out = np.zeros((n_clips, y.shape[1]), dtype=np.float64)
            np.add.at(out, pieces_.clip[idx], y)
    counts = np.bincount(pieces_.clip, minlength=n_clips).astype(np.float64)
    return (out / counts[:, None]).astype(np.float32)


def encoder_fn(model: EvalModel, frontend: list, precision: str, device: torch.device):
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())

    def fn(x):
        x = _apply(frontend, x)  # fp32, outside autocast
        with amp:
            return model.encoder(x)

    return fn


def logmel_fn(upstream: list):
    """No-learning feature: [time-mean, time-max] of each log-mel bin (2 × n_mels)."""

    def fn(x):
        y = _apply(upstream, x)
        if y.ndim == 4:  # (B, 1, F, T) → (B, F, T)
            y = y.flatten(1, 2)
        if y.ndim != 3:
            raise EvalError(f"logmel baseline: the front end gives {tuple(y.shape)}, expected (B, 1, F, T)")
        return torch.cat([y.mean(-1), y.amax(-1)], dim=1)

    return fn


# ----------------------------------------------------------------------------- the embedding step
class AudioEmbedder:
    """Embeddings of one task's clips, per model and unit, through the cache.

    Clips are decoded once (at the front end's sample rate) and shared by the model and the
    baselines. With ``on_bad_file: skip`` they are decoded up front and unreadable rows dropped
    from ``data`` (so the cache key covers the rows actually used)."""

    def __init__(self, data: AudioTaskData, sample_rate: int, cache: EmbeddingCache, device: torch.device,
                 precision: str, batch_size: int, prenorm_mode: str, seed: int, progress: bool = True):
        self.data, self.sample_rate, self.cache, self.device = data, sample_rate, cache, device
        self.precision, self.batch_size, self.prenorm_mode = precision, batch_size, prenorm_mode
        self.seed, self.progress = seed, progress
        self._waves: Optional[list] = None
        self._pieces: Optional[Pieces] = None
        self._memo: dict[str, tuple[np.ndarray, dict]] = {}
        if data.task.on_bad_file == "skip":
            self.waves()

    def waves(self) -> list:
        if self._waves is None:
            waves = decode_all(self.data, self.sample_rate, self.progress)
            bad = {i for i, w in enumerate(waves) if w is None}
            if bad:
                self.data = drop_rows(self.data, bad)
                waves = [w for w in waves if w is not None]
            self._waves = waves
        return self._waves

    def pieces(self) -> Pieces:
        if self._pieces is None:
            unit = int(round(self.data.task.unit_sec * self.sample_rate))
            self._pieces = Pieces.cut(self.waves(), unit, self.data.task.long_clips)
        return self._pieces

    def _description(self, feature: str, identity: str, frontend_spec, stats_scope) -> dict:
        t = to_plain(self.data.task)
        for k in ("name", "on_bad_file"):
            t.pop(k, None)
        return {"format": EMBED_FORMAT, "feature": feature, "model": identity, "frontend": frontend_spec,
                "sample_rate": self.sample_rate, "task": t, "csv_sha256": self.data.csv_sha256,
                "files": files_fingerprint(self.data.files), "n": len(self.data.files),
                "stats": stats_scope, "precision": self.precision if feature == "encoder" else "fp32"}

    def uses_task_stats(self, model: Optional[EvalModel], feature: str) -> bool:
        if feature != "encoder" or model is None:
            return False
        _, prenorm, _ = split_frontend(model.frontend)
        return prenorm is not None and (self.prenorm_mode == "task" or not bool(getattr(prenorm, "ready", False)))

    def embeddings(self, model: Optional[EvalModel], unit: Unit, feature: str = "encoder",
                   frontend: Optional[list] = None, frontend_spec=None) -> tuple[np.ndarray, dict]:
        """(N, D) embeddings of every row for ``unit`` and info (pre_norm statistics, cache hit).

        ``feature``: 'encoder' (the model) or 'logmel' (the front end up to pre_norm, pooled)."""
        frontend = model.frontend if model is not None else frontend
        upstream, prenorm, _ = split_frontend(frontend)
        task_stats = self.uses_task_stats(model, feature)
        if task_stats:
            train_rows = np.sort(unit.train)  # EVAR: the training split's clips (of this fold)
            stats_scope = {"mode": "task", "rows": hashlib.sha256(train_rows.astype(np.int64).tobytes()).hexdigest()}
        elif feature == "encoder" and prenorm is not None:
            stats_scope = {"mode": "checkpoint", "mean": float(prenorm.mean), "std": float(prenorm.std)}
        else:
            stats_scope = None
        identity = model.identity if model is not None else "front-end"
        spec = model.frontend_spec if model is not None else frontend_spec
        desc = self._description(feature, identity, spec, stats_scope)
        name = feature if feature != "encoder" else model.name

        def compute():
            pcs = self.pieces()
            extra: dict = {}
            if task_stats:
                in_train = np.zeros(len(self.data.files), dtype=bool)
                in_train[train_rows] = True
                stats = prenorm_stats(pcs, np.flatnonzero(in_train[pcs.clip]), upstream, self.device,
                                      self.batch_size, self.seed)
                prenorm.mean.fill_(stats["mean"])
                prenorm.std.fill_(stats["std"])
                extra["prenorm"] = stats
            elif stats_scope is not None:
                extra["prenorm"] = {k: v for k, v in stats_scope.items() if k != "mode"}
            fn = encoder_fn(model, frontend, self.precision, self.device) if feature == "encoder" else logmel_fn(upstream)
            text = f"{self.data.task.name}: {name}" + ("" if unit.name == "split" else f" ({unit.name})")
            return embed_pieces(pcs, len(self.data.files), fn, self.device, self.batch_size, text, self.progress), extra

        from .cache import digest

        memo_key = digest(desc)
        if memo_key not in self._memo:
            emb, extra, hit = self.cache.get_or_compute(f"{self.data.task.name}-{name}", desc,
                                                        len(self.data.files), compute)
            self._memo[memo_key] = (emb, {**extra, "cached": hit})
        return self._memo[memo_key]
