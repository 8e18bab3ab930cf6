"""The training recipe's schema: one dataclass per section, and :class:`Component` for
``{name: <registered name>, <param>: <value>, ...}`` sections.

Field metadata ``registry`` names the registry a component is looked up in, ``supplied`` the
parameters the trainer passes itself (a recipe may not set them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Optional

from ..params import Reference


class Component(dict):
    """A recipe section ``{name: <registered name>, <param>: <value>, ...}``."""

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.items() if k != "name"}


def ranged(default: Any, interval: str, **metadata) -> Any:
    """A field whose value must lie in ``interval`` (``[1, inf)``, ``(0, inf)``, ``[0, 1]``); None passes when the
    field is Optional."""
    return dataclasses.field(default=default, metadata={"range": interval, **metadata})


@dataclasses.dataclass
class DataConfig:
    dataset: Component = dataclasses.field(metadata={"registry": "datasets"})
    batch_size: int = ranged(256, "[1, inf)")
    """Per-process batch size (the global batch is batch_size × world size × grad_accum_steps)."""
    num_workers: int = ranged(0, "[0, inf)")
    shuffle: bool = True
    drop_last: bool = True
    pin_memory: bool = True
    prefetch_factor: Optional[int] = ranged(None, "[1, inf)")


@dataclasses.dataclass
class ViewsConfig:
    """Device-side, batched view generation: ``input`` ops once on the raw batch, one ``branches``
    pipeline per view, then ``joint`` ops on all views stacked along the batch."""

    branches: list[list[Component]] = dataclasses.field(metadata={"registry": "augmentations"})
    input: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "augmentations"})
    joint: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "augmentations"})


@dataclasses.dataclass
class ModelConfig:
    encoder: Component = dataclasses.field(metadata={"registry": "encoders", "supplied": ()})
    projector: Component = dataclasses.field(metadata={"registry": "heads", "supplied": ("in_dim",)})
    predictor: Optional[Component] = dataclasses.field(
        default=None, metadata={"registry": "heads", "supplied": ("in_dim",)}
    )
    init_from: Optional[str] = dataclasses.field(default=None, metadata={"reference": Reference("path")})
    """Weights for the online encoder before step 0 (the targets start as copies; optimizer and schedule are
    fresh): official BYOL-A v1/v2 files, an encoder.pt / .safetensors, a run dir or checkpoint, a torchvision
    state dict. The run's recipe.yaml records the resolved path and init_sha256. Ignored on resume."""
    init_strict: bool = True
    """false: load the tensors whose names and shapes match, log the others (instead of an error)."""
    init_sha256: Optional[str] = None
    """The sha256 of init_from's file: written by the trainer; when a recipe sets it, the file must match."""


@dataclasses.dataclass
class EmaConfig:
    """Target update ξ ← τξ + (1−τ)θ (BYOL eq. 1 context);
    cosine: τ_k = 1 − (1−τ_base)(cos(πk/K)+1)/2."""

    tau_base: float = ranged(0.996, "[0, 1]")
    schedule: Literal["cosine", "constant"] = "cosine"
    buffers: Literal["copy", "ema"] = "copy"


@dataclasses.dataclass
class OptimizerConfig:
    name: str
    lr: float = dataclasses.field(metadata={"range": "(0, inf)"})
    """Base learning rate; the applied rate is lr × global_batch/256 when lr_scaling is 'linear'."""
    lr_scaling: Literal["none", "linear"] = "none"
    weight_decay: float = ranged(0.0, "[0, inf)")
    exclude_bias_and_norm: bool = True
    """Biases and normalization parameters get no weight decay (nor LARS adaptation)."""
    constant_lr: list[str] = dataclasses.field(default_factory=list)
    """Parameters whose names begin with one of these (e.g. ``online.predictor``) keep the base lr at every step,
    outside the schedule's warmup and decay (SimSiam's predictor: §4.2, Table 1, the official ``--fix-pred-lr``)."""
    options: dict = dataclasses.field(default_factory=dict)
    """Optimizer-specific keyword arguments (momentum, betas, trust_coefficient, ...)."""


@dataclasses.dataclass
class TrainerConfig:
    epochs: int = ranged(100, "[1, inf)")
    max_steps: Optional[int] = ranged(None, "[1, inf)")
    """Optional cap on optimizer steps; when set it overrides epochs."""
    max_minutes: Optional[float] = ranged(None, "[0, inf)")
    """Optional wall-clock budget of this process: at the first log step past it the run ends as a finished
    run (last.pt + encoder.pt). The lr/τ schedules still span epochs/max_steps: size those to the budget."""
    log_every: int = ranged(10, "[1, inf)")
    checkpoint_every: int = ranged(1000, "[1, inf)")
    keep_checkpoints: int = ranged(3, "[0, inf)")
    grad_accum_steps: int = ranged(1, "[1, inf)")
    channels_last: bool = False
    compile: bool = False
    sync_batchnorm: bool = False
    collapse_threshold: float = ranged(0.25, "[0, inf)")
    """Warn when the projection std × √d falls below this (≈1 healthy, →0 collapsed)."""
    progress: bool = True
    tensorboard: bool = True
    hooks: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "hooks"})
    """Extra hooks (ssl_toolkit/training/hooks.py), each ``{name: registered hook, param: value}``."""


@dataclasses.dataclass
class Recipe:
    name: str
    data: DataConfig
    views: ViewsConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    method: Component = dataclasses.field(
        default_factory=lambda: Component(name="byol"),
        metadata={"registry": "methods", "supplied": ("encoder", "projector", "predictor", "ema")},
    )
    schedule: Component = dataclasses.field(
        default_factory=lambda: Component(name="warmup_cosine"),
        metadata={"registry": "schedules", "supplied": ("total_steps", "steps_per_epoch")},
    )
    ema: EmaConfig = dataclasses.field(default_factory=EmaConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: int = 0
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    out_dir: Optional[str] = None
    """Run directory; default runs/<name>-<timestamp>."""
    imports: list[str] = dataclasses.field(default_factory=list)
    """Python modules to import first, so that their components register themselves."""
    description: str = ""

    def to_dict(self) -> dict:
        return to_plain(self)


def schema_defaults(cls: type = Recipe, prefix: str = "") -> dict[str, Any]:
    """Every schema key that has a plain default, dotted (``optimizer.constant_lr`` → ``[]``), in the form
    ``to_dict`` writes; nested sections recurse, component defaults (``method: {name: byol}``) are left out."""
    import typing

    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key, kind = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            out.update(schema_defaults(kind, key + "."))
        elif f.default is not dataclasses.MISSING:
            out[key] = to_plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if not isinstance(value, Component):
                out[key] = to_plain(value)
    return out


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
