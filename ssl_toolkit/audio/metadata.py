"""EVAR-style metadata CSVs: reading them and numbering their classes.

A metadata CSV has a ``file_name`` column and optionally a label column, ``split`` (train / valid /
test) and ``fold`` (EVAR's task metadata: ESC-50, US8K, SPCV2, CREMA-D, ...). The training datasets
(:class:`~ssl_toolkit.audio.dataset.AudioFolder`) and the evaluation tasks
(:func:`ssl_toolkit.eval.audio_tasks.load_task`) both read them here, so a CSV's classes get the
same ids in training and in evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence


@dataclass
class MetadataCSV:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]  # one per CSV row: every column, values stripped ('' when absent)
    sha256: str  # of the file's bytes


def read_metadata_csv(path: Path) -> MetadataCSV:
    """The columns and rows of a UTF-8 CSV (an optional BOM is dropped; names and values are stripped).

    Raises ValueError when it is not UTF-8 text, has no ``file_name`` column, or a row has more or fewer
    fields than the header (a ragged CSV: the line is named)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        columns = [c.strip() for c in next(reader, [])]
        rows = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(columns):
                raise ValueError(
                    f"{path} line {reader.line_num}: {len(fields)} fields, but the header has "
                    f"{len(columns)} ({', '.join(columns)}); quote values that contain commas"
                )
            rows.append({k: v.strip() for k, v in zip(columns, fields)})
    except csv.Error as e:
        raise ValueError(f"{path} line {reader.line_num}: not a valid CSV ({e})") from None
    if "file_name" not in columns:
        raise ValueError(f"{path} needs a 'file_name' column (columns: {', '.join(columns) or 'none'})")
    return MetadataCSV(path, columns, rows, hashlib.sha256(raw).hexdigest())


def sort_classes(names: Iterable[str]) -> list[str]:
    """The distinct names sorted; by number when every name is an integer ('2' < '10', '-1' < '0')."""
    names = sorted(set(names))
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return names


def class_ids(values: Sequence[Optional[str]]) -> tuple[list[int], list[str]]:
    """(class id of each value, classes): the id of a value is its index in ``sort_classes`` of the
    non-empty values, so labels '3', '7', '10' get ids 0, 1, 2; an empty value or None gets −1."""
    classes = sort_classes(v for v in values if v not in (None, ""))
    index = {c: i for i, c in enumerate(classes)}
    return [index[v] if v not in (None, "") else -1 for v in values], classes
