"""Imports every built-in component module so that they register themselves."""
from .engine import heads, predictors  # noqa: F401
from . import methods  # noqa: F401
from .training import optim, probe_monitor, rankme, schedules  # noqa: F401
from . import tensors  # noqa: F401
from . import image, audio  # noqa: F401
from . import shards  # noqa: F401
