"""RankMe (Garrido et al., ICML 2023, eq. 1): a label-free quality signal of a representation, logged while
training.

RankMe(Z) = exp(−Σ_k p_k log p_k), p_k = σ_k / ‖σ‖₁ + ε, over the singular values σ of an N × D embedding
matrix Z (ε = 1e-7, the paper's). It lies in [1, min(N, D)]: 1 for a rank-1 (collapsed) matrix, D for
orthonormal columns. It depends on the pool size N: with N < D it cannot exceed N, and a larger pool resolves
more of the spectrum's tail, so compare values measured with the same ``pool``.

The :class:`RankMeMonitor` hook (``trainer.hooks: [{name: rankme, every: 100, pool: 512}]``) embeds a fixed pool
of un-augmented training items (the first ``pool`` items of a seeded permutation, through the views' front-end
ops: uint8→float / log-mel → pre_norm, normalize) with the online encoder and projector in eval mode and logs
``rankme`` and ``rankme_proj`` at the first log step at or past every multiple of ``every`` and at the last step,
with the values of the random init measured before step 0 (``rankme_init``, ``rankme_proj_init``) for scale. It draws
no random number and changes no weight or buffer, so training is bit-identical with it on or off; under DDP only rank 0
computes.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from ..data import collate_skipping_bad
from ..params import PositiveInt, Range
from ..registry import HOOKS
from .hooks import Monitor

EPS = 1e-7


def rankme(z: torch.Tensor, eps: float = EPS) -> float:
    """RankMe of an (N, D) embedding matrix (computed in float64)."""
    if z.ndim != 2 or min(z.shape) == 0:
        raise ValueError(f"rankme needs a non-empty (N, D) matrix, got shape {tuple(z.shape)}")
    s = torch.linalg.svdvals(z.detach().double())
    p = s / s.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def online_features(run, items: torch.Tensor, frontend: list, batch_size: int, projector: bool = False):
    """(features, projections or None), float32 on the CPU, of a batch of raw items through the views' eval
    front end ops and the online encoder (and projector) in eval mode under the run's autocast; the modules'
    train/eval modes are restored after. Shared by the monitors."""
    method, device = run.learner.method, run.learner.device
    modules = (method.encoder, method.online.projector) if projector else (method.encoder,)
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        feats, projs = [], []
        for chunk in items.split(batch_size):
            h = chunk.to(device)
            for op in frontend:
                h = op(h, None)
            if run.learner.channels_last and h.ndim == 4:
                h = h.contiguous(memory_format=torch.channels_last)
            with run.learner.autocast():
                f = method.encoder(h)
                if projector:
                    projs.append(method.online.projector(f).float().cpu())
            feats.append(f.float().cpu())
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
    return torch.cat(feats), (torch.cat(projs) if projector else None)


@HOOKS.register("rankme")
class RankMeMonitor(Monitor):
    """RankMe of the online encoder's features and of the projector's output on a fixed pool of training items,
    at the first log step at or past each multiple of ``every``."""

    order = 40
    label = "rankme"

    def __init__(
        self, every: PositiveInt = 100, pool: Annotated[int, Range("[2, inf)")] = 512, batch_size: PositiveInt = 128
    ):
        super().__init__()
        for name, v in (("every", every), ("pool", pool), ("batch_size", batch_size)):
            if int(v) < 1:
                raise ValueError(f"rankme: {name} must be >= 1, got {v}")
        self.every, self.pool_size, self.batch_size = int(every), int(pool), int(batch_size)
        self.next_at = self.every

    def state_dict(self) -> dict:
        return {"init": self.init, "next_at": self.next_at}

    def load_state_dict(self, state: dict) -> None:
        self.init, self.next_at = dict(state.get("init", {})), int(state.get("next_at", self.every))

    def on_start(self, run):
        super().on_start(run)
        if not run.is_main:
            return
        dataset = run.dataset
        if hasattr(dataset, "ordered_items"):  # a shard stream: its first items in stored order
            items = [it for _, it in zip(range(self.pool_size), dataset.ordered_items())]
        else:
            order = np.random.default_rng(run.recipe.seed).permutation(len(dataset))
            items = [dataset[int(i)] for i in order[: min(self.pool_size, len(dataset))]]
        x, _, bad = collate_skipping_bad(items)
        if x is None or x.shape[0] < 2:
            raise ValueError(f"rankme: the pool of {len(items)} training items has fewer than 2 usable items")
        self.items = x
        views = run.learner.views
        self.frontend = [op for op in (*views.input.ops, *views.joint.ops) if op.eval_frontend]
        if not self.init:
            self.init = self.timed_measure(run)
            run.log(
                f"rankme at random init: features {self.init['rankme']:.1f}, projections "
                f"{self.init['rankme_proj']:.1f} (pool {x.shape[0]})"
            )

    def measure(self, run) -> dict:
        feats, projs = online_features(run, self.items, self.frontend, self.batch_size, projector=True)
        return {"rankme": rankme(feats), "rankme_proj": rankme(projs)}

    def due(self, run) -> bool:
        return run.pos.step >= self.next_at

    def advance(self, run) -> None:
        self.next_at = (run.pos.step // self.every + 1) * self.every
