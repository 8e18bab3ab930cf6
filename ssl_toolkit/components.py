"""Imports every built-in component module so that they register themselves."""

from . import (  # noqa: F401
    audio,
    image,
    methods,  # noqa: F401
    shards,  # noqa: F401
    tensors,  # noqa: F401
)
from .engine import heads, predictors  # noqa: F401
from .training import optim, probe_monitor, rankme, schedules  # noqa: F401
