"""SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020): a contrastive baseline on the same encoders, heads, views
and trainer as BYOL — no target network, no predictor, gradients through both views.

Loss: NT-Xent (``engine/losses.py``, eq. 1) over the 2N views of a batch, averaged over the 2N anchors — the
paper's normalization (Algorithm 1). The official code's ``loss_a + loss_b`` is twice it: its gradient is twice
ours, so against the same weight decay λ its steps are those of ours with λ/2 (SGD: g + λw ∝ 2g + 2λw; LARS, whose
step follows the direction of g + λw, alike). Our recipes therefore halve the official weight decay (CIFAR-10: 1e-4
→ 5e-5). Under DDP the negatives are the global batch: the projections of every process are gathered with their
gradients (``torch.distributed.nn.functional.all_gather``, whose backward sums each slice's gradients back to its
process), so the DDP-averaged gradient equals the single-process gradient of the global batch (tested); blocks of
unequal size (a rank that left out a bad file) are padded, the padding masked and each process's mean weighted by
its share of the anchors. With ``trainer.grad_accum_steps`` > 1 the negatives are those of each micro-batch.

Both views pass the encoder and projector as one batch of 2N, so BatchNorm's statistics cover all 2N views, as in
the official code (and, with ``trainer.sync_batchnorm``, the global batch: SimCLR's global BN). Projector (the
recipe's ``model.projector``): SimCLR's nonlinear head, Linear → BN → ReLU → Linear → BN with the hidden width =
the encoder's feature dimension and a 128-d output; the last layer has neither bias nor BN offset
(``last_bias: false``, ``last_norm_shift: false``: the official ``center=False``), its BN keeps the
scale. The ``ema`` section is unused (the logged τ is the schedule's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..engine.bootstrap import OnlineNetwork, collapse_metric
from ..engine.ema import tau_at
from ..engine.losses import nt_xent_loss
from ..params import PositiveFloat
from ..registry import METHODS


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor | None, float]:
    """(rows of every process concatenated in rank order, this process's first row, which rows are real, the
    weight of this process's mean loss); without DDP ``(x, 0, None, 1.0)``. Processes may hold different numbers
    of rows (a rank that skipped a bad file): the sizes are exchanged (one small host sync per step, under DDP
    only), every block is padded to the largest, and the weight W·n_r / Σn makes DDP's average of the processes'
    means the mean over every anchor of the global batch (1 when the blocks are equal)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0, None, 1.0
    from torch.distributed.nn.functional import all_gather

    n = torch.tensor([x.shape[0]], device=x.device)
    gathered = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, n)
    sizes = [int(s) for s in gathered]
    most = max(sizes)
    padded = torch.nn.functional.pad(x, (0, 0, 0, most - x.shape[0]))
    valid = torch.cat([torch.arange(most, device=x.device) < s for s in sizes])
    weight = len(sizes) * x.shape[0] / sum(sizes)
    return torch.cat(all_gather(padded)), dist.get_rank() * most, valid, weight


class SimCLR(nn.Module):
    """Encoder → projector on two views; NT-Xent over the (global) batch."""

    num_views = 2

    def __init__(self, encoder: nn.Module, projector: nn.Module, ema, temperature: float):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"simclr: temperature must be > 0, got {temperature}")
        self.online = OnlineNetwork(encoder, projector, None)
        self.ema, self.temperature = ema, float(temperature)
        self.targets = nn.ModuleList()  # no target network

    @property
    def encoder(self) -> nn.Module:
        return self.online.encoder

    def forward(self, views) -> dict[str, Any]:
        if len(views) < 2:
            raise ValueError(f"simclr needs 2 views, got {len(views)}")
        if views[0].shape != views[1].shape:
            raise ValueError(
                "simclr encodes its 2 views as one batch (BatchNorm statistics over all 2N views, as SimCLR); "
                f"they must have one shape, got {tuple(views[0].shape)} and {tuple(views[1].shape)}"
            )
        z = self.online.projector(self.online.encoder(torch.cat(views[:2])))  # rows [view 1; view 2]
        z1, z2 = z.chunk(2)
        keys, offset, valid, weight = gather_with_grad(z)
        loss = weight * nt_xent_loss(z1, z2, self.temperature, keys, offset, valid)
        return {"loss": loss, "collapse": collapse_metric(z1), "projections": {0: z1, 1: z2}}

    @torch.no_grad()
    def update_targets(self, step: int, total_steps: int) -> float:
        return tau_at(step, total_steps, self.ema.tau_base, self.ema.schedule)


@METHODS.register("simclr")
def simclr(encoder, projector, predictor, ema, temperature: PositiveFloat = 0.5) -> SimCLR:
    """SimCLR: NT-Xent over the 2N views (global batch under DDP), temperature T; no target, no predictor."""
    if predictor is not None:
        raise ValueError("simclr has no predictor: set model.predictor: null")
    return SimCLR(encoder, projector, ema, temperature)
