"""Optimizers (LARS, SGD, Adam, AdamW) and their parameter groups.

LARS (You et al. 2017) as used by BYOL (§3.3/App. C): biases and normalization parameters are
excluded from weight decay and from the trust-ratio adaptation.
"""

from __future__ import annotations

import torch
from torch import nn

from ..params import NonNegativeFloat, PositiveFloat, Rate
from ..registry import OPTIMIZERS


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio η‖w‖/‖g + λw‖ (fused foreach passes).

    Param groups with ``lars_exclude=True`` get neither weight decay nor adaptation.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001
    ):
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, lars_exclude=False
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if not group["lars_exclude"]:
                if group["weight_decay"]:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where(
                    (w_norm > 0) & (g_norm > 0), group["trust_coefficient"] * w_norm / g_norm, torch.ones_like(w_norm)
                )
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            bufs = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss


def is_bias_or_norm(name: str, param: nn.Parameter) -> bool:
    """Biases and normalization weights (every parameter with fewer than 2 dimensions)."""
    return param.ndim < 2


def under(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` lies under module path ``prefix`` (``online.predictor`` holds
    ``online.predictor.0.weight``, not ``online.predictor_extra.weight``)."""
    return name == prefix or name.startswith(prefix + ".")


def param_groups(
    model: nn.Module, weight_decay: float, exclude_bias_and_norm: bool, constant_lr: tuple[str, ...] = ()
) -> list[dict]:
    """The optimizer's parameter groups: weight decay or none (biases and norms, with ``exclude_bias_and_norm``),
    each split into scheduled parameters and those under one of ``constant_lr`` (``scheduled: False``: the step
    keeps them at the base lr). A prefix that names no parameter is an error. Each group lists its parameters'
    names (torch's ``param_names``), so a resume can tell that a group holds other parameters than it did."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    for prefix in constant_lr:
        if not any(under(name, prefix) for name, _ in named):
            heads = sorted({".".join(name.split(".")[:2]) for name, _ in named})
            raise ValueError(
                f"optimizer.constant_lr: {prefix!r} names no trainable parameter; parameter names begin with "
                f"{', '.join(heads)}"
            )
    groups: dict[tuple[bool, bool], list[tuple[str, nn.Parameter]]] = {}
    for name, p in named:
        decayed = not (exclude_bias_and_norm and is_bias_or_norm(name, p))
        scheduled = not any(under(name, prefix) for prefix in constant_lr)
        groups.setdefault((decayed, scheduled), []).append((name, p))
    return [
        {
            "params": [p for _, p in groups.get((decayed, scheduled), [])],
            "param_names": [name for name, _ in groups.get((decayed, scheduled), [])],
            "weight_decay": weight_decay if decayed else 0.0,
            "lars_exclude": not decayed,
            "scheduled": scheduled,
        }
        for decayed, scheduled in ((True, True), (False, True), (True, False), (False, False))
        if (decayed and scheduled) or groups.get((decayed, scheduled))
    ]


@OPTIMIZERS.register("lars")
def lars(
    params,
    lr: PositiveFloat,
    momentum: Rate = 0.9,
    trust_coefficient: PositiveFloat = 0.001,
    weight_decay: NonNegativeFloat = 0.0,
):
    """LARS with momentum; biases/norm parameters excluded from decay and adaptation (BYOL)."""
    return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient)


def _drop_lars_keys(params):
    return [{k: v for k, v in g.items() if k != "lars_exclude"} for g in params]


@OPTIMIZERS.register("sgd")
def sgd(params, lr: PositiveFloat, momentum: Rate = 0.9, nesterov: bool = False, weight_decay: NonNegativeFloat = 0.0):
    """SGD with momentum (torch.optim.SGD)."""
    return torch.optim.SGD(
        _drop_lars_keys(params), lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, foreach=True
    )


@OPTIMIZERS.register("adam")
def adam(
    params,
    lr: PositiveFloat,
    beta1: Rate = 0.9,
    beta2: Rate = 0.999,
    eps: PositiveFloat = 1e-8,
    weight_decay: NonNegativeFloat = 0.0,
):
    """Adam (torch.optim.Adam; weight decay added to the gradient)."""
    return torch.optim.Adam(
        _drop_lars_keys(params), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, foreach=True
    )


@OPTIMIZERS.register("adamw")
def adamw(
    params,
    lr: PositiveFloat,
    beta1: Rate = 0.9,
    beta2: Rate = 0.999,
    eps: PositiveFloat = 1e-8,
    weight_decay: NonNegativeFloat = 0.0,
):
    """AdamW (torch.optim.AdamW; decoupled weight decay)."""
    return torch.optim.AdamW(
        _drop_lars_keys(params), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, foreach=True
    )


def applied_lr(base_lr: float, scaling: str, global_batch: int) -> tuple[float, str]:
    """The learning rate actually used, and the rule that produced it (printed at start)."""
    if scaling == "linear":
        lr = base_lr * global_batch / 256
        return lr, f"lr = {base_lr:g} × {global_batch}/256 = {lr:g} (optimizer.lr_scaling: linear)"
    return base_lr, f"lr = {base_lr:g} (optimizer.lr_scaling: none)"


def build_optimizer(cfg, model: nn.Module, global_batch: int) -> tuple[torch.optim.Optimizer, str]:
    lr, rule = applied_lr(cfg.lr, cfg.lr_scaling, global_batch)
    groups = param_groups(model, cfg.weight_decay, cfg.exclude_bias_and_norm, tuple(cfg.constant_lr))
    opt = OPTIMIZERS.build(cfg.name, groups, lr=lr, **cfg.options)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    return opt, rule
