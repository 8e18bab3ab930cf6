"""Few-label evaluation: the labelled subsets of a task's training (and validation) items per ``label_fraction``.

The rule (VISSL's and mmselfsup's 1 % / 10 % ImageNet subsets, solo-learn's ``data.fraction``): per class, the items
are put in one random order drawn with a fixed seed, and fraction ``f`` keeps the first ``round(f · n_c)`` of them
(Python's round, halves to even). So the subsets are stratified, are the same for every system and protocol of an
evaluation, and are nested (the 1 % subset lies inside the 10 % one). A fraction that would keep no item of a class
present in the pool (``round(f · n_c) = 0``) is an error naming the class and a fraction that keeps one
(``1 / n_c``), rather than a silently larger subset: every class keeps at least one item. Multi-label tasks draw one
order over all items; ``f`` keeps its first ``max(1, round(f · n))`` items plus, for a class those leave out, its
first item in that order (also nested).
The chosen items are written to the evaluation folder (:func:`subset_record`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def fraction_list(value) -> list[float]:
    """A task's ``label_fraction`` (a number or a list) as sorted distinct fractions in (0, 1].
    ValueError names the offending value."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError("expected a fraction in (0, 1] or a non-empty list of them")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < float(v) <= 1:
            raise ValueError(f"{v!r} is not a fraction in (0, 1] (1.0 = every label; 0.01 = 1 % of them)")
        out.append(float(v))
    out = sorted(set(out))
    for a, b in zip(out, out[1:]):  # sorted: equal tags are neighbours
        if fraction_tag(a) == fraction_tag(b):
            raise ValueError(f"{a!r} and {b!r} are both {fraction_tag(a)} in the results' keys: give other fractions")
    return out


def fraction_tag(fraction: float) -> str:
    """'1%', '10%', '0.5%' — the suffix of a results key (``<task>@1%``)."""
    pct = 100 * fraction
    return f"{pct:.4g}%"


def _counts(n: int, fraction: float) -> int:
    return min(n, max(1, int(round(fraction * n))))


def nested_subsets(
    labels: np.ndarray,
    pool: np.ndarray,
    fractions: Sequence[float],
    seed: int,
    multi_label: bool = False,
    classes: Optional[Sequence] = None,
) -> dict[float, np.ndarray]:
    """{fraction: sorted row indices} chosen from the rows ``pool`` of ``labels`` (class indices, or multi-hot
    (N, C)). Fraction 1.0 is the whole pool. ValueError when ``pool`` is empty or a fraction keeps no item of a
    class (single-label; ``classes`` names them in the message)."""
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) == 0:
        raise ValueError("no items to draw labels from")
    rng = np.random.default_rng(seed)
    out: dict[float, np.ndarray] = {}
    if multi_label:
        order = pool[rng.permutation(len(pool))]
        y = np.asarray(labels)[order] > 0
        firsts = [int(np.flatnonzero(y[:, c])[0]) for c in range(y.shape[1]) if y[:, c].any()]
        for f in fractions:
            k = _counts(len(order), f)
            keep = set(range(k)) | set(firsts)
            out[f] = np.sort(order[sorted(keep)])
        return out
    y = np.asarray(labels)[pool]
    present = np.unique(y)
    orders = [pool[y == c][rng.permutation(int((y == c).sum()))] for c in present]
    for f in fractions:
        for c, o in zip(present, orders):
            if int(round(f * len(o))) == 0:
                name = classes[int(c)] if classes is not None else int(c)
                raise ValueError(
                    f"fraction {f} keeps no item of class {name!r} ({len(o)} items: round({f} × "
                    f"{len(o)}) = 0); a fraction of at least 1/{len(o)} = {1 / len(o):.3g} keeps one"
                )
        out[f] = np.sort(np.concatenate([o[: _counts(len(o), f)] for o in orders]))
    return out


def subset_record(
    names: Sequence[str], subsets: dict[float, np.ndarray], valid: Optional[dict[float, np.ndarray]] = None
) -> dict:
    """What the evaluation folder keeps of one unit's subsets: per fraction, the chosen items' names."""
    rec = {}
    for f, rows in subsets.items():
        item = {"train": [names[int(i)] for i in rows]}
        if valid is not None:
            item["valid"] = [names[int(i)] for i in valid[f]]
        rec[fraction_tag(f)] = {"fraction": f, **item}
    return rec
