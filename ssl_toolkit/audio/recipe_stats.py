"""``ssl-toolkit stats RECIPE``: a training recipe's ``pre_norm`` statistics, prepared as training would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

from ..data import build_dataset, preparation_batches
from ..recipe import Recipe, RecipeError, load_recipe
from ..views import ViewMaker
from .augment import PreNorm


def compute_stats(
    recipe,
    overrides: Iterable[str] = (),
    *,
    n_stats: int | None = None,
    device: str | torch.device = "cpu",
    run_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict:
    """Compute (or load) the ``pre_norm`` statistics of a training recipe, as training would.

    ``recipe`` is a recipe path or a loaded :class:`~ssl_toolkit.recipe.Recipe`. The statistics
    use the same items as the trainer's preparation (:func:`ssl_toolkit.data.preparation_batches`)
    and are stored where training looks for them. Returns a dict with ``mean``, ``std``,
    ``n_items``, ``path`` (where they are stored) and ``source`` (``cache`` / ``computed``).
    """
    source = None
    if not isinstance(recipe, Recipe):
        source, recipe = str(recipe), load_recipe(recipe, list(overrides))
    device = torch.device(device)
    views = ViewMaker.from_config(recipe.views).to(device)
    ops = [op for op in views.input.ops if isinstance(op, PreNorm)]
    if not ops:
        raise RecipeError(
            f"recipe '{recipe.name}' has no pre_norm op: there are no statistics to compute "
            "(`ssl-toolkit stats` is for audio recipes that normalize with dataset statistics)",
            file=source,
            key="views.input",
        )
    for op in ops:
        if n_stats is not None:
            op.n_stats = int(n_stats)
        op.force = force
    dataset = build_dataset(recipe.data.dataset)

    batches = preparation_batches(dataset, recipe.data.batch_size, recipe.data.num_workers, recipe.seed, device)

    views.prepare(batches, device, Path(run_dir) if run_dir is not None else None, dataset)
    out = dict(ops[0].stats or {})
    out.update(mean=float(ops[0].mean), std=float(ops[0].std))
    return out
