"""Pre-normalization statistics: mean and std of training log-mels, computed once and reused.

BYOL-A normalizes every log-mel with one mean and one (population) std measured over random
training segments (10,000 by default). They are computed from the raw training batches passed
through the ops before ``pre_norm`` (usually ``log_mel``), then stored as JSON:

1. ``pre_norm.stats_file`` when the recipe names one;
2. otherwise beside the data: ``<dataset root>/.ssl_toolkit/prenorm_<key>.json``;
3. or, when that folder is not writable (e.g. a read-only data share), in the run directory:
   ``<run dir>/prenorm_<key>.json``.

``<key>`` hashes what the numbers depend on: the dataset (root, metadata, split, fold, number of
files, sample rate, segment length), a fingerprint of the upstream ops' output on a fixed probe
signal (front-end settings) and ``n_stats``. A later run with the same key loads the file instead
of recomputing. :func:`ssl_toolkit.audio.recipe_stats.compute_stats` does the same from a recipe
(``ssl-toolkit stats RECIPE``). This module imports no op: ``pre_norm`` calls it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..atomic import atomic_write_text

log = logging.getLogger("ssl_toolkit.audio")


def _probe(num_samples: int) -> torch.Tensor:
    """A fixed test signal (2, num_samples): a chirp plus seeded noise."""
    n = torch.arange(num_samples, dtype=torch.float64)
    chirp = torch.sin(2 * torch.pi * (0.01 * n + 0.2 * n * n / (2 * max(num_samples, 1))))
    noise = torch.randn(2, num_samples, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (0.3 * chirp[None] + 0.05 * noise).float()


def upstream_fingerprint(
    upstream: Callable[[torch.Tensor], torch.Tensor], num_samples: int, device: torch.device
) -> dict:
    """Shape and rounded moments of the upstream ops' output on the probe signal."""
    with torch.no_grad():
        y = upstream(_probe(num_samples).to(device)).double()
    return {"shape": list(y.shape[1:]), "mean": f"{float(y.mean()):.4g}", "std": f"{float(y.std()):.4g}"}


def prenorm_stats(
    batches: Iterable[torch.Tensor], upstream: Callable[[torch.Tensor], torch.Tensor], n_stats: int
) -> dict:
    """Mean and population std over all values of up to ``n_stats`` items of ``upstream(batch)``:
    the pre_norm statistics of training (:func:`load_or_compute`) and of evaluation tasks
    (:func:`ssl_toolkit.eval.audio_embedder.task_prenorm_stats`). Sums are float64."""
    total = total_sq = None
    items = values = 0
    with torch.no_grad():
        for x in batches:
            if items >= n_stats:
                break
            x = x[: n_stats - items]
            y = upstream(x).double()
            s, sq = y.sum(), (y * y).sum()
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            items += x.shape[0]
            values += y.numel()
    if items == 0 or total is None or total_sq is None:
        raise ValueError("pre_norm statistics: the training data yielded no usable items")
    mean = float(total) / values
    var = max(float(total_sq) / values - mean * mean, 0.0)
    std = var**0.5
    if not (std > 0 and mean == mean):
        raise ValueError(f"pre_norm statistics are degenerate (mean {mean}, std {std}): is the training audio silent?")
    return {"mean": mean, "std": std, "n_items": items}


def stats_key(description: dict) -> str:
    return hashlib.sha1(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and float(data["std"]) > 0:
            return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable statistics file %s (%s)", path, e)
    return None


def _write(path: Path, data: dict) -> None:
    """Atomic JSON write; raises OSError when the folder is not writable."""
    atomic_write_text(path, json.dumps(data, indent=2))


def load_or_compute(context, n_stats: int = 10000, stats_file: str | None = None, force: bool = False) -> dict:
    """Statistics for a ``pre_norm`` op being prepared with ``context`` (a PrepareContext)."""
    dataset = context.dataset
    num_samples = getattr(dataset, "segment_samples", None)
    if num_samples is None:  # unknown dataset: look at one batch for the wave length
        first = next(iter(context.batches()), None)
        if first is None:
            raise ValueError("pre_norm statistics: the training data yielded no batch")
        num_samples = first.shape[-1]
    description: dict[str, Any] = {
        "dataset": dataset.describe() if hasattr(dataset, "describe") else repr(type(dataset).__name__),
        "upstream": upstream_fingerprint(context.upstream, int(num_samples), context.device),
        "n_stats": int(n_stats),
    }
    key = stats_key(description)
    candidates: list[Path] = []
    if stats_file is not None:
        from ..recipe import expand_path

        candidates.append(expand_path(stats_file))
    else:
        if hasattr(dataset, "stats_dir"):
            candidates.append(Path(dataset.stats_dir) / f"prenorm_{key}.json")
        if context.run_dir is not None:
            candidates.append(Path(context.run_dir) / f"prenorm_{key}.json")
    if not force:
        for path in candidates:
            data = _read(path)
            if data is not None:
                log.info("pre_norm: statistics from %s (mean %.4f, std %.4f)", path, data["mean"], data["std"])
                return {**data, "path": str(path), "source": "cache"}
    start = time.perf_counter()
    # ViewMaker.prepare keeps the global RNG state as it was, so a run's randomness (e.g. dropout) does
    # not depend on whether the statistics were cached.
    result = prenorm_stats(context.batches(), context.upstream, n_stats)
    data = {**result, "key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **description}
    for path in candidates:
        try:
            _write(path, data)
        except OSError as e:
            log.info("pre_norm: cannot write %s (%s); trying the next location", path, e)
            continue
        log.info(
            "pre_norm: computed statistics over %d items in %.1f s -> %s (mean %.4f, std %.4f)",
            result["n_items"],
            time.perf_counter() - start,
            path,
            result["mean"],
            result["std"],
        )
        return {**data, "path": str(path), "source": "computed"}
    log.warning(
        "pre_norm: statistics computed but not stored (no writable location among %s)", [str(p) for p in candidates]
    )
    return {**data, "path": None, "source": "computed"}
