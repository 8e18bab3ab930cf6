"""Encoders from other libraries: ``timm`` (any timm model) and ``torchvision`` (any torchvision classification
model), with the classifier removed so that ``forward`` returns pooled features of size ``feature_dim``.

- ``{name: timm, model: vit_small_patch16_224, options: {drop_path_rate: 0.1}}``: ``timm.create_model(model,
  num_classes=0, in_chans=in_chans, **options)``. timm is an optional extra: ``pip install -e .[timm]``.
- ``{name: torchvision, model: resnet50}``: ``torchvision.models.get_model(model, weights=None, **options)`` with
  its last ``nn.Linear`` (the classifier) replaced by ``nn.Identity``.

Nothing is ever downloaded: the networks start from random weights, or from a local file named by
``pretrained_path`` (timm) or ``weights_path`` (torchvision): a ``.safetensors`` file or a ``torch.save`` state dict
(possibly under a ``state_dict`` or ``model`` key, or an ``encoder.pt`` of this toolkit). The classifier's keys in
the file are dropped; every other key must fit exactly. The wrapped network is the submodule ``net`` (state-dict
keys ``net.*``). Both libraries are imported only when such an encoder is built (start-up cost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint, load_encoder_safetensors, state_dict_mismatch
from ..params import FilePath, PositiveInt
from ..quoting import short_repr
from ..registry import ENCODERS, did_you_mean

TIMM_RESERVED = (
    "pretrained",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "checkpoint_path",
    "cache_dir",
    "num_classes",
    "in_chans",
)
"""timm.create_model arguments the encoder sets itself (no download, no classifier, its own in_chans)."""
TORCHVISION_RESERVED = ("weights", "num_classes")


class LibraryEncoder(nn.Module):
    """A library network without its classifier: ``forward`` gives (B, feature_dim) pooled features."""

    modality = "image"

    def __init__(self, net: nn.Module, feature_dim: int):
        super().__init__()
        self.net, self.feature_dim = net, int(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}"


def _options(options, who: str, reserved: tuple[str, ...], hint: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(
            f"encoder '{who}': options must be a mapping of keyword arguments for the model, got {short_repr(options)}"
        )
    for key in reserved:
        if key in options:
            raise ValueError(f"encoder '{who}': options.{key} is not accepted: {hint}")
    return dict(options)


def read_state_dict(path: str, who: str) -> dict[str, torch.Tensor]:
    """The state dict in a local ``.safetensors`` or ``torch.save`` file (unwrapped from ``state_dict``/``model``
    keys and from this toolkit's ``net.`` prefix); a ValueError naming the file otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"encoder '{who}': weights file not found: {p}")
    try:  # the checkpoint module's readers: weights_only, truncated/foreign files named
        state = load_encoder_safetensors(p)[0] if p.suffix == ".safetensors" else load_checkpoint(p)
    except CheckpointError as e:
        raise ValueError(f"encoder '{who}': cannot read weights file {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise ValueError(f"encoder '{who}': {p} holds no state dict (expected a mapping of names to tensors)")
    if all(k.startswith("net.") for k in state):
        state = {k[len("net.") :]: v for k, v in state.items()}
    return state


def load_weights(net: nn.Module, path: str, classifier: tuple[str, ...], who: str) -> None:
    """Load ``path`` into ``net`` strictly, after dropping the keys of the ``classifier`` modules."""
    prefixes = tuple(f"{c}." for c in classifier)
    state = {k: v for k, v in read_state_dict(path, who).items() if not k.startswith(prefixes)}
    problem = state_dict_mismatch(net.state_dict(), state)
    if problem:
        raise ValueError(f"encoder '{who}': {Path(path).expanduser()} does not fit the model: {problem}")
    if not torch.empty(0).is_meta:  # built under torch.device("meta") for its shapes only: nothing to copy into
        net.load_state_dict(state)


@ENCODERS.register("timm")
def timm_encoder(
    model: str = "resnet50",
    pretrained_path: Optional[FilePath] = None,
    in_chans: PositiveInt = 3,
    options: Optional[dict] = None,
) -> LibraryEncoder:
    """Any timm model (resnet50, vit_small_patch16_224, ...) without classifier; weights only from a local file."""
    try:
        import timm
    except ImportError:
        raise ValueError("encoder 'timm' needs the timm package: pip install -e .[timm]") from None
    kwargs = _options(
        options,
        "timm",
        TIMM_RESERVED,
        "the encoder sets it (nothing is downloaded, the classifier "
        "is removed, in_chans is its own parameter); give local weights in pretrained_path",
    )
    if not timm.is_model(model):
        raise ValueError(
            f"encoder 'timm': unknown model {model!r}{did_you_mean(model, timm.list_models())} "
            "(timm.list_models() lists them)"
        )
    try:
        net: Any = timm.create_model(model, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"encoder 'timm': cannot build {model!r} with options {kwargs}: {e}") from None
    if pretrained_path is not None:
        classifier = net.pretrained_cfg.get("classifier") or ()
        load_weights(net, pretrained_path, (classifier,) if isinstance(classifier, str) else tuple(classifier), "timm")
    # timm ≥ 1.0: head_hidden_size is the pre-logits width (a head MLP or conv may follow the trunk's features)
    return LibraryEncoder(net, getattr(net, "head_hidden_size", None) or net.num_features)


timm_encoder.init_only = ("pretrained_path",)  # where the first weights come from: not part of the weights card


@ENCODERS.register("torchvision")
def torchvision_encoder(
    model: str = "resnet50", weights_path: Optional[FilePath] = None, options: Optional[dict] = None
) -> LibraryEncoder:
    """Any torchvision classification model (resnet50, vit_b_16, ...) without classifier; local weights only."""
    import torchvision.models as models

    kwargs = _options(
        options,
        "torchvision",
        TORCHVISION_RESERVED,
        "the encoder sets it (weights=None: nothing is "
        "downloaded, the classifier is removed); give local weights in weights_path",
    )
    known = models.list_models(module=models)
    if model not in known:
        raise ValueError(
            f"encoder 'torchvision': unknown classification model {model!r}{did_you_mean(model, known)} "
            "(torchvision.models.list_models(module=torchvision.models) lists them)"
        )
    try:
        net = models.get_model(model, weights=None, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"encoder 'torchvision': cannot build {model!r} with options {kwargs}: {e}") from None
    linears = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"encoder 'torchvision': model {model!r} has no nn.Linear classifier to remove")
    name, classifier = linears[-1]
    net.set_submodule(name, nn.Identity())
    if weights_path is not None:
        load_weights(net, weights_path, (name,), "torchvision")
    return LibraryEncoder(net, classifier.in_features)


torchvision_encoder.init_only = ("weights_path",)
