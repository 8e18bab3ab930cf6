"""Exponential moving average of the online network into target networks (BYOL §3.1)."""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_tau(step: int, total_steps: int, tau_base: float) -> float:
    """τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2 (BYOL §3.2); τ_0 = τ_base, τ_K = 1."""
    if total_steps <= 0:
        return tau_base
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def tau_at(step: int, total_steps: int, tau_base: float, schedule: str) -> float:
    if schedule == "cosine":
        return cosine_tau(step, total_steps, tau_base)
    if schedule == "constant":
        return tau_base
    raise ValueError(f"ema.schedule must be 'cosine' or 'constant', got {schedule!r}")


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, tau: float, buffers: str = "copy") -> None:
    """ξ ← τ·ξ + (1−τ)·θ in one fused ``torch._foreach_lerp_`` pass over all parameters.

    Buffers (BatchNorm running statistics) follow the ``buffers`` policy: ``copy`` takes the online
    values, ``ema`` averages floating buffers like parameters; integer buffers (num_batches_tracked)
    are always copied. Runs under no_grad, so it never builds a graph.
    """
    t_params = [p for p in target.parameters()]
    o_params = [p for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online networks have different parameter lists")
    if t_params:
        torch._foreach_lerp_(list[torch.Tensor](t_params), list[torch.Tensor](o_params), 1.0 - tau)
    t_bufs, o_bufs = list(target.buffers()), list(online.buffers())
    floats_t = [t for t, o in zip(t_bufs, o_bufs) if t.is_floating_point()]
    floats_o = [o for t, o in zip(t_bufs, o_bufs) if t.is_floating_point()]
    others_t = [t for t in t_bufs if not t.is_floating_point()]
    others_o = [o for t, o in zip(t_bufs, o_bufs) if not t.is_floating_point()]
    if buffers == "ema" and floats_t:
        torch._foreach_lerp_(floats_t, floats_o, 1.0 - tau)
    elif floats_t:
        torch._foreach_copy_(floats_t, floats_o)
    if others_t:
        torch._foreach_copy_(others_t, others_o)
