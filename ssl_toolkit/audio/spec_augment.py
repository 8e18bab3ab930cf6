"""SpecAugment masking (Park et al. 2019, §2: frequency and time masking) for fine-tuning on log-mel batches.

Per sample, one frequency band of width ``f ~ U{0, ..., freq_mask − 1}`` starting at ``f0 ~ U{0, ..., F − f}``
and one time span of width ``t ~ U{0, ..., time_mask − 1}`` starting at ``t0 ~ U{0, ..., T − t}`` are set to
``value`` (0: the mean after pre_norm), as torchaudio's ``FrequencyMasking`` / ``TimeMasking`` draw them. EVAR's
``finetune.py`` uses those transforms on a whole batch, which draws one mask for all of its samples; here every
sample draws its own.
"""

from __future__ import annotations

import torch

from ..params import Finite, NonNegativeInt
from ..registry import AUGMENTATIONS
from ..views import RandomOp


def _band(n_samples: int, size: int, max_width: int, device, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (start, width) of a mask over ``size`` bins, width < max_width (clipped to size)."""
    width = (torch.rand(n_samples, device=device, generator=generator) * max(max_width, 0)).floor()
    width = width.clamp(max=size).long()
    start = (torch.rand(n_samples, device=device, generator=generator) * (size - width + 1)).floor().long()
    return start, width


@AUGMENTATIONS.register("spec_augment")
class SpecAugment(RandomOp):
    """SpecAugment: one frequency mask (width < freq_mask bins) and one time mask (< time_mask frames) per sample."""

    def __init__(self, freq_mask: NonNegativeInt = 30, time_mask: NonNegativeInt = 100, value: Finite = 0.0):
        super().__init__()
        if freq_mask < 0 or time_mask < 0:
            raise ValueError(f"spec_augment: freq_mask and time_mask must be >= 0, got {freq_mask}, {time_mask}")
        self.freq_mask, self.time_mask, self.value = int(freq_mask), int(time_mask), float(value)

    def make_params(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        f0, fw = _band(x.shape[0], x.shape[-2], self.freq_mask, x.device, generator)
        t0, tw = _band(x.shape[0], x.shape[-1], self.time_mask, x.device, generator)
        return {"f0": f0, "fw": fw, "t0": t0, "tw": tw}

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        f = torch.arange(x.shape[-2], device=x.device)[None, :]
        t = torch.arange(x.shape[-1], device=x.device)[None, :]
        in_f = (f >= params["f0"][:, None]) & (f < (params["f0"] + params["fw"])[:, None])  # (B, F)
        in_t = (t >= params["t0"][:, None]) & (t < (params["t0"] + params["tw"])[:, None])  # (B, T)
        mask = in_f[:, :, None] | in_t[:, None, :]  # (B, F, T)
        mask = mask.view(x.shape[0], *([1] * (x.ndim - 3)), x.shape[-2], x.shape[-1])
        return x.masked_fill(mask, self.value)

    def extra_repr(self) -> str:
        return f"freq_mask={self.freq_mask}, time_mask={self.time_mask}, value={self.value}"
