"""Downstream evaluation: EVAR-style linear evaluation of audio embeddings, linear probe and weighted
kNN for images, with random-init and log-mel baselines, an embedding cache, reports and plots.

Entry points: :func:`run_eval` (``ssl-toolkit eval``), :func:`load_eval_recipe`,
:func:`training_curves` (``ssl-toolkit plot``)."""

from .errors import EvalError  # noqa: F401
from .schema import EvalRecipe, eval_recipe_from_dict, load_eval_recipe  # noqa: F401


def run_eval(*args, **kwargs):
    from .runner import run_eval as _run

    return _run(*args, **kwargs)


def training_curves(*args, **kwargs):
    from .plots import training_curves as _tc

    return _tc(*args, **kwargs)
