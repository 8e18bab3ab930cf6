"""Audio classification tasks in EVAR's metadata format: rows, labels, splits or folds, decoded clips.

A task's CSV has a ``file_name`` column (relative to ``audio_dir``, default the CSV's folder), a label
column and either a ``split`` column (train / valid / test; or any column mapped with
``split_values``) or a fold column (k-fold cross-validation: each fold is the test set once). This is
the layout of EVAR's task metadata (ESC-50, US8K, SPCV2, VoxCeleb1, CREMA-D, GTZAN, NSynth, ...).
Classes are numbered as in training (:func:`~ssl_toolkit.audio.metadata.class_ids`): names sorted,
by number when all are integers; rows that ``split_values`` leaves out are not part of the task.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..audio.dataset import load_audio
from ..audio.metadata import class_ids, read_metadata_csv, sort_classes
from ..recipe import expand_path
from ..registry import did_you_mean
from .errors import task_error
from .schema import AudioTask

log = logging.getLogger("ssl_toolkit.eval")

SPLITS = ("train", "valid", "test")
SPLIT_SYNONYMS = {"val": "valid", "validation": "valid", "dev": "valid", "training": "train", "eval": "test"}


@dataclass
class Unit:
    """One train/test partition of a task: the split, or one fold of k-fold CV."""

    name: str  # 'split' or 'fold <value>'
    train: np.ndarray  # row indices
    valid: Optional[np.ndarray]  # None → hold out a fraction of train
    test: np.ndarray


@dataclass
class AudioTaskData:
    task: AudioTask
    csv_path: Path
    base: Path
    files: list[Path]
    labels: np.ndarray  # (N,) class indices, or (N, C) multi-hot
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
    out: set[str] = set()
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
        raise task_error(
            task.name,
            f"{key} '{name}' is not a column of {csv_path}{did_you_mean(name, columns)}; columns: {', '.join(columns)}",
        )


def load_task(task: AudioTask) -> AudioTaskData:
    """Read and check a task's metadata: columns, labels, splits/folds and that every file exists."""
    csv_path = expand_path(task.metadata)
    if not csv_path.is_file():
        unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", str(csv_path))
        hint = (
            " (a directory; name the .csv file)"
            if csv_path.is_dir()
            else f" (environment variable {unset[0]} is not set)"
            if unset
            else ""
        )
        raise task_error(task.name, f"metadata CSV not found: {csv_path}{hint}")
    try:
        table = read_metadata_csv(csv_path)
    except ValueError as e:
        raise task_error(task.name, str(e)) from None
    columns, rows = table.columns, table.rows
    for i, r in enumerate(rows):
        r[" line"] = str(i + 2)  # the CSV line, for messages
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
            raise task_error(
                task.name,
                f"fold_column '{task.fold_column}' has a single value {folds}: "
                "k-fold evaluation needs at least 2 folds",
            )
        units = [Unit(f"fold {f}", np.flatnonzero(fold_of != f), None, np.flatnonzero(fold_of == f)) for f in folds]
    else:
        _column(task, csv_path, columns, task.split_column, "split_column")
        values = [r[task.split_column] for r in rows]
        if task.split_values is not None:
            mapping: dict[str, str] = {}
            for split_name, vals in task.split_values.items():
                for v in _range_values(vals):
                    if v in mapping and mapping[v] != split_name:
                        raise task_error(
                            task.name,
                            f"split_values lists {task.split_column}={v!r} under both {mapping[v]} and {split_name}",
                        )
                    mapping[v] = split_name
            rest = None if "train" in task.split_values else "train"
            split = np.array([mapping.get(v, rest) for v in values], dtype=object)
        else:
            values = [
                SPLIT_SYNONYMS.get(v.lower(), v.lower()) if v.lower() in SPLIT_SYNONYMS or v.lower() in SPLITS else v
                for v in values
            ]
            unknown = sorted({v for v in values} - set(SPLITS))
            if unknown:
                raise task_error(
                    task.name,
                    f"split_column '{task.split_column}' has values {unknown[:5]} besides "
                    "train/valid/test; map them with split_values or choose another column",
                )
            split = np.array(values, dtype=object)
        train, valid, test = (np.flatnonzero(split == s) for s in SPLITS)
        for name, idx in (("train", train), ("test", test)):
            if len(idx) == 0:
                present = sorted({str(v) for v in split if v is not None})
                raise task_error(
                    task.name,
                    f"the {name} split is empty ({csv_path} has no row with "
                    f"{task.split_column} mapped to {name}; splits present: {present})",
                )
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
        raise task_error(
            task.name,
            f"{len(empty)} row(s) of {csv_path} have an empty '{task.label_column}' "
            f"(first: line {rows[empty[0]][' line']}, file {rows[empty[0]]['file_name']!r})",
        )
    if task.multi_label:
        lists = [[p.strip() for p in v.split(",") if p.strip()] for v in raw_labels]
        classes = sort_classes(c for lst in lists for c in lst)
        index = {c: i for i, c in enumerate(classes)}
        labels = np.zeros((len(rows), len(classes)), dtype=np.float32)
        for i, lst in enumerate(lists):
            labels[i, [index[c] for c in lst]] = 1.0
    else:
        if any("," in v for v in raw_labels):
            log.warning(
                "task '%s': some '%s' values contain commas; set multi_label: true if they are class lists",
                task.name,
                task.label_column,
            )
        ids, classes = class_ids(raw_labels)
        labels = np.array(ids, dtype=np.int64)
    if len(classes) < 2:
        raise task_error(
            task.name,
            f"'{task.label_column}' has {len(classes)} class(es) ({classes}); classification needs at least 2",
        )

    files = [base / r["file_name"] for r in rows]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise task_error(
            task.name,
            f"{len(missing)} of {len(files)} audio files listed in {csv_path} are missing "
            f"(looked in {base}), e.g. {missing[0]}"
            + ("; set audio_dir to where the files are" if len(missing) == len(files) else ""),
        )
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
    return AudioTaskData(
        data.task,
        data.csv_path,
        data.base,
        [data.files[i] for i in keep],
        data.labels[keep],
        data.classes,
        units,
        data.csv_sha256,
        data.skipped,
    )


# ----------------------------------------------------------------------------- decoding
def decode_all(data: AudioTaskData, sample_rate: int, progress: bool = True) -> list[Optional[np.ndarray]]:
    """Every clip as float32 mono at ``sample_rate`` (a bad file: an error, or None per on_bad_file: skip)."""
    from tqdm.auto import tqdm

    waves: list[Optional[np.ndarray]] = []
    bad: dict[int, str] = {}
    for p in tqdm(data.files, desc=f"{data.task.name}: decoding", unit="clip", disable=not progress, leave=False):
        try:
            waves.append(load_audio(p, sample_rate))
        except Exception as e:  # noqa: BLE001 - AudioDecodeError and anything a decoder throws
            reason = str(e).strip() or type(e).__name__
            if data.task.on_bad_file == "fail":
                raise task_error(
                    data.task.name, f"cannot use {p}: {reason} (set on_bad_file: skip to leave unreadable clips out)"
                ) from None
            bad[len(waves)] = reason
            waves.append(None)
    if bad:
        for i, reason in bad.items():
            data.skipped[str(data.files[i])] = reason
            log.warning("task '%s': skipped %s: %s", data.task.name, data.files[i], reason)
    return waves
