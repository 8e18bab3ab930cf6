"""ssl_toolkit: BYOL-family self-supervised learning for images and audio, driven by YAML recipes.

    import ssl_toolkit as sslt
    enc = sslt.load_encoder("runs/demo")     # front end + encoder + card (ssl_toolkit/encoder.py)
    X = enc.embed(["a.wav", "b.wav"])         # (N, feature_dim) numpy

The public names load their modules on first use, so ``import ssl_toolkit`` stays light (no torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load_encoder": "api",
    "train": "api",
    "evaluate": "api",
    "export": "api",
    "Encoder": "encoder",
    "RecipeError": "recipe.errors",
    "EvalError": "eval.errors",
    "TrainingError": "training.loop",
    "CheckpointError": "checkpoint",
    "ExportError": "hub",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ssl_toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
