"""Items per class in each split of an evaluation task, and what missing items make impossible.

The rule (docs/recipes.md, "What is checked"): a class that has test items but no training items in a unit (the split,
or one fold of k-fold) can never be predicted by a probe fitted on that unit, so the task's score cannot reach 100 %:
evaluation warns, naming the class and its counts per split, and records the warning in results.json
(``warnings``) and results.md. Likewise a class with no validation items when a validation split drives early
stopping (an audio task's valid split, an image task's ``valid_split``): the stopping score never sees it. It is a
warning, not an error: such tasks exist (a rare class, a fold without it) and their scores stay comparable across
models; the counts per class go into results.json (``class_counts``) and results.md.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

MAX_TABLE_ROWS = 50
"""results.md lists the counts of at most this many classes per task (results.json has them all)."""


def counts(labels: np.ndarray, rows: Optional[np.ndarray], num_classes: int) -> Optional[list[int]]:
    """Items per class among ``rows`` (single labels, or multi-hot rows); None when ``rows`` is None."""
    if rows is None:
        return None
    y = labels[np.asarray(rows, dtype=np.int64)]
    if y.ndim == 2:  # multi-label: an item counts for every class it has
        return [int(v) for v in (y > 0).sum(axis=0)]
    return [int(v) for v in np.bincount(y.astype(np.int64), minlength=num_classes)[:num_classes]]


def split_counts(labels: np.ndarray, train, valid, test, num_classes: int) -> dict:
    return {
        "train": counts(labels, train, num_classes),
        "valid": counts(labels, valid, num_classes),
        "test": counts(labels, test, num_classes),
    }


def coverage_warnings(task: str, classes: list[str], by_unit: dict[str, dict]) -> list[str]:
    """One line per class and unit that the probe cannot learn (test items, no training items) or that early
    stopping cannot see (no validation items in a given validation split)."""
    out = []
    for unit, c in by_unit.items():
        where = "" if unit == "split" else f" ({unit})"
        for k, name in enumerate(classes):
            per = ", ".join(f"{s} {c[s][k]}" for s in ("train", "valid", "test") if c[s] is not None)
            if c["test"][k] > 0 and c["train"][k] == 0:
                out.append(
                    f"task '{task}'{where}: class {name!r} has test items but no training items ({per}): "
                    "the probe can never predict it, so the score cannot reach 100 %"
                )
            elif c["valid"] is not None and c["valid"][k] == 0 and c["train"][k] > 0:
                out.append(
                    f"task '{task}'{where}: class {name!r} has no validation items ({per}): early stopping "
                    "never scores it"
                )
    return out


def markdown_table(task: str, entry: dict) -> list[str]:
    """The per-class counts of one task's entry as markdown lines (first unit of a k-fold task per fold column)."""
    cc = entry.get("class_counts")
    if not cc:
        return []
    classes, units = cc["classes"], cc["units"]
    if len(units) == 1:
        (c,) = units.values()
        cols = [s for s in ("train", "valid", "test") if c[s] is not None]
        header, rows = cols, [[c[s][k] for s in cols] for k in range(len(classes))]
    else:  # k-fold: the test items of each fold
        header = [f"test in {u}" for u in units]
        rows = [[units[u]["test"][k] for u in units] for k in range(len(classes))]
    lines = [
        f"Items per class, task `{task}`:",
        "",
        "| class | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    lines += [
        f"| {name} | " + " | ".join(str(v) for v in row) + " |"
        for name, row in list(zip(classes, rows))[:MAX_TABLE_ROWS]
    ]
    if len(classes) > MAX_TABLE_ROWS:
        lines.append(
            f"| … {len(classes) - MAX_TABLE_ROWS} more classes (results.json: class_counts) | "
            + " | ".join("" for _ in header)
            + " |"
        )
    return lines + [""]
