"""Closed-form predictor heads: linear predictors p = z·W whose W is *computed* from batch
statistics of the projections instead of trained (no parameters, no gradient into W).

Use one as ``model.predictor`` in a recipe, e.g. ``predictor: {name: directpred}``; it works with any
method built on :class:`~ssl_toolkit.engine.bootstrap.BootstrapMethod` (BYOL, TriBYOL, SimSiam,
CCSL/CSSL), images or audio alike.

How it is fed. ``BootstrapMethod.forward`` calls ``predictor.observe(online, targets)`` once per step,
before predicting, with one (online projection, regression target) pair of (B, d) tensors for each
of the method's view pairs. In training mode the head updates its exponential moving averages

    Σ̂ ← ρ·Σ̂ + (1−ρ)·ZᵀZ/n            (Z: the online projections of all pairs, stacked, n rows)
    Ĉ ← ρ·Ĉ + (1−ρ)·ZᵀZ′/n           (Z′: the matching target projections; ``ne`` only)

(the first observed batch initializes them, so there is no zero-start bias), and every ``freq``-th
step it sets W from them. In eval mode it only applies the current W. Under DDP the batch
statistics are averaged over processes so every replica holds the same W. The gradient reaches the
online projections through p = z·W; W itself is a buffer computed under ``no_grad``.

Variants (``HEADS`` names):

- ``directpred`` (Tian et al., ICML 2021): Σ̂ over raw online projections, Σ̂ = U diag(s) Uᵀ,
  p_j = sqrt(max(s_j, 0)/max_k s_k) + ε, W = U diag(p) Uᵀ. Defaults ρ = 0.3, ε = 0.01, freq = 1.
- ``directcopy`` (Wang et al. 2021): W = Σ̂/‖Σ̂‖_F + α·I, no eigendecomposition. The Frobenius
  normalization (``normalize: true``) is our choice so that α is scale free (DirectPred's ε plays
  the same role after its max-normalization); ``normalize: false`` gives W = Σ̂ + α·I literally.
- Edge of Orthogonality (Richemond et al., ICML 2023), each with a ridge W = P + α·I:
  ``ne`` (first-order Neumann series of the least-squares predictor Σ⁻¹C: P = 2C − ΣC, i.e.
  2·ZᵀZ′ − ZᵀZ·ZᵀZ′ with the 1/n normalizations), ``visser`` (P₀ = I/(2η),
  P ← P + η(Σ − P²), n steps → Σ^{1/2}), ``ns`` (coupled Newton–Schulz, n = 9 → Σ^{1/2}),
  ``ns2`` (Newton–Schulz twice, n = 7 each → Σ^{1/4}) and ``stiefel`` (Newton–Schulz on ΣᵀΣ gives
  B ≈ (ΣᵀΣ)^{-1/2}; P = BΣᵀ/‖B‖_F, the orthogonal polar factor of Σ (a point of the Stiefel
  manifold; the orthogonal projector onto range(Σ) for a PSD Σ) scaled by 1/‖B‖_F).

What the Edge of Orthogonality paper states (main text; its hyper-parameter appendix was not available) and
what we chose where it is silent or differs:

- Σ = ZᵀZ/b of the online latents (Sec. 4.3); no normalization of the latents is stated. Ours L2-normalizes
  them row-wise before Σ and C are formed (``normalize: true``): BYOL's loss compares L2-normalized vectors,
  tr Σ = 1 then puts Σ's spectrum in [0, 1] — the Neumann series of ``ne`` converges only for eigenvalues
  in (0, 2) — and the ridge α means the same thing at every scale. ``normalize: false`` uses raw projections.
- The paper puts an EMA "on the predictor" (rate not given); ours averages the statistics Σ̂, Ĉ (ρ = 0.3).
- The paper scans the ridge α ∈ {0, 0.15, …, 0.9} (100- and 300-epoch tables; best 0.15 for NE, 0.3 for
  Stiefel, 0.6–0.9 for NS²); ours defaults to α = 0.01. Newton–Schulz runs n = 9 steps (NS, Stiefel) and
  2 × 7 (NS²), as in the paper.
- The iterations are scaled to converge: Newton–Schulz runs on A/‖A‖_F and rescales by √‖A‖_F (as the
  paper's NS); Visser runs on Σ/‖Σ‖_F (eigenvalues ≤ 1, with η = 0.5 the fixed point is stable) and rescales by
  √‖Σ‖_F. Defaults: ρ = 0.3 (as DirectPred), α = 0.01, visser n = 20, η = 0.5.
- W starts at the identity (only seen before the first training step, e.g. in eval mode).
- They take no ``out_dim``/``hidden_dim`` (W is square): ``model.predictor.name=ns`` on a recipe with an MLP
  predictor replaces the whole section (:func:`ssl_toolkit.recipe.loading.swaps_component`).
"""

from __future__ import annotations

from typing import Annotated, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..params import NonNegativeFloat, PositiveInt, Range, Rate
from ..registry import HEADS


# ----------------------------------------------------------------------------- matrix functions
def _eye_like(a: torch.Tensor) -> torch.Tensor:
    return torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)


def directpred_weight(corr: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """DirectPred: corr = U diag(s) Uᵀ → U diag(sqrt(max(s,0)/max s) + eps) Uᵀ."""
    s, u = torch.linalg.eigh(corr.double())
    s = s.clamp(min=0)
    top = s.max()
    p = (s / top).sqrt() if top > 0 else torch.zeros_like(s)
    p = p + eps
    return ((u * p) @ u.T).to(corr.dtype)


def directcopy_weight(corr: torch.Tensor, alpha: float = 0.01, normalize: bool = True) -> torch.Tensor:
    """DirectCopy: corr/‖corr‖_F + alpha·I (or corr + alpha·I without normalization)."""
    w = corr
    if normalize:
        w = w / w.norm().clamp(min=1e-12)
    return w + alpha * _eye_like(corr)


def neumann_weight(sigma: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """First-order Neumann approximation of the least-squares predictor Σ⁻¹C: (2I − Σ)C = 2C − ΣC."""
    return 2.0 * cross - sigma @ cross


def newton_schulz(a: torch.Tensor, n: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Coupled Newton–Schulz iteration (Higham 2008, eq. 6.35) for a symmetric PSD ``a``.

    Y₀ = a/c, Z₀ = I with c = ‖a‖_F; T = (3I − Z Y)/2, Y ← Y T, Z ← T Z, n times.
    Returns (√c·Y, Z/√c) ≈ (a^{1/2}, a^{-1/2}); the iteration converges because a/c has its
    eigenvalues in [0, 1]. Eigen-directions with tiny eigenvalues converge last (Y stays near 0,
    Z grows by ≤ 1.5 per step), so a truncated run is a smooth, spectrum-dependent approximation.
    """
    c = a.norm().clamp(min=1e-12)
    eye = _eye_like(a)
    y, z = a / c, eye
    for _ in range(n):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * c.sqrt(), z / c.sqrt()


def ns_sqrt(sigma: torch.Tensor, n: int = 9) -> torch.Tensor:
    """Σ^{1/2} by ``n`` Newton–Schulz steps."""
    return newton_schulz(sigma, n)[0]


def ns2_root(sigma: torch.Tensor, n: int = 7) -> torch.Tensor:
    """Σ^{1/4}: Newton–Schulz square root applied twice, ``n`` steps each."""
    return newton_schulz(newton_schulz(sigma, n)[0], n)[0]


def visser_sqrt(sigma: torch.Tensor, n: int = 20, eta: float = 0.5) -> torch.Tensor:
    """Σ^{1/2} by Visser's iteration on S = Σ/‖Σ‖_F: P₀ = I/(2η), P ← P + η(S − P²); returns √‖Σ‖_F·P.

    In S's eigenbasis each eigenvalue follows p ← p + η(s − p²), whose fixed point √s is stable
    when η√s < 1; with ‖S‖ ≤ 1 any η ≤ 1 qualifies.
    """
    c = sigma.norm().clamp(min=1e-12)
    s = sigma / c
    p = _eye_like(sigma) / (2.0 * eta)
    for _ in range(n):
        p = p + eta * (s - p @ p)
    return p * c.sqrt()


def stiefel_weight(sigma: torch.Tensor, n: int = 9) -> torch.Tensor:
    """B Σᵀ/‖B‖_F with B ≈ (ΣᵀΣ)^{-1/2} from ``n`` Newton–Schulz steps on ΣᵀΣ.

    BΣᵀ is the (transposed) orthogonal polar factor of Σ — the orthogonal projector onto range(Σ)
    for a PSD Σ, the identity for an SPD one. Only the eigenvalues too small for ``n`` steps to
    converge (z grows at most 1.5× per step) are damped. 1/‖B‖_F (≤ λ_min(Σ) once converged) is far
    below the heads' ridge α = 0.01 for L2-normalized projections (about 1e-4 at d = 256), so with
    the ridge the predictor is ≈ α·I, the identity predictor that lets BYOL collapse (docs/variants.md).
    """
    b = newton_schulz(sigma.T @ sigma, n)[1]
    return b @ sigma.T / b.norm().clamp(min=1e-12)


# ----------------------------------------------------------------------------- the heads
class ClosedFormPredictor(nn.Module):
    """Base class: p = z·W with W a buffer set from EMA batch statistics (see the module docstring)."""

    uses_targets = False
    """True when the weight needs the cross-correlation Ĉ with the target projections."""
    weight: torch.Tensor  # buffers (registered in __init__)
    sigma: torch.Tensor
    cross: torch.Tensor
    num_updates: torch.Tensor

    def __init__(self, in_dim: int, rho: float = 0.3, freq: int = 1, normalize: bool = False):
        super().__init__()
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        if freq < 1:
            raise ValueError(f"freq must be >= 1, got {freq}")
        self.in_dim = self.out_dim = int(in_dim)
        self.rho, self.freq, self.normalize = float(rho), int(freq), bool(normalize)
        d = self.in_dim
        self.register_buffer("weight", torch.eye(d))
        self.register_buffer("sigma", torch.zeros(d, d))
        self.register_buffer("cross", torch.zeros(d, d) if self.uses_targets else torch.zeros(0))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"dim={self.in_dim}, rho={self.rho}, freq={self.freq}, normalize={self.normalize}"

    def compute_weight(self) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def observe(self, online: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        """Update the statistics from one step's (online projection, target) pairs; training mode only."""
        if not self.training:
            return
        with torch.autocast(online[0].device.type, enabled=False):  # statistics and iterations in fp32
            self._observe(online, targets)

    def _observe(self, online: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        z = torch.cat([o.detach().float() for o in online])
        if self.normalize:
            z = F.normalize(z, dim=-1)
        stats = [z.T @ z / z.shape[0]]
        if self.uses_targets:
            zt = torch.cat([t.detach().float() for t in targets])
            if self.normalize:
                zt = F.normalize(zt, dim=-1)
            stats.append(z.T @ zt / z.shape[0])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flat = torch.stack(stats)
            torch.distributed.all_reduce(flat)
            stats = list(flat / torch.distributed.get_world_size())
        first = int(self.num_updates) == 0
        keep = 0.0 if first else self.rho
        self.sigma.mul_(keep).add_(stats[0].to(self.sigma.dtype), alpha=1.0 - keep)
        if self.uses_targets:
            self.cross.mul_(keep).add_(stats[1].to(self.cross.dtype), alpha=1.0 - keep)
        if int(self.num_updates) % self.freq == 0:
            self.weight.copy_(self.compute_weight())
        self.num_updates += 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weight.to(z.dtype)


@HEADS.register("directpred")
class DirectPred(ClosedFormPredictor):
    """DirectPred predictor (Tian et al. 2021): W = U diag(sqrt(s/max s) + eps) Uᵀ of the EMA correlation."""

    def __init__(self, in_dim: PositiveInt, rho: Rate = 0.3, eps: NonNegativeFloat = 0.01, freq: PositiveInt = 1):
        super().__init__(in_dim, rho, freq, False)
        self.eps = float(eps)

    def compute_weight(self) -> torch.Tensor:
        return directpred_weight(self.sigma, self.eps)


@HEADS.register("directcopy")
class DirectCopy(ClosedFormPredictor):
    """DirectCopy predictor (Wang et al. 2021): W = F̂/‖F̂‖_F + alpha·I, no eigendecomposition."""

    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, freq, False)
        self.alpha, self.normalize_weight = float(alpha), bool(normalize)

    def compute_weight(self) -> torch.Tensor:
        return directcopy_weight(self.sigma, self.alpha, self.normalize_weight)


class _EdgeOfOrthogonality(ClosedFormPredictor):
    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, freq, normalize)
        self.alpha = float(alpha)

    def closed_form(self) -> torch.Tensor:
        raise NotImplementedError

    def compute_weight(self) -> torch.Tensor:
        p = self.closed_form()
        return p + self.alpha * _eye_like(p)


@HEADS.register("ne")
class NeumannPredictor(_EdgeOfOrthogonality):
    """Edge of Orthogonality 'NE': W = 2C − ΣC + alpha·I (Neumann series of Σ⁻¹C; C from target projections)."""

    uses_targets = True

    def closed_form(self) -> torch.Tensor:
        return neumann_weight(self.sigma, self.cross)


@HEADS.register("visser")
class VisserPredictor(_EdgeOfOrthogonality):
    """Edge of Orthogonality 'Visser': W = Σ^{1/2} (n Visser steps, rate eta) + alpha·I."""

    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        n: PositiveInt = 20,
        eta: Annotated[float, Range("(0, 1]")] = 0.5,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, alpha, freq, normalize)
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {eta}")
        self.n, self.eta = int(n), float(eta)

    def closed_form(self) -> torch.Tensor:
        return visser_sqrt(self.sigma, self.n, self.eta)


@HEADS.register("ns")
class NewtonSchulzPredictor(_EdgeOfOrthogonality):
    """Edge of Orthogonality 'NS': W = Σ^{1/2} (n Newton–Schulz steps) + alpha·I."""

    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        n: PositiveInt = 9,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, alpha, freq, normalize)
        self.n = int(n)

    def closed_form(self) -> torch.Tensor:
        return ns_sqrt(self.sigma, self.n)


@HEADS.register("ns2")
class NewtonSchulz2Predictor(_EdgeOfOrthogonality):
    """Edge of Orthogonality 'NS2': W = Σ^{1/4} (Newton–Schulz twice, n steps each) + alpha·I."""

    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        n: PositiveInt = 7,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, alpha, freq, normalize)
        self.n = int(n)

    def closed_form(self) -> torch.Tensor:
        return ns2_root(self.sigma, self.n)


@HEADS.register("stiefel")
class StiefelPredictor(_EdgeOfOrthogonality):
    """Edge of Orthogonality 'Stiefel' (the paper's Stiefel predictor): W = BΣᵀ/‖B‖_F + alpha·I,
    B = (ΣᵀΣ)^{-1/2} by n Newton–Schulz steps.

    Collapses at the CPU CIFAR recipe: on L2-normalized projections W is ≈ alpha·I (see :func:`stiefel_weight`;
    benchmarks/results/stiefel_diagnostics.md measures the paper's raw latents and ridges).
    """

    def __init__(
        self,
        in_dim: PositiveInt,
        rho: Rate = 0.3,
        alpha: NonNegativeFloat = 0.01,
        n: PositiveInt = 9,
        freq: PositiveInt = 1,
        normalize: bool = True,
    ):
        super().__init__(in_dim, rho, alpha, freq, normalize)
        self.n = int(n)

    def closed_form(self) -> torch.Tensor:
        return stiefel_weight(self.sigma, self.n)


CLOSED_FORM_PREDICTORS = ("directpred", "directcopy", "ne", "visser", "ns", "ns2", "stiefel")
