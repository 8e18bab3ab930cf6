"""Losses of the BYOL family."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL eq. 2, per sample: ‖p̄ − z̄‖² = 2 − 2·cos(p, z), with z detached (stop-gradient).

    Returns a (B,) tensor; callers average over the batch and SUM over view pairs (eq. 4).
    """
    return 2.0 - 2.0 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1, eps=1e-12)


def nt_xent_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    keys: torch.Tensor | None = None,
    offset: int = 0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, §2.1, eq. 1), averaged over the 2N anchors of a batch of N pairs:

        ℓ(i, j) = −log exp(sim(z_i, z_j)/T) / Σ_{k≠i} exp(sim(z_i, z_k)/T)
        L = 1/(2N) Σ_k [ℓ(2k−1, 2k) + ℓ(2k, 2k−1)]

    with sim the cosine similarity. The anchors are this process's views ``[z1; z2]`` (2N rows, row i's positive is
    row (i + N) mod 2N); the candidates ``keys`` default to the same rows — under DDP the 2N·W rows of every process,
    gathered with gradients, this process's at ``offset`` — so every anchor is contrasted with the other 2(N·W − 1)
    views of the global batch; ``valid`` (one bool per key) leaves out padding rows. Computed in float32 whatever
    the autocast (bf16 similarities over a temperature of 0.1 would step by 0.06 in the logits). The official code
    returns ``loss_a + loss_b``, twice this mean."""
    n2 = z1.shape[0] + z2.shape[0]
    if z1.shape[0] == 0 or z1.shape[0] != z2.shape[0]:
        raise ValueError(f"nt_xent_loss: two views of the same N items are needed, got {z1.shape[0]} and {z2.shape[0]}")
    with torch.autocast(z1.device.type, enabled=False):
        anchors = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
        keys = anchors if keys is None else F.normalize(keys.float(), dim=-1)
        logits = anchors @ keys.T / temperature
        rows = torch.arange(n2, device=logits.device)
        logits[rows, rows + offset] = float("-inf")  # an anchor is not its own negative (k ≠ i)
        if valid is not None:
            logits = logits.masked_fill(~valid[None, :], float("-inf"))
        positives = (rows + n2 // 2) % n2 + offset
        return F.cross_entropy(logits, positives)
