"""Image augmentations: per-sample parameters, torchvision equivalence, parameter statistics, batching."""

import math
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.transforms import RandomResizedCrop as TVRandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from ssl_toolkit.image import functional as IF
from ssl_toolkit.image.augment import (
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    Normalize,
    RandomGrayscale,
    RandomResizedCrop,
    RandomSolarize,
    ToFloat,
)
from ssl_toolkit.registry import AUGMENTATIONS
from ssl_toolkit.views import build_pipeline

TOL = 1e-5


def images(n=8, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    x[0] = x[0, :1]  # a gray image (hue/saturation edge case)
    x[1, :, :4] = 1.0  # saturated and black stripes (clamping, max == min)
    x[1, :, 4:8] = 0.0
    return x


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def max_err(batched, reference_fn, x):
    return max((batched[b] - reference_fn(x[b], b)).abs().max().item() for b in range(x.shape[0]))


BYOL_VIEW = [
    {"name": "random_resized_crop", "size": 32, "scale": [0.08, 1.0]},
    {"name": "horizontal_flip", "p": 0.5},
    {"name": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1, "p": 0.8},
    {"name": "grayscale", "p": 0.2},
    {"name": "gaussian_blur", "p": 0.5},
    {"name": "solarize", "p": 0.2},
]


# ----------------------------------------------------------------------------- registration
def test_all_ops_are_registered():
    for name in (
        "to_float",
        "random_resized_crop",
        "horizontal_flip",
        "color_jitter",
        "grayscale",
        "gaussian_blur",
        "solarize",
        "normalize",
    ):
        assert name in AUGMENTATIONS, name
        assert AUGMENTATIONS.get(name).description


# ----------------------------------------------------------------------------- per-sample parameters
def test_every_sample_draws_its_own_parameters():
    n = 256
    p = RandomResizedCrop(size=32).sample_params(n, "cpu", gen(), image_size=(32, 32))
    boxes = set(zip(*(p[k].tolist() for k in ("top", "left", "height", "width"))))
    assert len(boxes) > 0.8 * n
    assert 0.3 < HorizontalFlip().sample_params(n, "cpu", gen())["flip"].float().mean() < 0.7
    cj = ColorJitter().sample_params(n, "cpu", gen())
    for k in ("brightness", "contrast", "saturation", "hue"):
        assert cj[k].unique().numel() == n, k
    assert len({tuple(o) for o in cj["order"].tolist()}) > 20  # 24 possible orders
    assert 0 < cj["apply"].sum() < n
    assert GaussianBlur().sample_params(n, "cpu", gen())["sigma"].unique().numel() == n


def test_identical_images_get_different_views():
    x = torch.rand(1, 3, 32, 32, generator=gen(9)).expand(64, -1, -1, -1).contiguous()
    for spec in BYOL_VIEW:
        op = build_pipeline([spec])
        y = op(x, gen(1))
        distinct = len({tuple(v.flatten()[::97].tolist()) for v in y})
        assert distinct > 1, spec["name"]
    y = build_pipeline(BYOL_VIEW)(x, gen(2))
    flat = y.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(64) * 1e9).min() > 1e-3  # every pair differs


def test_generator_makes_views_reproducible():
    x = images(16)
    pipe = build_pipeline(BYOL_VIEW)
    assert torch.equal(pipe(x, gen(5)), pipe(x, gen(5)))
    assert not torch.equal(pipe(x, gen(5)), pipe(x, gen(6)))
    assert pipe(x, None).shape == x.shape  # the global RNG works too


# ----------------------------------------------------------------------------- torchvision equivalence
BOXES = [
    (0, 0, 32, 32),
    (3, 5, 10, 12),
    (1, 2, 31, 20),
    (0, 0, 7, 30),
    (5, 3, 27, 29),
    (10, 10, 1, 1),
    (30, 0, 2, 32),
    (0, 16, 32, 16),
]


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [32, 20])  # upsampling crops, and a mix of up- and downsampling
def test_resized_crop_matches_torchvision(interpolation, antialias, size):
    x = images(len(BOXES))
    op = RandomResizedCrop(size=size, interpolation=interpolation, antialias=antialias)
    params = {k: torch.tensor([b[i] for b in BOXES]) for i, k in enumerate(("top", "left", "height", "width"))}
    out = op.transform(x, params)
    mode = TF.InterpolationMode.BILINEAR if interpolation == "bilinear" else TF.InterpolationMode.BICUBIC
    err = max_err(
        out, lambda im, b: TF.resized_crop(im, *BOXES[b], [size, size], interpolation=mode, antialias=antialias), x
    )
    assert err < TOL


def test_resized_crop_downscaling_large_images_matches_torchvision():
    x = torch.rand(3, 3, 120, 90)
    boxes = [(0, 0, 120, 90), (7, 3, 100, 61), (50, 20, 33, 47)]
    params = {k: torch.tensor([b[i] for b in boxes]) for i, k in enumerate(("top", "left", "height", "width"))}
    out = RandomResizedCrop(size=[24, 28]).transform(x, params)
    assert out.shape == (3, 3, 24, 28)
    assert max_err(out, lambda im, b: TF.resized_crop(im, *boxes[b], [24, 28], antialias=True), x) < TOL


def test_flip_matches_torchvision():
    x = images()
    flip = torch.tensor([True, False] * 4)
    out = HorizontalFlip().transform(x, {"flip": flip})
    assert max_err(out, lambda im, b: TF.horizontal_flip(im) if flip[b] else im, x) == 0


@pytest.mark.parametrize(
    "component,tv_fn",
    [
        ("brightness", TF.adjust_brightness),
        ("contrast", TF.adjust_contrast),
        ("saturation", TF.adjust_saturation),
        ("hue", TF.adjust_hue),
    ],
)
def test_each_jitter_component_matches_torchvision(component, tv_fn):
    x = images()
    n = x.shape[0]
    factors = torch.linspace(-0.5, 0.5, n) if component == "hue" else torch.linspace(0.0, 2.0, n)
    # only this component enabled: the others are skipped
    kwargs = {k: 0.0 for k in ("brightness", "contrast", "saturation", "hue")}
    kwargs[component] = [-0.5, 0.5] if component == "hue" else [0.0, 2.0]
    op = ColorJitter(**kwargs, p=1.0)
    params = op.sample_params(n, "cpu", gen())
    params[component] = factors
    out = op.transform(x, params)
    assert max_err(out, lambda im, b: tv_fn(im, factors[b].item()), x) < TOL


def test_jitter_random_order_matches_torchvision_sequence():
    x = images()
    n = x.shape[0]
    op = ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.75)
    params = op.sample_params(n, "cpu", gen(3))
    params["apply"] = torch.tensor([True] * 6 + [False] * 2)
    fns = {0: TF.adjust_brightness, 1: TF.adjust_contrast, 2: TF.adjust_saturation, 3: TF.adjust_hue}
    names = ("brightness", "contrast", "saturation", "hue")

    def reference(im, b):
        if not params["apply"][b]:
            return im
        for k in params["order"][b].tolist():
            im = fns[k](im, params[names[k]][b].item())
        return im

    assert max_err(op.transform(x, params), reference, x) < TOL


def test_grayscale_solarize_normalize_to_float_match_torchvision():
    x = images()
    mask = torch.tensor([True, False, True, True, False, False, True, False])
    out = RandomGrayscale(p=0.5).transform(x, {"apply": mask})
    assert max_err(out, lambda im, b: TF.rgb_to_grayscale(im, 3) if mask[b] else im, x) < TOL
    out = RandomSolarize(p=0.5).transform(x, {"apply": mask})
    assert max_err(out, lambda im, b: TF.solarize(im, 0.5) if mask[b] else im, x) == 0
    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.2435, 0.2616]
    out = Normalize(mean, std)(x)
    assert max_err(out, lambda im, b: TF.normalize(im, mean, std), x) < TOL
    u8 = (x * 255).round().to(torch.uint8)
    assert max_err(ToFloat()(u8), lambda im, b: TF.to_dtype(u8[b], torch.float32, scale=True), x) < 1e-7


@pytest.mark.parametrize("kernel_size", [3, 9, 23])
def test_blur_matches_torchvision(kernel_size):
    x = images()
    sigma = torch.linspace(0.1, 2.0, x.shape[0])
    out = GaussianBlur(p=1.0, kernel_size=kernel_size).transform(
        x, {"apply": torch.ones(8, dtype=torch.bool), "sigma": sigma}
    )
    ref = lambda im, b: TF.gaussian_blur(im, [kernel_size] * 2, [sigma[b].item()] * 2)  # noqa: E731
    assert max_err(out, ref, x) < TOL


def test_blur_kernel_defaults_to_ten_percent_of_the_side():
    assert IF.default_blur_kernel(224) == 23  # the paper's 23×23
    assert IF.default_blur_kernel(32) == 3
    assert GaussianBlur().kernel_for(torch.zeros(1, 3, 96, 96)) == 9


# ----------------------------------------------------------------------------- distributions
def _cdf_distance(a, b, grid):
    fa = (a[:, None] <= grid[None]).float().mean(0)
    fb = (b[:, None] <= grid[None]).float().mean(0)
    return (fa - fb).abs().max().item()


@pytest.mark.parametrize(
    "hw,scale,ratio",
    [
        ((32, 32), (0.08, 1.0), (3 / 4, 4 / 3)),
        ((224, 160), (0.08, 1.0), (3 / 4, 4 / 3)),
        ((40, 12), (0.5, 1.0), (3 / 4, 4 / 3)),  # often falls back to the central crop
    ],
)
def test_crop_distribution_matches_torchvision_get_params(hw, scale, ratio):
    n = 4000
    H, W = hw
    torch.manual_seed(0)
    img = torch.empty(3, H, W)
    ref = torch.tensor(
        [TVRandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(n)], dtype=torch.float64
    )
    p = RandomResizedCrop(size=32, scale=scale, ratio=ratio).sample_params(n, "cpu", gen(1), image_size=hw)
    ours = torch.stack([p["top"], p["left"], p["height"], p["width"]], 1).double()
    area_ref, area = ref[:, 2] * ref[:, 3] / (H * W), ours[:, 2] * ours[:, 3] / (H * W)
    assert _cdf_distance(area, area_ref, torch.linspace(0, 1, 101, dtype=torch.float64)) < 0.04
    ar_ref, ar = (ref[:, 3] / ref[:, 2]).log(), (ours[:, 3] / ours[:, 2]).log()
    assert _cdf_distance(ar, ar_ref, torch.linspace(-3, 3, 121, dtype=torch.float64)) < 0.04
    centre_ref = (ref[:, 0] + ref[:, 2] / 2) / H
    centre = (ours[:, 0] + ours[:, 2] / 2) / H
    assert _cdf_distance(centre, centre_ref, torch.linspace(0, 1, 51, dtype=torch.float64)) < 0.04
    # boxes always lie inside the image
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= H).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= W).all()
    assert (ours[:, 2] >= 1).all() and (ours[:, 3] >= 1).all()
    # the fallback (whole image with the ratio clamped, centred) happens as often as in torchvision
    fb_h = W / ratio[0] if W / H < ratio[0] else H
    fb_w = W if W / H <= ratio[1] else H * ratio[1]
    is_fb = lambda b: (b[:, 2] == round(fb_h)) & (b[:, 3] == round(fb_w))  # noqa: E731
    assert abs(is_fb(ours).float().mean() - is_fb(ref).float().mean()) < 0.03


def _binomial_ok(k, n, p, sigmas=5):
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_flip_gray_solarize_blur_and_jitter_rates():
    n = 20000
    assert _binomial_ok(HorizontalFlip(0.5).sample_params(n, "cpu", gen())["flip"].sum().item(), n, 0.5)
    assert _binomial_ok(RandomGrayscale(0.2).sample_params(n, "cpu", gen())["apply"].sum().item(), n, 0.2)
    assert _binomial_ok(RandomSolarize(0.2).sample_params(n, "cpu", gen())["apply"].sum().item(), n, 0.2)
    blur = GaussianBlur(p=0.1, sigma=[0.1, 2.0]).sample_params(n, "cpu", gen())
    assert _binomial_ok(blur["apply"].sum().item(), n, 0.1)
    assert 0.1 <= blur["sigma"].min() and blur["sigma"].max() <= 2.0
    assert blur["sigma"].mean().item() == pytest.approx(1.05, abs=0.02)
    assert GaussianBlur(p=1.0).sample_params(100, "cpu", gen())["apply"].all()
    assert not RandomSolarize(p=0.0).sample_params(100, "cpu", gen())["apply"].any()

    cj = ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8).sample_params(n, "cpu", gen())
    assert _binomial_ok(cj["apply"].sum().item(), n, 0.8)
    for k, (lo, hi) in {
        "brightness": (0.6, 1.4),
        "contrast": (0.6, 1.4),
        "saturation": (0.8, 1.2),
        "hue": (-0.1, 0.1),
    }.items():
        v = cj[k]
        assert lo <= v.min() and v.max() <= hi, k
        assert v.min() < lo + 0.01 and v.max() > hi - 0.01, k  # covers the range
        assert v.mean().item() == pytest.approx((lo + hi) / 2, abs=0.01), k
        assert v.std().item() == pytest.approx((hi - lo) / math.sqrt(12), rel=0.05), k
    orders = Counter(tuple(o) for o in cj["order"].tolist())
    assert len(orders) == 24 and all(_binomial_ok(c, n, 1 / 24) for c in orders.values())
    assert ColorJitter(brightness=[0.5, 3.0]).sample_params(n, "cpu", gen())["brightness"].max() > 2.9


# ----------------------------------------------------------------------------- batching
class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _ops_for(batch_size):
    x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8)
    pipe = build_pipeline([{"name": "to_float"}, *BYOL_VIEW])
    with _CountOps() as mode:
        y = pipe(x, gen(0))
    assert y.shape == (batch_size, 3, 32, 32)
    return mode.count


def test_a_batch_of_256_is_augmented_in_one_batched_pass():
    """The number of tensor operations does not grow with the batch: no per-sample Python loop."""
    ops_64, ops_256 = _ops_for(64), _ops_for(256)
    assert ops_256 <= ops_64 + 10
    assert ops_256 < 1000


def test_jitter_calls_each_adjustment_at_most_once_per_stage(monkeypatch):
    calls = Counter()
    for name in ("adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue"):
        real = getattr(IF, name)

        def counted(x, f, _real=real, _name=name):
            calls[_name] += 1
            return _real(x, f)

        monkeypatch.setattr(IF, name, counted)
    op = ColorJitter()
    op.forward(torch.rand(256, 3, 32, 32), gen())
    assert set(calls) == {"adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue"}
    assert all(c <= 4 for c in calls.values())  # 4 stages of the random order, whatever the batch


def test_crop_is_two_batched_matmuls(monkeypatch):
    calls = []
    real = torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda a, b: calls.append(a.shape) or real(a, b))
    RandomResizedCrop(size=32)(torch.rand(256, 3, 32, 32), gen())
    assert len(calls) == 2


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "name,params",
    [
        ("horizontal_flip", {"p": 1.5}),
        ("random_resized_crop", {"interpolation": "nearest"}),
        ("random_resized_crop", {"scale": [0.9, 0.1]}),
        ("color_jitter", {"hue": 0.7}),
        ("color_jitter", {"brightness": -1.0}),
        ("gaussian_blur", {"kernel_size": 4}),
        ("gaussian_blur", {"sigma": [0.0, 1.0]}),
        ("normalize", {"mean": [0.5], "std": [0.0]}),
    ],
)
def test_bad_parameters_are_rejected(name, params):
    with pytest.raises(ValueError):
        AUGMENTATIONS.build(name, **params)


def test_uint8_input_needs_to_float_first():
    with pytest.raises(TypeError, match="to_float"):
        RandomResizedCrop(size=32)(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
