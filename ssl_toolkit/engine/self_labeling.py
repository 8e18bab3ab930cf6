"""Self-Labeling Refinement (Garg & Jain 2022) on the bootstrap engine: CCSL and CSSL.

Beyond each positive pair, pull together the pairs of the batch that the *target* network sees as
similar. For one view pair of the method (predictions p of view v, target projections z′ of view u),
over the samples i, j of the batch:

    S_ij = cos(p_i, z′_j)                 similarity, with gradient into p only (z′ is a target)
    A_ij = sg(cos(z′_i, z′_j))            affinity, no gradient at all
    CCSL: L_sl = mean over {i ≠ j : A_ij > γ} of (2 − 2 S_ij)        (0 when no pair is selected)
    CSSL: L_sl = Σ_{i≠j} w_ij (2 − 2 S_ij) / Σ_{i≠j} w_ij,   w_ij = σ((A_ij − γ)/T)

CSSL's weights tend to CCSL's 0/1 selection as T → 0, so its weighted mean tends to CCSL's mean.
The total loss is the method's loss + λ(step)·Σ_pairs weight·L_sl, λ ramping linearly from 0 to
``lam`` over the first ``ramp`` fraction of training (the step comes from ``update_targets``, which
the trainer calls after every optimizer step; it is kept in a buffer, so resume is exact).

The paper's exact thresholds are not public; chosen defaults: γ = 0.9 (cosine affinity of target
projections; random-init projections of different inputs are already fairly aligned, so a low γ
would select most of the batch early on), T = 0.05, λ = 0.5, ramp = 0.25.

Diagnostics in the output dict (0-dim tensors): ``sl_lambda``, ``sl_loss`` (un-weighted by λ),
``sl_selected`` (the fraction of off-diagonal pairs selected — CSSL: the mean weight) and, when the
batch labels are passed as ``forward(views, labels=...)``, ``sl_label_agreement``: the (weighted)
fraction of selected pairs whose labels agree, over pairs where both labels are known (≥ 0).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .bootstrap import BootstrapMethod, Pair

MODES = ("ccsl", "cssl")


def pair_weights(affinity: torch.Tensor, mode: str, gamma: float, temperature: float = 0.05) -> torch.Tensor:
    """(B, B) weights of the off-diagonal pairs: CCSL 1[A > γ], CSSL σ((A − γ)/T); the diagonal is 0."""
    off = ~torch.eye(affinity.shape[0], dtype=torch.bool, device=affinity.device)
    if mode == "ccsl":
        w = (affinity > gamma).float()
    elif mode == "cssl":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        w = torch.sigmoid((affinity - gamma) / temperature)
    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return w * off


def self_labeling_loss(
    p: torch.Tensor,
    z_target: torch.Tensor,
    mode: str,
    gamma: float,
    temperature: float = 0.05,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The refinement term for one view pair and its diagnostics (see the module docstring)."""
    with torch.autocast(p.device.type, enabled=False):  # fp32 similarities (the threshold is sharp)
        pn = F.normalize(p.float(), dim=-1, eps=1e-12)
        zn = F.normalize(z_target.detach().float(), dim=-1, eps=1e-12)
        sim = pn @ zn.T  # S_ij = cos(p_i, z'_j)
        with torch.no_grad():
            affinity = zn @ zn.T  # A_ij = cos(z'_i, z'_j)
            w = pair_weights(affinity, mode, gamma, temperature)
    total = w.sum()
    loss = (w * (2.0 - 2.0 * sim)).sum() / total.clamp(min=1e-12)
    b = p.shape[0]
    diag = {"sl_selected": (total / max(b * (b - 1), 1)).detach()}
    if labels is not None:
        with torch.no_grad():
            y = labels.to(w.device).view(-1)
            known = y >= 0
            both = (known[:, None] & known[None, :]).float()
            agree = (y[:, None] == y[None, :]).float()
            wk = w * both
            n = wk.sum()  # NaN when no selected pair has two known labels
            diag["sl_label_agreement"] = torch.where(
                n > 0, (wk * agree).sum() / n.clamp(min=1e-12), torch.full_like(n, float("nan"))
            )
            diag["sl_labeled_selected"] = n
    return loss, diag


class SelfLabelingMethod(BootstrapMethod):
    """A bootstrap method (BYOL pairs by default) plus the CCSL/CSSL refinement term."""

    accepts_labels = True
    """``forward(views, labels=...)`` takes the batch labels (for the label-agreement diagnostic only)."""

    def __init__(
        self,
        encoder,
        projector,
        predictor,
        ema,
        pairs: Sequence[Pair],
        mode: str = "ccsl",
        lam: float = 0.5,
        gamma: float = 0.9,
        temperature: float = 0.05,
        ramp: float = 0.25,
        **kw,
    ):
        super().__init__(encoder, projector, predictor, ema, pairs, **kw)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0.0 <= ramp <= 1.0:
            raise ValueError(f"ramp must be a fraction of training in [0, 1], got {ramp}")
        self.mode, self.lam, self.gamma = mode, float(lam), float(gamma)
        self.temperature, self.ramp = float(temperature), float(ramp)
        self.steps_done: torch.Tensor
        self.total_steps: torch.Tensor
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.long))

    def lam_at(self, step: int, total_steps: int) -> float:
        """λ after ``step`` optimizer steps of ``total_steps``: lam·min(1, step/(ramp·total))."""
        if self.ramp == 0.0:
            return self.lam
        if total_steps <= 0:
            return 0.0
        return self.lam * min(1.0, step / (self.ramp * total_steps))

    def forward(self, views: Sequence[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(views)
        lam = self.lam_at(int(self.steps_done), int(self.total_steps))
        preds, targets = out["predictions"], out["target_projections"]
        sl = torch.zeros((), device=out["loss"].device)
        diags: dict[str, list[torch.Tensor]] = {}
        for pair in self.pairs:
            term, d = self_labeling_loss(
                preds[pair.online_view],
                targets[(pair.target, pair.target_view)],
                self.mode,
                self.gamma,
                self.temperature,
                labels,
            )
            sl = sl + pair.weight * term
            for k, v in d.items():
                diags.setdefault(k, []).append(v)
        out["loss"] = out["loss"] + lam * sl
        out["sl_loss"] = sl.detach()
        out["sl_lambda"] = torch.tensor(lam)
        out["sl_selected"] = torch.stack(diags["sl_selected"]).mean()
        if "sl_label_agreement" in diags:
            counts = torch.stack(diags.pop("sl_labeled_selected"))
            agree = torch.stack(diags["sl_label_agreement"])
            n = counts.sum()  # NaN when no selected pair has two known labels
            out["sl_label_agreement"] = torch.where(
                n > 0, (agree.nan_to_num() * counts).sum() / n.clamp(min=1e-12), torch.full_like(n, float("nan"))
            )
        return out

    @torch.no_grad()
    def update_targets(self, step: int, total_steps: int) -> float:
        self.steps_done.fill_(step + 1)
        self.total_steps.fill_(total_steps)
        return super().update_targets(step, total_steps)
