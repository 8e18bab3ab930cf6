"""The training step: the file to read first.

One optimizer step of a bootstrap method (BYOL, Grill et al. 2020, §3.1 and Algorithm 1): for each
micro-batch, make the views on the device, run the method under autocast (its loss is BYOL eq. 2 summed
over the view pairs, eq. 4) and back-propagate; then set the scheduled learning rate, step the optimizer
and move the targets, ξ ← τξ + (1 − τ)θ. Everything else (data position, logging, checkpoints, signals)
lives in the loop (loop.py) and its hooks (hooks.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
from torch.profiler import record_function

if TYPE_CHECKING:
    from ..engine.build import TrainableMethod
    from ..views import ViewMaker


@dataclass
class Learner:
    """What a step works on: the (possibly DDP/compiled) model, the method it wraps, the view maker,
    the optimizer (param groups carry ``base_lr``), the GradScaler (fp16) and the lr schedule."""

    model: Any
    """The method, or the DistributedDataParallel / torch.compile module around it."""
    method: TrainableMethod
    views: ViewMaker
    optimizer: torch.optim.Optimizer
    lr_factor: Callable[[int], float]
    total_steps: int
    device: torch.device
    generator: torch.Generator
    """Device generator of the views, reseeded per micro-batch by ``seed_of(step, micro)``."""
    seed_of: Callable[[int, int], int]
    scaler: Optional[torch.amp.GradScaler] = None
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    channels_last: bool = False
    distributed: bool = False


@dataclass
class StepOutput:
    loss: torch.Tensor
    """The step's loss (mean over micro-batches), float32 on the device: reading it syncs."""
    collapse: torch.Tensor
    diagnostics: dict
    """The method's other scalar outputs, mean over micro-batches."""
    lr: float
    tau: float
    samples: int


def train_step(learner: Learner, batches: list, step: int) -> StepOutput:
    """One optimizer step over ``batches``, a list of (x, labels or None) micro-batches on any device."""
    L, n = learner, len(batches)
    loss = torch.zeros((), device=L.device)
    diagnostics: dict = {}
    for micro, (x, y) in enumerate(batches):
        with record_function("views"), torch.no_grad():
            L.generator.manual_seed(L.seed_of(step, micro))
            views = L.views(x.to(L.device, non_blocking=True), L.generator)
            if L.channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for v in views]
        sync = L.model.no_sync() if L.distributed and micro + 1 < n else contextlib.nullcontext()
        with sync:
            with record_function("forward"), L.autocast():
                out = L.model(views) if y is None else L.model(views, labels=y.to(L.device))
            with record_function("backward"):
                (L.scaler.scale(out["loss"] / n) if L.scaler is not None else out["loss"] / n).backward()
        loss += out["loss"].detach().float() / n
        for k, v in out.items():
            if k not in ("loss", "collapse") and torch.is_tensor(v) and v.ndim == 0:
                diagnostics[k] = diagnostics.get(k, 0.0) + v.detach().float() / n
    with record_function("optimizer"):
        factor = L.lr_factor(step)
        for group in L.optimizer.param_groups:
            group["lr"] = group["base_lr"] * (factor if group.get("scheduled", True) else 1.0)
        if L.scaler is not None:
            L.scaler.step(L.optimizer)
            L.scaler.update()
        else:
            L.optimizer.step()
        L.optimizer.zero_grad(set_to_none=True)
    with record_function("ema"):
        tau = L.method.update_targets(step, L.total_steps)
    return StepOutput(
        loss, out["collapse"], diagnostics, L.optimizer.param_groups[0]["lr"], tau, sum(x.shape[0] for x, _ in batches)
    )
