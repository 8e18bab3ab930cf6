"""Image modality: datasets (folders, CIFAR pickles, .npz), batched augmentations and ResNet encoders."""

from . import (
    augment,  # noqa: F401
    backbones,  # noqa: F401
    datasets,  # noqa: F401
    encoders,  # noqa: F401
)
