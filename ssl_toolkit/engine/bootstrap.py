"""The modality-agnostic bootstrap engine: one online network, K EMA targets, N views.

Online network = encoder → projector → predictor; each target = a copy of encoder → projector
updated by EMA (BYOL, Grill et al. 2020, §3.1). The loss sums, over the method's view pairs
(online view i, target k, target view j), the batch mean of 2 − 2·cos(p_i, sg(z′_kj)) — BYOL's
symmetrized loss (eq. 4) is the pairs (0,0,1) and (1,0,0) SUMMED, not averaged. BYOL, TriBYOL
and SimSiam are configurations of this class; it only ever sees tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ema import ema_update_, tau_at
from .losses import regression_loss

ENCODER_STATE_PREFIX = "online.encoder."
"""Where the online encoder's entries sit in a method's state dict (``BootstrapMethod.encoder``)."""


@dataclass(frozen=True)
class Pair:
    """Online prediction of view ``online_view`` regresses target ``target``'s projection of
    view ``target_view``, with weight ``weight``."""

    online_view: int
    target: int
    target_view: int
    weight: float = 1.0


def collapse_metric(z: torch.Tensor) -> torch.Tensor:
    """Std over the batch of the L2-normalized projections, averaged over dimensions, × √d.

    ≈1 for well spread projections (each dim's std ≈ 1/√d), → 0 under collapse (Chen & He 2021 §4.1).
    """
    zn = F.normalize(z.detach().float(), dim=-1)
    return zn.std(dim=0).mean() * (z.shape[-1] ** 0.5)


class OnlineNetwork(nn.Module):
    def __init__(self, encoder: nn.Module, projector: nn.Module, predictor: nn.Module | None):
        super().__init__()
        self.encoder, self.projector = encoder, projector
        self.predictor = predictor if predictor is not None else nn.Identity()


class TargetNetwork(nn.Module):
    def __init__(self, encoder: nn.Module, projector: nn.Module):
        super().__init__()
        self.encoder, self.projector = encoder, projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


class BootstrapMethod(nn.Module):
    """Online network + K targets + view pairs; ``forward(views)`` returns the loss and diagnostics.

    target_mode:
      ``ema``    — K independent EMA copies (BYOL, TriBYOL);
      ``online`` — the target is the online encoder/projector itself under stop-gradient (SimSiam).
    target_update (K > 1): ``all`` updates every target each step (with ``taus`` per target when
    given), ``alternate`` updates target (step mod K) only, so the targets drift apart (TriBYOL).
    """

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module,
        predictor: nn.Module | None,
        ema,
        pairs: Sequence[Pair],
        num_targets: int = 1,
        target_mode: str = "ema",
        target_update: str = "all",
        taus: Sequence[float] | None = None,
    ):
        super().__init__()
        if target_mode not in ("ema", "online"):
            raise ValueError(f"target_mode must be 'ema' or 'online', got {target_mode!r}")
        if target_update not in ("all", "alternate"):
            raise ValueError(f"target_update must be 'all' or 'alternate', got {target_update!r}")
        if taus is not None and len(taus) != num_targets:
            raise ValueError(f"taus has {len(taus)} values for {num_targets} targets")
        self.online = OnlineNetwork(encoder, projector, predictor)
        self.pairs = list(pairs)
        self.ema, self.target_mode, self.target_update = ema, target_mode, target_update
        self.taus = list(taus) if taus is not None else None
        self.num_views = 1 + max(max(p.online_view, p.target_view) for p in self.pairs)
        if target_mode == "ema":
            if not all(0 <= p.target < num_targets for p in self.pairs):
                raise ValueError(f"pairs name targets outside 0..{num_targets - 1}")
            self.targets = nn.ModuleList(
                TargetNetwork(copy.deepcopy(encoder), copy.deepcopy(projector)) for _ in range(num_targets)
            )
            for p in self.targets.parameters():
                p.requires_grad_(False)
        else:
            self.targets = nn.ModuleList()

    @property
    def encoder(self) -> nn.Module:
        """The online encoder: the representation the run produces."""
        return self.online.encoder

    def forward(self, views: Sequence[torch.Tensor]) -> dict:
        if len(views) < self.num_views:
            raise ValueError(f"this method needs {self.num_views} views, got {len(views)}")
        online_views = sorted({p.online_view for p in self.pairs})
        z_online = {v: self.online.projector(self.online.encoder(views[v])) for v in online_views}
        needed = sorted({(p.target, p.target_view) for p in self.pairs})
        with torch.no_grad():
            if self.target_mode == "ema":
                z_target = {(k, v): self.targets[k](views[v]) for k, v in needed}
            else:
                z_target = {
                    (k, v): (
                        z_online[v] if v in z_online else self.online.projector(self.online.encoder(views[v]))
                    ).detach()
                    for k, v in needed
                }
        # Predictor hook: a predictor with ``observe`` (the closed-form heads of engine/predictors.py)
        # sees every pair's online projection and its regression target before it predicts.
        observe = getattr(self.online.predictor, "observe", None)
        if observe is not None:
            observe(
                [z_online[p.online_view] for p in self.pairs], [z_target[(p.target, p.target_view)] for p in self.pairs]
            )
        p_online = {v: self.online.predictor(z) for v, z in z_online.items()}
        loss = sum(
            p.weight * regression_loss(p_online[p.online_view], z_target[(p.target, p.target_view)]).mean()
            for p in self.pairs
        )
        return {
            "loss": loss,
            "collapse": collapse_metric(z_online[online_views[0]]),
            "projections": z_online,
            "predictions": p_online,
            "target_projections": z_target,
        }

    @torch.no_grad()
    def update_targets(self, step: int, total_steps: int) -> float:
        """EMA step after optimizer step ``step`` (0-based) of ``total_steps``; returns the τ used."""
        tau = tau_at(step, total_steps, self.ema.tau_base, self.ema.schedule)
        if self.target_mode != "ema":
            return tau
        online = TargetNetwork(self.online.encoder, self.online.projector)
        for k, target in enumerate(self.targets):
            if self.target_update == "alternate" and k != step % len(self.targets):
                continue
            if self.taus is not None:
                tau_k = tau_at(step, total_steps, self.taus[k], self.ema.schedule)
            else:
                tau_k = tau
            ema_update_(target, online, tau_k, self.ema.buffers)
        return tau
