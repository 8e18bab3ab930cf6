"""Recipes: YAML loading (safe), ``base:`` inheritance, ``a.b=c`` overrides and typed validation.

Every error is a :class:`RecipeError` that names the file the key came from, the key path and
what was expected, with a did-you-mean for misspelled keys and component names.

Parts: :mod:`.loading` (files → one merged tree), :mod:`.schema` (the training recipe's dataclasses),
:mod:`.validation` (tree → dataclasses), :mod:`.errors`; :func:`load_recipe` chains them.
"""

from __future__ import annotations

import os
from typing import Sequence

from ..registry import ALL_REGISTRIES, RegistryError, did_you_mean
from .errors import RecipeError  # noqa: F401
from .loading import (  # noqa: F401
    COMMAND_LINE,
    Origins,
    apply_override,
    deep_merge,
    expand_path,
    load_resolved_tree,
    load_tree,
    parse_override,
)
from .schema import (  # noqa: F401
    Component,
    DataConfig,
    EmaConfig,
    ModelConfig,
    OptimizerConfig,
    Recipe,
    TrainerConfig,
    ViewsConfig,
    to_plain,
)
from .validation import Validator, import_components, import_tree_components, validate  # noqa: F401


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = (), check_files: bool = True) -> Recipe:
    """Load, inherit, override and validate a training recipe. Every parameter that names a file, a folder or
    another recipe is checked to exist (and to be of the right kind) unless ``check_files`` is False."""
    tree, origins = load_resolved_tree(path, overrides)
    import_tree_components(tree, origins)
    validator = Validator(origins, tree, check_files)
    recipe = validator.dataclass(Recipe, tree, ())
    _check_optimizer(recipe, validator)
    validator.check_references()
    return recipe


def _check_optimizer(recipe: Recipe, validator: Validator) -> None:
    """``optimizer.name`` must be registered and ``optimizer.options`` must be its parameters, each within
    its declared values."""
    registry = ALL_REGISTRIES["optimizers"]
    try:
        entry = registry.get(recipe.optimizer.name)
    except RegistryError as e:
        validator.fail(("optimizer", "name"), str(e))
    generic = {"params", "lr", "weight_decay"}
    choices = [p for p in entry.parameters() if p not in generic]
    for key in recipe.optimizer.options:
        if key not in choices:
            hint = " (set it as optimizer.weight_decay / optimizer.lr)" if key in generic else ""
            validator.fail(
                ("optimizer", "options", key),
                f"optimizer '{entry.name}' has no option '{key}'{did_you_mean(key, choices)}{hint}; "
                f"it takes: {', '.join(choices) or 'nothing'}",
            )
    hints = entry.hints()
    for key, value in recipe.optimizer.options.items():
        if key in hints:
            recipe.optimizer.options[key] = validator.parameter(hints[key], value, ("optimizer", "options", key))
