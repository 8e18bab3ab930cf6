"""Image modality: datasets (folders, CIFAR pickles, .npz), batched augmentations and ResNet encoders."""
from . import augment  # noqa: F401
from . import backbones  # noqa: F401
from . import datasets  # noqa: F401
from . import encoders  # noqa: F401
