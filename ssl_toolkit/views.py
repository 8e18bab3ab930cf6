"""Device-side view generation: the modality's augmentation pipelines, run batched.

A :class:`BatchAugmentation` maps a batch tensor to a batch tensor, drawing *per-sample* random
parameters from the ``torch.Generator`` it is given (never one draw for the whole batch).
:class:`ViewMaker` runs ``input`` ops once on the raw batch, one pipeline per view (``branches``),
then ``joint`` ops on all views stacked along the batch dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .registry import AUGMENTATIONS


class BatchAugmentation(nn.Module):
    """Base class of augmentations: ``forward(x, generator) -> Tensor`` on a whole batch.

    Subclasses that need data-dependent set-up (e.g. normalization statistics) implement
    :meth:`prepare`; stateful ones (e.g. a mixup memory bank) keep their state in buffers or
    ``get_extra_state`` so that it travels with checkpoints.

    ``eval_frontend``: True for ops that treat each sample alone and without randomness, so that they are
    part of an encoder's evaluation front end (the weights card) when they stand in ``views.input`` or
    ``views.joint``.
    """

    eval_frontend = False

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, context: "PrepareContext") -> None:
        """Called once before training, after the ops before this one are prepared."""


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
            def apply(x):
                with torch.no_grad():
                    for op in prefix:
                        x = op(x, None)
                return x

            return apply

        shared = list(self.input.ops)
        stages = [([], shared)] + [(shared, list(b.ops)) for b in self.branches] + [(shared, list(self.joint.ops))]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for prefix, ops in stages:
                done = list(prefix)
                for op in ops:
                    if hasattr(op, "prepare"):
                        op.prepare(PrepareContext(batches, upstream_of(list(done)), device, run_dir, dataset))
                    done.append(op)
