"""Batched image operations with per-sample parameters (float images in [0, 1], shape (B, C, H, W)).

Every function takes one parameter value per sample as a tensor of shape (B,) and does the work for
the whole batch at once. The semantics follow ``torchvision.transforms.v2.functional`` applied to each
image separately (the tests check this), so a recipe written against torchvision means the same here:

- resized crops are separable resampling matrices (one (out, in) matrix per sample and axis) built from
  the same interpolation kernels as ``torch.nn.functional.interpolate`` (bilinear/bicubic, with or
  without antialiasing), applied with two batched matmuls;
- brightness / contrast / saturation are torchvision's blends with clamping; contrast blends with the
  mean of the ITU-R 601 grayscale (0.2989, 0.587, 0.114);
- hue rotates the HSV hue (RGB → HSV → RGB);
- Gaussian blur is separable, reflect-padded, with a per-sample sigma.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, 1) in x's dtype and device."""
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


# ----------------------------------------------------------------------------- resampling
def _cubic(t: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = −0.75 as in torch's bicubic, −0.5 in its antialiased mode)."""
    t = t.abs()
    t2, t3 = t * t, t * t * t
    near = (a + 2.0) * t3 - (a + 3.0) * t2 + 1.0
    far = a * t3 - 5.0 * a * t2 + 8.0 * a * t - 4.0 * a
    return torch.where(t <= 1.0, near, torch.where(t < 2.0, far, torch.zeros_like(t)))


def resample_matrix(
    start: torch.Tensor,
    length: torch.Tensor,
    in_size: int,
    out_size: int,
    mode: str = "bilinear",
    antialias: bool = True,
) -> torch.Tensor:
    """Per-sample (B, out_size, in_size) matrices M with ``M @ signal`` = the crop
    ``signal[start:start+length]`` resized to ``out_size`` exactly as ``F.interpolate`` does it
    (align_corners=False). ``start``/``length`` are (B,) integer-valued tensors."""
    device = start.device
    dtype = torch.float32  # as torch's own kernels (float64 would cost memory at 224 px and large batches)
    start = start.to(dtype)[:, None, None]
    length = length.to(dtype)[:, None, None]
    i = torch.arange(out_size, device=device, dtype=dtype)[None, :, None]
    j = torch.arange(in_size, device=device, dtype=dtype)[None, None, :]
    scale = length / out_size  # (B,1,1)
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    if antialias:
        # torch's *_aa kernels: the filter is stretched by the scale when downsampling and the
        # taps that fall inside the crop are renormalised.
        invscale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
        center = scale * (i + 0.5)
        d = (j - start + 0.5 - center) * invscale
        w = (1.0 - d.abs()).clamp_min(0.0) if mode == "bilinear" else _cubic(d, -0.5)
        w = w * ((j >= start) & (j < start + length))
        total = w.sum(-1, keepdim=True)
        w = w / torch.where(total == 0, torch.ones_like(total), total)
    elif mode == "bilinear":
        x = (scale * (i + 0.5) - 0.5).clamp_min(0.0)
        x = torch.minimum(x, length - 1.0)
        w = (1.0 - (j - start - x).abs()).clamp_min(0.0)
    else:  # bicubic without antialiasing: 4 taps, out-of-crop taps clamped onto the edge pixels
        x = (scale * (i + 0.5) - 0.5).expand(-1, -1, 1)  # (B,out,1)
        x0 = torch.floor(x)
        t = x - x0
        w = torch.zeros(start.shape[0], out_size, in_size, device=device, dtype=dtype)
        for k in range(4):
            idx = (x0 - 1 + k).clamp(min=torch.zeros_like(length), max=length - 1.0) + start
            w.scatter_add_(-1, idx.long(), _cubic(t + 1.0 - k, -0.75))
    return w


def resized_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: torch.Tensor,
    width: torch.Tensor,
    size: tuple[int, int],
    mode: str = "bilinear",
    antialias: bool = True,
) -> torch.Tensor:
    """Crop box (top, left, height, width) of every sample, resized to ``size`` = (h, w)."""
    _, _, H, W = x.shape
    wy = resample_matrix(top, height, H, size[0], mode, antialias).to(x.dtype)  # (B, h, H)
    wx = resample_matrix(left, width, W, size[1], mode, antialias).to(x.dtype)  # (B, w, W)
    out = torch.matmul(wy[:, None], x)  # (B, C, h, W)
    return torch.matmul(out, wx[:, None].transpose(-1, -2))  # (B, C, h, w)


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(_per_sample(flip, x).bool(), x.flip(-1), x)


# ----------------------------------------------------------------------------- colour
def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma (torchvision's weights)."""
    r, g, b = x.unbind(dim=-3)
    return (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]).unsqueeze(-3)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor, x)
    return (x * f + other * (1.0 - f)).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor, x)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of every sample by ``shift`` (in turns, [−0.5, 0.5]); S and V are kept."""
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    inv = torch.where(chroma > 0, chroma, 1.0).reciprocal_()
    # hue in sixths of a turn (r = g = b gives 0 through the first branch)
    h = torch.where(
        maxc == r, (g - b).mul_(inv), torch.where(maxc == g, (b - r).mul_(inv).add_(2.0), (r - g).mul_(inv).add_(4.0))
    )
    h = h.add_(6.0 * shift.to(x).view(-1, *([1] * (h.dim() - 1)))).remainder_(6.0)
    # HSV → RGB: channel n ∈ {5, 3, 1} (R, G, B) = v − c·clamp(min(k, 4 − k), 0, 1), k = (n + h) mod 6
    out = []
    for n in (5.0, 3.0, 1.0):
        k = h + n
        k = torch.where(k >= 6.0, k - 6.0, k)
        out.append(maxc - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(out, dim=-3).clamp_(0.0, 1.0)


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    return torch.where(x >= threshold, 1.0 - x, x)


# ----------------------------------------------------------------------------- blur
def default_blur_kernel(side: int) -> int:
    """Odd kernel size ≈ 10% of the image side (BYOL: 23 for 224 pixels; 3 for 32)."""
    return max(1, int(0.1 * side) // 2 * 2 + 1)


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B,) sigmas → (B, kernel_size) normalised 1-D Gaussian kernels."""
    t = torch.arange(kernel_size, device=sigma.device, dtype=torch.float32) - (kernel_size - 1) / 2.0
    w = torch.exp(-0.5 * (t[None, :] / sigma.to(torch.float32)[:, None]) ** 2)
    return w / w.sum(-1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma, reflect padding (torchvision's)."""
    if kernel_size <= 1:
        return x
    if kernel_size % 2 == 0:
        raise ValueError(f"gaussian blur kernel_size must be odd, got {kernel_size}")
    k = gaussian_kernels(sigma, kernel_size).to(x.dtype)  # (B, K)
    pad = kernel_size // 2
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    taps = k[:, :, None, None, None].unbind(1)  # K tensors of shape (B, 1, 1, 1)
    # horizontal pass on the padded rows (padded rows included), then the vertical pass
    rows = xp[..., 0:W] * taps[0]
    for t in range(1, kernel_size):
        rows = rows.add_(xp[..., t : t + W] * taps[t])
    out = rows[..., 0:H, :] * taps[0]
    for t in range(1, kernel_size):
        out = out.add_(rows[..., t : t + H, :] * taps[t])
    return out


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.as_tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------- helpers
def apply_to(x: torch.Tensor, mask: torch.Tensor, fn, *params: torch.Tensor) -> torch.Tensor:
    """``fn`` on the samples where ``mask`` is true (a batched call on that subset), others unchanged."""
    idx = mask.nonzero().squeeze(1)
    n = idx.numel()
    if n == 0:
        return x
    if n == x.shape[0]:
        return fn(x, *params)
    out = x.clone()
    out.index_copy_(0, idx, fn(x.index_select(0, idx), *[p.index_select(0, idx) for p in params]))
    return out
