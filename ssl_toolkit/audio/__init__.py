"""Audio modality: BYOL-A v1/v2 (Niizumi et al.) — datasets, log-mel front ends, batched
augmentations and the AudioNTT encoders. Importing this package registers them all."""

from . import augment, dataset, encoders, frontend, spec_augment, stats  # noqa: F401  (registration)
from .augment import (  # noqa: F401
    LogMel,
    Mixup,
    PostNorm,
    PreNorm,
    RandomLinearFader,
    RandomResizeCrop,
    log_mixup_exp,
    normalize_batch,
)
from .dataset import AudioFolder, load_audio  # noqa: F401
from .encoders import AudioNTT2020, AudioNTT2022, load_official_weights  # noqa: F401
from .recipe_stats import compute_stats  # noqa: F401
