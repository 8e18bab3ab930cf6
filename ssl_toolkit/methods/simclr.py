"""SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020): a contrastive baseline on the same encoders, heads, views
and trainer as BYOL — no target network, no predictor, gradients through both views.

Loss: NT-Xent (``engine/losses.py``, eq. 1) over the 2N views of a batch, averaged over the 2N anchors — the
paper's normalization; the official code's ``loss_a + loss_b`` is twice it, which changes the gradient scale by 2
(absorbed by the learning rate; LARS's per-layer trust ratio makes the step nearly scale-free anyway). Under DDP the
negatives are the global batch: the projections of every process are gathered with their gradients
(``torch.distributed.nn.functional.all_gather``, whose backward sums each slice's gradients back to its process),
so the DDP-averaged gradient equals the single-process gradient of the global batch (tested); blocks of unequal
size (a rank that left out a bad file) are padded and the padding masked.

Projector (the recipe's ``model.projector``): SimCLR's nonlinear head, Linear → BN → ReLU → Linear with the
hidden width = the encoder's feature dimension and a 128-d output; the official code also batch-normalizes the
output (``last_norm: true``) and drops the last bias. The ``ema`` section is unused (the logged τ is the schedule's).
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


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """(rows of every process concatenated in rank order, this process's first row, which rows are real); without
    DDP ``(x, 0, None)``. Processes may hold different numbers of rows (a rank that skipped a bad file): the sizes
    are exchanged (one small host sync per step, under DDP only) and every block is padded to the largest."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0, None
    from torch.distributed.nn.functional import all_gather

    n = torch.tensor([x.shape[0]], device=x.device)
    gathered = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, n)
    sizes = [int(s) for s in gathered]
    most = max(sizes)
    padded = torch.nn.functional.pad(x, (0, 0, 0, most - x.shape[0]))
    valid = torch.cat([torch.arange(most, device=x.device) < s for s in sizes])
    return torch.cat(all_gather(padded)), dist.get_rank() * most, valid


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
        z1, z2 = (self.online.projector(self.online.encoder(v)) for v in views[:2])
        keys, offset, valid = gather_with_grad(torch.cat([z1, z2]))
        loss = nt_xent_loss(z1, z2, self.temperature, keys, offset, valid)
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
