"""Device-side view generation: the modality's augmentation pipelines, run batched.

A :class:`BatchAugmentation` maps a batch tensor to a batch tensor. A :class:`RandomOp` draws
*per-sample* random parameters from the ``torch.Generator`` it is given (never one draw for the whole
batch), with :func:`uniform` / :func:`bernoulli`, then applies them (torchvision transforms v2's
``make_params`` / ``transform`` behind a final ``forward``).
:class:`ViewMaker` runs ``input`` ops once on the raw batch, one pipeline per view (``branches``),
then ``joint`` ops on all views stacked along the batch dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, cast

import torch
from torch import nn

from .registry import AUGMENTATIONS


class BatchAugmentation(nn.Module):
    """Base class of augmentations: ``forward(x, generator) -> Tensor`` on a whole batch.

    Subclasses that need data-dependent set-up (e.g. normalization statistics) implement
    :meth:`prepare`; stateful ones (e.g. a mixup memory bank) keep their state in buffers or
    ``get_extra_state`` so that it travels with checkpoints.
    """

    eval_frontend: bool = False
    """True when the op is deterministic per sample (its output for a sample depends on neither the
    rest of the batch nor the generator), so it may be part of the encoder's evaluation front end."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, context: "PrepareContext") -> None:
        """Called once before training, after the ops before this one are prepared."""


def uniform(n: int, low: float, high: float, device, generator=None) -> torch.Tensor:
    """``n`` draws of U[low, high) (float32)."""
    return low + (high - low) * torch.rand(n, device=device, generator=generator)


def bernoulli(n: int, p: float, device, generator=None) -> torch.Tensor:
    """``n`` booleans, True with probability ``p``; p = 0 or 1 draws nothing."""
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return torch.rand(n, device=device, generator=generator) < p


class RandomOp(BatchAugmentation):
    """An augmentation whose randomness is drawn per sample, then applied deterministically.

    Subclasses implement :meth:`sample_params` and :meth:`transform` (and, when the draws depend on the
    input, :meth:`make_params`; a stateful op, :meth:`update`); ``forward`` is final, so that
    ``transform(x, sample_params(...))`` is exactly what a pipeline runs.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__}: RandomOp.forward is final; override sample_params / make_params and transform instead"
            )
        if "apply" in cls.__dict__:  # nn.Module.apply(fn) recurses into children: an op must not shadow it
            raise TypeError(
                f"{cls.__name__}: name the deterministic step transform(x, params), not apply (that is nn.Module.apply)"
            )
        if cls.eval_frontend:
            raise TypeError(f"{cls.__name__}: a RandomOp is random per sample, so eval_frontend must be False")

    def sample_params(self, batch_size: int, device, generator=None) -> dict[str, torch.Tensor]:
        """Per-sample parameters for a batch of ``batch_size``, drawn from ``generator``."""
        raise NotImplementedError

    def make_params(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The parameters for batch ``x``: :meth:`sample_params` unless the draws need more of ``x``."""
        return self.sample_params(x.shape[0], x.device, generator)

    def transform(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """``x`` transformed with ``params`` (deterministic, batched)."""
        raise NotImplementedError

    def update(self, x: torch.Tensor) -> None:
        """Called with the op's input after :meth:`transform` (a memory bank records it); nothing by default."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self.transform(x, self.make_params(x, generator))
        self.update(x)
        return out


@dataclass
class PrepareContext:
    """What an op may use to set itself up before training."""

    batches: Callable[[], Iterable[torch.Tensor]]
    """Yields raw training batches already on the device."""
    upstream: Callable[[torch.Tensor], torch.Tensor]
    """Applies the ops that come before this one to a raw batch (no gradient)."""
    device: torch.device
    run_dir: Path | None
    dataset: Any = None


class Pipeline(nn.Module):
    """Ops applied in order."""

    ops: nn.ModuleList

    def __init__(self, ops: list[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x


def build_pipeline(specs: list[dict]) -> Pipeline:
    return Pipeline([AUGMENTATIONS.build(s["name"], **{k: v for k, v in s.items() if k != "name"}) for s in specs])


class ViewMaker(nn.Module):
    """Turns one raw batch into N augmented views (N = number of branches)."""

    input: Pipeline
    branches: nn.ModuleList
    joint: Pipeline

    def __init__(self, input: Pipeline, branches: list[Pipeline], joint: Pipeline):
        super().__init__()
        if not branches:
            raise ValueError("views.branches: at least one view pipeline is needed")
        self.input = input
        self.branches = nn.ModuleList(branches)
        self.joint = joint

    @classmethod
    def from_config(cls, cfg) -> "ViewMaker":
        return cls(build_pipeline(cfg.input), [build_pipeline(b) for b in cfg.branches], build_pipeline(cfg.joint))

    @property
    def num_views(self) -> int:
        return len(self.branches)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        x = self.input(x, generator)
        views = [branch(x, generator) for branch in self.branches]
        if len(self.joint.ops):
            stacked = self.joint(torch.cat(views), generator)
            views = list(stacked.chunk(len(views)))
        return views

    def prepare(self, batches, device: torch.device, run_dir: Path | None = None, dataset=None) -> None:
        """Let every op that needs data-dependent set-up prepare itself, in pipeline order.

        Runs under ``torch.random.fork_rng``: preparing (or loading cached results) never changes the
        random state a run continues with."""

        def upstream_of(prefix: list[nn.Module]):
            def run_prefix(x):
                with torch.no_grad():
                    for op in prefix:
                        x = op(x, None)
                return x

            return run_prefix

        shared: list[nn.Module] = list(self.input.ops)
        after_shared = [*cast(list[Pipeline], list(self.branches)), self.joint]
        stages: list[tuple[list[nn.Module], list[nn.Module]]] = [([], shared)]
        stages += [(shared, list(p.ops)) for p in after_shared]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for prefix, ops in stages:
                done = list(prefix)
                for op in ops:
                    prepare = getattr(op, "prepare", None)
                    if prepare is not None:
                        prepare(PrepareContext(batches, upstream_of(list(done)), device, run_dir, dataset))
                    done.append(op)
