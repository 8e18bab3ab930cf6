"""BYOL-A view generation on log-mel batches, run on the training device.

Every op maps a batch ``(B, 1, F, T)`` (``log_mel``: waves ``(B, T)``) to a batch, drawing its
random parameters per sample from the given ``torch.Generator``. Random ops are
:class:`~ssl_toolkit.views.RandomOp`: ``sample_params(batch_size, device, generator)`` and
``transform(x, params)``, so that tests can feed known parameters. Pipelines (Niizumi et al.,
BYOL-A v1 IJCNN 2021 / v2 TASLP 2023):

    input:    log_mel → pre_norm
    branches: mixup(0.4) → random_resize_crop                       (v1)
              mixup(0.2) → random_resize_crop → random_linear_fader  (v2)
    joint:    post_norm

Mixup memory bank: each ``mixup`` instance (one per view) owns a FIFO bank of past *unmixed*
inputs. Both views receive the same input batch, so the two banks hold the same clips; the
official code instead lets one module instance serve both views, which stores every clip twice
in a single bank. Keeping one bank per view means ``n_memory`` counts distinct past clips and
each view draws its mixing partner independently, at the price of twice the bank memory
(2 × 2048 × 64 × 96 × 4 B ≈ 100 MB). The bank, its write pointer and fill count travel with
checkpoints through ``get_extra_state``; a fresh instance's ``load_state_dict`` accepts them.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal, Sequence

import torch

from ..params import Finite, NonNegativeFloat, Pair, PositiveFloat, PositiveInt, Probability
from ..registry import AUGMENTATIONS, FRONTENDS
from ..views import BatchAugmentation, PrepareContext, RandomOp, uniform
from .stats import load_or_compute

log = logging.getLogger("ssl_toolkit.audio")

EPS = torch.finfo(torch.float32).eps


# ----------------------------------------------------------------------------- front end
@AUGMENTATIONS.register("log_mel")
class LogMel(BatchAugmentation):
    """Waveforms (B, T) → log-mel spectrograms (B, 1, n_mels, frames) with a registered front end."""

    eval_frontend = True

    def __init__(
        self,
        frontend: Literal["nnaudio_mel", "torchaudio_mel"] = "nnaudio_mel",
        sample_rate: PositiveInt = 16000,
        n_fft: PositiveInt = 1024,
        win_length: PositiveInt = 1024,
        hop_length: PositiveInt = 160,
        n_mels: PositiveInt = 64,
        f_min: NonNegativeFloat = 60.0,
        f_max: PositiveFloat = 7800.0,
    ):
        super().__init__()
        self.mel = FRONTENDS.build(
            frontend,
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        self.sample_rate = sample_rate

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mel(x)

    def prepare(self, context: PrepareContext) -> None:
        rate = getattr(context.dataset, "sample_rate", None)
        if rate is not None and int(rate) != int(self.sample_rate):
            raise ValueError(
                f"views log_mel: sample_rate={self.sample_rate} but the dataset delivers {rate} Hz "
                f"audio; set both to the same rate (data.dataset.sample_rate)"
            )


# ----------------------------------------------------------------------------- normalization
@AUGMENTATIONS.register("pre_norm")
class PreNorm(BatchAugmentation):
    """Normalize with dataset statistics: (x − mean) / std, computed once over training log-mels.

    Without ``mean``/``std`` in the recipe, ``prepare`` loads cached statistics or computes them
    over up to ``n_stats`` training segments (after the ops before this one) and stores them next
    to the dataset (``<root>/.ssl_toolkit/``), or in the run directory when that is not writable;
    ``stats_file`` names an explicit JSON file instead. The values are buffers, so they are part
    of every checkpoint.
    """

    eval_frontend = True
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Finite | None = None,
        std: PositiveFloat | None = None,
        n_stats: PositiveInt = 10000,
        stats_file: str | None = None,
    ):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("pre_norm: give both mean and std, or neither (to compute them)")
        if std is not None and not std > 0:
            raise ValueError(f"pre_norm: std must be > 0, got {std}")
        self.fixed = mean is not None
        self.n_stats, self.stats_file = int(n_stats), stats_file
        self.force = False
        self.stats: dict | None = {"mean": mean, "std": std, "source": "recipe"} if self.fixed else None
        self.register_buffer("mean", torch.tensor(float("nan") if mean is None else float(mean)))
        self.register_buffer("std", torch.tensor(float("nan") if std is None else float(std)))

    @property
    def ready(self) -> bool:
        return bool(torch.isfinite(self.mean)) and bool(torch.isfinite(self.std))

    def prepare(self, context: PrepareContext) -> None:
        if self.fixed or (self.ready and not self.force):
            return
        self.stats = load_or_compute(context, self.n_stats, self.stats_file, force=self.force)
        self.mean.fill_(self.stats["mean"])
        self.std.fill_(self.stats["std"])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.ready:
            raise RuntimeError(
                "pre_norm has no statistics: set mean/std in the recipe, run the trainer (which "
                "prepares them) or `ssl-toolkit stats RECIPE`"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={float(self.mean):.6g}, std={float(self.std):.6g}"


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std over every axis but the channel axis 1; unbiased std clamped at float32 eps."""
    dims = [d for d in range(x.ndim) if d != 1]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp(EPS, torch.finfo(torch.float32).max)
    return (x - mean) / std


@AUGMENTATIONS.register("post_norm")
class PostNorm(BatchAugmentation):
    """Normalize the whole batch over (batch, freq, time) (BYOL-A post-normalization; views.joint)."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return normalize_batch(x)


# ----------------------------------------------------------------------------- mixup
def log_mixup_exp(x: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """log((1 − α)·exp(x) + α·exp(z) + eps): mixing in the linear-power domain of log-mels.

    ``alpha`` is a float or one value per sample (B,)."""
    if torch.is_tensor(alpha) and alpha.ndim == 1:
        alpha = alpha.view(-1, *([1] * (x.ndim - 1)))
    return torch.log((1.0 - alpha) * x.exp() + alpha * z.exp() + EPS)


@AUGMENTATIONS.register("mixup")
class Mixup(RandomOp):
    """Log-mixup-exp with a random past input from a FIFO memory bank (BYOL-A); α ~ U[0, ratio) per sample."""

    def __init__(self, ratio: Probability = 0.4, n_memory: PositiveInt = 2048, log_mixup_exp: bool = True):
        super().__init__()
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"mixup ratio must be in [0, 1], got {ratio}")
        if n_memory < 1:
            raise ValueError(f"mixup n_memory must be >= 1, got {n_memory}")
        self.ratio, self.n_memory, self.log_mixup_exp = float(ratio), int(n_memory), bool(log_mixup_exp)
        self.bank: torch.Tensor | None = None
        self.count = 0  # filled entries
        self.ptr = 0  # next slot to write

    # ---- state that travels with checkpoints
    def get_extra_state(self) -> dict:
        bank = self.bank if self.bank is not None else torch.zeros(0)
        return {"bank": bank, "count": int(self.count), "ptr": int(self.ptr), "n_memory": self.n_memory}

    def set_extra_state(self, state: dict) -> None:
        bank, count = state["bank"], int(state["count"])
        if count == 0 or bank.numel() == 0:
            self.bank, self.count, self.ptr = None, 0, 0
            return
        if int(state.get("n_memory", bank.shape[0])) != self.n_memory:
            # a different capacity: keep the newest entries that fit, in FIFO order
            order = (torch.arange(count) + (int(state["ptr"]) - count)) % bank.shape[0]
            bank = bank[order.to(bank.device)][-self.n_memory :]
            count = bank.shape[0]
            full = torch.zeros((self.n_memory, *bank.shape[1:]), dtype=bank.dtype, device=bank.device)
            full[:count] = bank
            self.bank, self.count, self.ptr = full, count, count % self.n_memory
            return
        self.bank, self.count, self.ptr = bank.clone(), count, int(state["ptr"])

    def _apply(self, fn, *args, **kwargs):  # .to(device) / .cuda() move the bank too
        out = super()._apply(fn, *args, **kwargs)
        if self.bank is not None:
            self.bank = fn(self.bank)
        return out

    def reset(self) -> None:
        self.bank, self.count, self.ptr = None, 0, 0

    def push(self, x: torch.Tensor) -> None:
        """Append a batch of unmixed inputs to the FIFO bank (oldest entries are overwritten)."""
        x = x.detach().float()
        if self.bank is None or self.bank.shape[1:] != x.shape[1:]:
            if self.bank is not None:
                log.warning(
                    "mixup: input shape changed from %s to %s; the memory bank starts afresh",
                    tuple(self.bank.shape[1:]),
                    tuple(x.shape[1:]),
                )
            self.bank = torch.zeros((self.n_memory, *x.shape[1:]), dtype=torch.float32, device=x.device)
            self.count, self.ptr = 0, 0
        if self.bank.device != x.device:
            self.bank = self.bank.to(x.device)
        b = x.shape[0]
        if b >= self.n_memory:
            self.bank.copy_(x[-self.n_memory :])
            self.ptr, self.count = 0, self.n_memory
            return
        slots = (self.ptr + torch.arange(b, device=x.device)) % self.n_memory
        self.bank[slots] = x
        self.ptr = (self.ptr + b) % self.n_memory
        self.count = min(self.count + b, self.n_memory)

    # ---- sampling / applying
    def sample_params(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        alpha = uniform(batch_size, 0.0, self.ratio, device, generator)
        u = torch.rand(batch_size, device=device, generator=generator)
        index = (u * self.count).long().clamp(0, max(self.count - 1, 0))
        return {"alpha": alpha, "index": index}

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Mix ``x`` with ``params['partner']`` if given, else with bank entries ``params['index']``."""
        z = params.get("partner")
        if z is None:
            if self.count == 0 or self.bank is None:
                return x  # empty bank (first batch): nothing to mix with yet
            z = self.bank.to(x.device)[params["index"]]
        alpha = params["alpha"].to(x.dtype)
        if self.log_mixup_exp:
            return log_mixup_exp(x, z, alpha)
        a = alpha.view(-1, *([1] * (x.ndim - 1)))
        return (1.0 - a) * x + a * z

    def update(self, x: torch.Tensor) -> None:
        self.push(x)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, n_memory={self.n_memory}, log_mixup_exp={self.log_mixup_exp}, filled={self.count}"


# ----------------------------------------------------------------------------- random resize crop
def _cubic_weights(t: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Keys cubic-convolution weights of the 4 taps at offsets −1, 0, 1, 2 for fractions ``t`` (…, 4)."""

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)


def bicubic_crop_matrix(
    start: torch.Tensor, length: torch.Tensor, out_size: int, in_size: int, offset: int
) -> torch.Tensor:
    """(B, out_size, in_size) matrices M with M @ signal = bicubic resize (align_corners=True) of the
    crop [start, start+length) of a zero canvas on which the signal of ``in_size`` samples sits at
    ``offset``. Taps past the crop's ends repeat its edge samples, as F.interpolate does."""
    device = start.device
    length_f = length.to(torch.float32)
    scale = (length_f - 1) / (out_size - 1) if out_size > 1 else torch.zeros_like(length_f)
    src = torch.arange(out_size, device=device, dtype=torch.float32)[None, :] * scale[:, None]  # (B, out)
    base = src.floor()
    t = src - base
    taps = base.long()[..., None] + torch.arange(-1, 3, device=device)  # (B, out, 4)
    taps = torch.minimum(taps.clamp(min=0), (length - 1)[:, None, None])
    pos = taps + start[:, None, None] - offset  # position in the input signal
    valid = (pos >= 0) & (pos < in_size)
    w = _cubic_weights(t) * valid
    m = torch.zeros((start.shape[0], out_size, in_size), device=device, dtype=torch.float32)
    return m.scatter_add_(2, pos.clamp(0, in_size - 1), w)


@AUGMENTATIONS.register("random_resize_crop")
class RandomResizeCrop(RandomOp):
    """Random crop of a (F, 1.5·T) zero canvas holding the input centred in time, bicubic-resized back (BYOL-A)."""

    def __init__(
        self,
        virtual_crop_scale: Annotated[Sequence[float], Pair("[1, inf)")] = (1.0, 1.5),
        freq_scale: Annotated[Sequence[float], Pair("(0, inf)")] = (0.6, 1.5),
        time_scale: Annotated[Sequence[float], Pair("(0, inf)")] = (0.6, 1.5),
    ):
        super().__init__()
        for name, v in (
            ("virtual_crop_scale", virtual_crop_scale),
            ("freq_scale", freq_scale),
            ("time_scale", time_scale),
        ):
            if len(v) != 2 or not all(isinstance(e, (int, float)) and e > 0 for e in v):
                raise ValueError(f"random_resize_crop {name} must be two positive numbers, got {v!r}")
        self.virtual_crop_scale = (float(virtual_crop_scale[0]), float(virtual_crop_scale[1]))
        self.freq_scale = (float(freq_scale[0]), float(freq_scale[1]))
        self.time_scale = (float(time_scale[0]), float(time_scale[1]))

    def sample_params(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        """Unit-free draws; :meth:`crop_boxes` turns them into rows/columns for a given input size."""
        return {
            "freq_scale": uniform(batch_size, *self.freq_scale, device, generator),
            "time_scale": uniform(batch_size, *self.time_scale, device, generator),
            "i_u": torch.rand(batch_size, device=device, generator=generator),
            "j_u": torch.rand(batch_size, device=device, generator=generator),
        }

    def canvas(self, f: int, t: int) -> tuple[int, int]:
        return int(f * self.virtual_crop_scale[0]), int(t * self.virtual_crop_scale[1])

    def crop_boxes(self, params: dict, f: int, t: int) -> tuple[torch.Tensor, ...]:
        """(i, j, h, w) per sample on the canvas: h = clip(int(freq_scale·F), 1, canvas_h), likewise w;
        i, j uniform over every position where the crop fits."""
        if "h" in params:
            return params["i"].long(), params["j"].long(), params["h"].long(), params["w"].long()
        ch, cw = self.canvas(f, t)
        h = (params["freq_scale"] * f).floor().long().clamp(1, ch)
        w = (params["time_scale"] * t).floor().long().clamp(1, cw)
        i = torch.minimum((params["i_u"] * (ch - h + 1)).floor().long(), ch - h)
        j = torch.minimum((params["j_u"] * (cw - w + 1)).floor().long(), cw - w)
        return i, j, h, w

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Crop per sample with ``params`` (draws, or explicit canvas boxes ``i, j, h, w``) and resize back."""
        f, t = x.shape[-2:]
        ch, cw = self.canvas(f, t)
        i, j, h, w = (v.to(x.device) for v in self.crop_boxes(params, f, t))
        rows = bicubic_crop_matrix(i, h, f, f, (ch - f) // 2)  # (B, F, F)
        cols = bicubic_crop_matrix(j, w, t, t, (cw - t) // 2)  # (B, T, T)
        shape = (x.shape[0],) + (1,) * (x.ndim - 3)
        rows, cols = rows.view(*shape, f, f), cols.view(*shape, t, t)
        return rows @ x.float() @ cols.transpose(-1, -2)

    def extra_repr(self) -> str:
        return (
            f"virtual_crop_scale={self.virtual_crop_scale}, freq_scale={self.freq_scale}, time_scale={self.time_scale}"
        )


# ----------------------------------------------------------------------------- linear fader
@AUGMENTATIONS.register("random_linear_fader")
class RandomLinearFader(RandomOp):
    """Add a linear ramp over time from head to tail, both ~ U(−gain, gain) per sample (BYOL-A v2)."""

    def __init__(self, gain: NonNegativeFloat = 1.0):
        super().__init__()
        if gain < 0:
            raise ValueError(f"random_linear_fader gain must be >= 0, got {gain}")
        self.gain = float(gain)

    def sample_params(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        return {
            "head": uniform(batch_size, -self.gain, self.gain, device, generator),
            "tail": uniform(batch_size, -self.gain, self.gain, device, generator),
        }

    def transform(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        t = x.shape[-1]
        head = params["head"].to(x.device, x.dtype)[:, None]
        tail = params["tail"].to(x.device, x.dtype)[:, None]
        pos = torch.linspace(0.0, 1.0, t, device=x.device, dtype=x.dtype)[None, :]
        ramp = head + (tail - head) * pos  # (B, T)
        return x + ramp.view(x.shape[0], *([1] * (x.ndim - 2)), t)

    def extra_repr(self) -> str:
        return f"gain={self.gain}"
