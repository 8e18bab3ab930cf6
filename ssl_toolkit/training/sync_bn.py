"""Batch normalization with statistics over the global batch of all DDP processes.

``nn.SyncBatchNorm`` only runs on GPUs; this module gives the same result on any device with
any backend (gloo on CPU included) through differentiable ``torch.distributed`` all-reduces:
two passes (mean, then variance) over the global batch, as a single-process BatchNorm would.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

# Its suggested replacement has no autograd; this one's backward all-reduces the gradients.
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_reduce is deprecated")


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([xf.numel() / xf.shape[1]], dtype=torch.float32, device=x.device)
        total = dist_fn.all_reduce(torch.cat([xf.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        var = dist_fn.all_reduce(((xf - mean.view(shape)) ** 2).sum(dims)) / n
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if self.track_running_stats and tracked is not None and running_mean is not None and running_var is not None:
            with torch.no_grad():
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                running_mean.lerp_(mean.detach().to(running_mean.dtype), m)
                running_var.lerp_((var.detach() * n / (n - 1)).to(running_var.dtype), m)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:  # a norm without γ or β (make_norm(scale / shift=False)) has none
            y = y + self.bias.view(shape)
        return y.to(x.dtype)


def convert_to_global_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm*d by GlobalBatchNorm (weights and statistics kept)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        for name in ("weight", "bias"):  # γ or β left out (make_norm(scale=False) / make_norm(shift=False))
            if module.affine and getattr(module, name) is None:
                new.register_parameter(name, None)
        new.load_state_dict(module.state_dict())
        for p_new, p_old in zip(new.parameters(), module.parameters()):
            p_new.requires_grad_(p_old.requires_grad)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_to_global_bn(child))
    return module
