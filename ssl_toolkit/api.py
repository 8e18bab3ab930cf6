"""The Python entry points: the same work as the ``ssl-toolkit`` commands, as functions.

    import ssl_toolkit as sslt
    run = sslt.train("recipes/audio/byola_fsdd.yaml", ["trainer.max_steps=100"], out="runs/fsdd")
    results = sslt.evaluate("recipes/eval/fsdd.yaml", run)          # the content of results.json
    enc = sslt.load_encoder(run)                                     # an Encoder (ssl_toolkit/encoder.py)
    sslt.export(run, "exports/fsdd", license="mit")                 # a folder to share (ssl_toolkit/export.py)

The commands are thin layers over these. Errors are the toolkit's typed exceptions (``RecipeError`` for a recipe,
``TrainingError``, ``EvalError``, ``CheckpointError``, ``ExportError``), never ``SystemExit``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

PathLike = str | os.PathLike


def load_encoder(
    checkpoint: PathLike,
    *,
    device: str = "cpu",
    trainable: bool = False,
    freeze_bn: bool = False,
    encoder: Optional[dict] = None,
    frontend: Optional[list] = None,
    seed: int = 0,
):
    """An :class:`~ssl_toolkit.encoder.Encoder` from ``checkpoint``: a run directory (its newest valid checkpoint,
    else its ``encoder.pt`` / ``encoder.safetensors``), a ``checkpoints/*.pt``, an ``encoder.pt`` or
    ``.safetensors`` file, an exported folder (``ssl-toolkit export``), official BYOL-A weights, or ``"random"``
    (with ``encoder={name: ..., ...}``, randomly initialized with ``seed``).

    ``trainable=False`` (default): frozen (no parameter requires a gradient) and in eval mode. ``trainable=True``:
    every encoder parameter requires a gradient and the encoder is in train mode (BatchNorm too, unless
    ``freeze_bn``); the front end stays deterministic and gradient-free either way. ``encoder`` / ``frontend``
    (recipe-style specs) name the architecture of weights that carry none (a bare state dict)."""
    from .encoder_source import read_encoder

    return read_encoder(
        checkpoint,
        "load_encoder:",
        device=device,
        trainable=trainable,
        freeze_bn=freeze_bn,
        encoder=encoder,
        frontend=frontend,
        seed=seed,
    )


def train(
    recipe,
    overrides: Sequence[str] = (),
    *,
    out: Optional[PathLike] = None,
    resume: Optional[str] = None,
    overwrite: bool = False,
    allow_recipe_change: bool = False,
    quiet: bool = False,
) -> Path:
    """Pretrain with ``recipe`` (a YAML path, or a :class:`~ssl_toolkit.recipe.Recipe`) and ``overrides``
    (``"key.sub=value"``); returns the run directory. ``resume``: ``"auto"`` or a checkpoint / run directory."""
    from .recipe import Recipe, load_recipe
    from .training.trainer import Trainer

    r = _recipe(recipe, Recipe, load_recipe, overrides, "train", "recipe")
    return Path(
        Trainer(
            r,
            out_dir=None if out is None else os.fspath(out),
            resume=None if resume is None else str(resume),
            quiet=quiet,
            overwrite=overwrite,
            allow_recipe_change=allow_recipe_change,
        ).fit()
    )


def evaluate(
    eval_recipe,
    checkpoint: PathLike,
    overrides: Sequence[str] = (),
    *,
    out: Optional[PathLike] = None,
    quiet: bool = False,
) -> dict:
    """Evaluate ``checkpoint`` (what :func:`load_encoder` reads, or ``"random"``) on the tasks of ``eval_recipe``
    (a YAML path or an :class:`~ssl_toolkit.eval.EvalRecipe`); writes ``out`` (results.json, results.md, plots/)
    and returns the results dictionary (the content of results.json)."""
    from .eval.runner import run_eval
    from .eval.schema import EvalRecipe, load_eval_recipe

    r = _recipe(eval_recipe, EvalRecipe, load_eval_recipe, overrides, "evaluate", "eval_recipe")
    return run_eval(
        r, os.fspath(_path(checkpoint, "checkpoint")), out_dir=None if out is None else os.fspath(out), quiet=quiet
    )


def export(
    run: PathLike,
    out: PathLike,
    *,
    checkpoint: Optional[PathLike] = None,
    results: Optional[PathLike] = None,
    license: Optional[str] = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out``, a folder in the model hubs' layout (config.json, model.safetensors, README.md model card,
    recipe.yaml) from a finished run (or ``checkpoint``); see :mod:`ssl_toolkit.hub`."""
    from .hub import export_run

    return export_run(run, out, checkpoint=checkpoint, results=results, license=license, overwrite=overwrite)


def _recipe(recipe, kind: type, load, overrides: Sequence[str], function: str, argument: str):
    """``recipe`` itself when it is a ``kind`` object (no overrides then), else ``load(path, overrides)``; errors
    name ``function`` and its ``argument``."""
    from .recipe import RecipeError

    if isinstance(overrides, str):
        raise TypeError(
            f"{function}: overrides must be a list of 'key=value' strings, got the string "
            f"{overrides!r} (write [{overrides!r}])"
        )
    if isinstance(recipe, kind):
        if overrides:
            raise RecipeError(
                f"{function}: {argument}: overrides apply to a recipe file; set the fields of the "
                f"{kind.__name__} object directly"
            )
        return recipe
    return load(_path(recipe, f"{function}: {argument}"), list(overrides))


def _path(value, what: str) -> PathLike:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what}: expected a path, got {type(value).__name__}")
    return value
