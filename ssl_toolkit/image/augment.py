"""Image augmentations for view generation: batched, on the device, per-sample random parameters.

Each random op is a :class:`~ssl_toolkit.views.RandomOp`: ``sample_params(batch_size, device,
generator)`` (one draw per sample) and ``transform(x, params)`` (deterministic, batched). Nothing loops
over samples in Python, and no draw is shared by the batch: every image gets its own crop box, flip,
jitter factors and order, blur sigma...

BYOL's views (Grill et al. 2020, Table 6) chain: random_resized_crop → horizontal_flip →
color_jitter(0.4, 0.4, 0.2, 0.1, p=0.8) → grayscale(p=0.2) → gaussian_blur(p=1.0 | 0.1) →
solarize(p=0.0 | 0.2), then normalize.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Sequence

import torch

from ..params import NonNegativeFloat, Pair, PositiveInt, Probability, Range
from ..registry import AUGMENTATIONS
from ..views import BatchAugmentation, RandomOp, bernoulli, uniform
from . import functional as IF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(v, name: str) -> tuple[float, float]:
    if isinstance(v, (int, float)):
        return float(v), float(v)
    try:
        a, b = (float(t) for t in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a [low, high] pair, got {v!r}") from None
    if a > b:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {v!r}")
    return a, b


def _check_p(p: float, name: str = "p") -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return p


def _check_float(x: torch.Tensor, op: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{op} expects float images in [0, 1], got {x.dtype}; put {{name: to_float}} in views.input")


# ----------------------------------------------------------------------------- deterministic ops
@AUGMENTATIONS.register("to_float")
class ToFloat(BatchAugmentation):
    """uint8 images → float32 in [0, 1] (views.input); float input passes through unchanged."""

    eval_frontend = True

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.is_floating_point():
            return x.float()
        if x.dtype != torch.uint8:
            raise TypeError(f"to_float expects uint8 images, got {x.dtype}")
        return x.float().div_(255.0)


@AUGMENTATIONS.register("normalize")
class Normalize(BatchAugmentation):
    """Per-channel (x − mean) / std (defaults: ImageNet statistics)."""

    eval_frontend = True
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"normalize: mean and std need one value per channel and std > 0, got {mean}, {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_float(x, "normalize")
        if x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"normalize has {self.mean.shape[1]} channel statistics, images have {x.shape[1]} channels"
            )
        return (x - self.mean.to(x)) / self.std.to(x)


# ----------------------------------------------------------------------------- geometry
@AUGMENTATIONS.register("random_resized_crop")
class RandomResizedCrop(RandomOp):
    """Random crop of random area and aspect ratio, resized (torchvision's sampling rule, per sample).

    Boxes follow ``torchvision.transforms.RandomResizedCrop.get_params``: up to 10 tries of
    area ∈ U(scale)·H·W and log-aspect ∈ U(log ratio), the first box that fits wins, else the
    central crop with the ratio clamped. Resampling matches ``F.interpolate`` (antialias by default,
    as torchvision v2).
    """

    TRIES = 10

    def __init__(
        self,
        size: PositiveInt = 224,
        scale: Annotated[Sequence[float], Pair("(0, 1]")] = (0.08, 1.0),
        ratio: Annotated[Sequence[float], Pair("(0, inf)")] = (3 / 4, 4 / 3),
        interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear",
        antialias: bool = True,
    ):
        super().__init__()
        if isinstance(size, int):
            self.size = (size, size)
        else:
            self.size = tuple(int(s) for s in size)
            if len(self.size) != 2:
                raise ValueError(f"random_resized_crop: size must be an int or [height, width], got {size!r}")
        self.scale = _pair(scale, "random_resized_crop.scale")
        self.ratio = _pair(ratio, "random_resized_crop.ratio")
        if not (0 < self.scale[0] <= self.scale[1]) or not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(
                f"random_resized_crop: scale and ratio must be positive increasing pairs, "
                f"got {self.scale}, {self.ratio}"
            )
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(
                f"random_resized_crop: interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}"
            )
        self.interpolation, self.antialias = interpolation, bool(antialias)

    def sample_params(self, batch_size: int, device, generator=None, image_size=None) -> dict[str, torch.Tensor]:
        if image_size is None:
            raise ValueError("random_resized_crop.sample_params needs image_size=(height, width)")
        H, W = int(image_size[0]), int(image_size[1])
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        u = torch.rand(batch_size, self.TRIES, 2, device=device, generator=generator, dtype=dtype)
        area = H * W * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0])
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + (hi - lo) * u[..., 1])
        w = torch.round(torch.sqrt(area * aspect))
        h = torch.round(torch.sqrt(area / aspect))
        ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
        first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first box that fits
        found = ok.any(dim=1)
        w = w.gather(1, first).squeeze(1)
        h = h.gather(1, first).squeeze(1)
        # torchvision's fallback: the whole image with the aspect ratio clamped into `ratio`, centred
        in_ratio = W / H
        if in_ratio < self.ratio[0]:
            fw, fh = W, int(round(W / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fw, fh = int(round(H * self.ratio[1])), H
        else:
            fw, fh = W, H
        w = torch.where(found, w, torch.full_like(w, fw))
        h = torch.where(found, h, torch.full_like(h, fh))
        v = torch.rand(batch_size, 2, device=device, generator=generator, dtype=dtype)
        top = torch.minimum(torch.floor(v[:, 0] * (H - h + 1)), H - h)
        left = torch.minimum(torch.floor(v[:, 1] * (W - w + 1)), W - w)
        top = torch.where(found, top, torch.full_like(top, (H - fh) // 2))
        left = torch.where(found, left, torch.full_like(left, (W - fw) // 2))
        return {"top": top.long(), "left": left.long(), "height": h.long(), "width": w.long()}

    def transform(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        _check_float(x, "random_resized_crop")
        return IF.resized_crop(
            x,
            params["top"],
            params["left"],
            params["height"],
            params["width"],
            self.size,
            self.interpolation,
            self.antialias,
        )

    def make_params(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return self.sample_params(x.shape[0], x.device, generator, image_size=x.shape[-2:])


@AUGMENTATIONS.register("horizontal_flip")
class HorizontalFlip(RandomOp):
    """Mirror left-right with probability p, independently per sample."""

    def __init__(self, p: Probability = 0.5):
        super().__init__()
        self.p = _check_p(p)

    def sample_params(self, batch_size, device, generator=None):
        return {"flip": bernoulli(batch_size, self.p, device, generator)}

    def transform(self, x, params):
        return IF.hflip(x, params["flip"])


# ----------------------------------------------------------------------------- colour
def _jitter_range(value, name: str, center: float = 1.0, bound: tuple = (0.0, math.inf)):
    """torchvision's convention: a number v means [center − v, center + v] (clipped), a pair is used as is;
    returns None when the range is the identity (the op is then skipped)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"color_jitter.{name} must be non-negative, got {value}")
        lo, hi = center - float(value), center + float(value)
        lo = max(lo, bound[0])
    else:
        lo, hi = _pair(value, f"color_jitter.{name}")
    if not (bound[0] <= lo <= hi <= bound[1]):
        raise ValueError(f"color_jitter.{name} range [{lo}, {hi}] must lie within {list(bound)}")
    return None if lo == hi == center else (lo, hi)


@AUGMENTATIONS.register("color_jitter")
class ColorJitter(RandomOp):
    """Brightness, contrast, saturation and hue jitter in a random order per sample, applied with prob. p."""

    OPS = ("brightness", "contrast", "saturation", "hue")

    def __init__(
        self,
        brightness: NonNegativeFloat = 0.4,
        contrast: NonNegativeFloat = 0.4,
        saturation: NonNegativeFloat = 0.2,
        hue: Annotated[float, Range("[0, 0.5]")] = 0.1,
        p: Probability = 0.8,
    ):
        super().__init__()
        self.ranges = {
            "brightness": _jitter_range(brightness, "brightness"),
            "contrast": _jitter_range(contrast, "contrast"),
            "saturation": _jitter_range(saturation, "saturation"),
            "hue": _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5)),
        }
        self.p = _check_p(p)

    def sample_params(self, batch_size, device, generator=None):
        params = {"apply": bernoulli(batch_size, self.p, device, generator)}
        for name in self.OPS:
            rng = self.ranges[name]
            identity = 0.0 if name == "hue" else 1.0
            params[name] = (
                torch.full((batch_size,), identity, device=device)
                if rng is None
                else uniform(batch_size, rng[0], rng[1], device, generator)
            )
        # a random permutation of the four ops per sample (order[b, k] = op applied k-th)
        params["order"] = torch.rand(batch_size, 4, device=device, generator=generator).argsort(dim=1)
        return params

    def transform(self, x, params):
        _check_float(x, "color_jitter")
        active = [k for k, name in enumerate(self.OPS) if self.ranges[name] is not None]
        selected = params["apply"].bool()
        if not active or not bool(selected.any()):
            return x
        order = params["order"]
        out = x.clone()  # one working copy; each (stage, op) group is updated in place
        for stage in range(4):
            for k in active:
                idx = (selected & (order[:, stage] == k)).nonzero().squeeze(1)
                if idx.numel():
                    factors = params[self.OPS[k]].index_select(0, idx)
                    fn = getattr(IF, f"adjust_{self.OPS[k]}")
                    out.index_copy_(0, idx, fn(out.index_select(0, idx), factors))
        return out


@AUGMENTATIONS.register("grayscale")
class RandomGrayscale(RandomOp):
    """Convert to grayscale (kept as 3 equal channels) with probability p per sample."""

    def __init__(self, p: Probability = 0.2):
        super().__init__()
        self.p = _check_p(p)

    def sample_params(self, batch_size, device, generator=None):
        return {"apply": bernoulli(batch_size, self.p, device, generator)}

    def transform(self, x, params):
        _check_float(x, "grayscale")
        return IF.apply_to(x, params["apply"].bool(), lambda t: IF.grayscale(t).expand_as(t).contiguous())


@AUGMENTATIONS.register("gaussian_blur")
class GaussianBlur(RandomOp):
    """Gaussian blur with sigma ~ U(sigma) per sample, prob. p; kernel ≈ 10% of the side when unset."""

    def __init__(
        self,
        p: Probability = 0.5,
        sigma: Annotated[Sequence[float], Pair("(0, inf)")] = (0.1, 2.0),
        kernel_size: Optional[PositiveInt] = None,
    ):
        super().__init__()
        self.p = _check_p(p)
        self.sigma = _pair(sigma, "gaussian_blur.sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"gaussian_blur.sigma must be positive, got {sigma!r}")
        if kernel_size is not None and (int(kernel_size) < 1 or int(kernel_size) % 2 == 0):
            raise ValueError(f"gaussian_blur.kernel_size must be a positive odd integer, got {kernel_size}")
        self.kernel_size = None if kernel_size is None else int(kernel_size)

    def kernel_for(self, x: torch.Tensor) -> int:
        if self.kernel_size is not None:
            return self.kernel_size
        return IF.default_blur_kernel(min(x.shape[-2:]))

    def sample_params(self, batch_size, device, generator=None):
        return {
            "apply": bernoulli(batch_size, self.p, device, generator),
            "sigma": uniform(batch_size, self.sigma[0], self.sigma[1], device, generator),
        }

    def transform(self, x, params):
        _check_float(x, "gaussian_blur")
        k = self.kernel_for(x)
        return IF.apply_to(x, params["apply"].bool(), lambda t, s: IF.gaussian_blur(t, s, k), params["sigma"])


@AUGMENTATIONS.register("solarize")
class RandomSolarize(RandomOp):
    """Invert the pixels at or above the threshold (x ↦ 1 − x), with probability p per sample."""

    def __init__(self, p: Probability = 0.2, threshold: Probability = 0.5):
        super().__init__()
        self.p = _check_p(p)
        self.threshold = float(threshold)

    def sample_params(self, batch_size, device, generator=None):
        return {"apply": bernoulli(batch_size, self.p, device, generator)}

    def transform(self, x, params):
        _check_float(x, "solarize")
        return IF.apply_to(x, params["apply"].bool(), lambda t: IF.solarize(t, self.threshold))
