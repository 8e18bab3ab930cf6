"""Batched BYOL-A augmentations: per-sample randomness, determinism, mixup bank state, view pipelines."""

import io

import pytest
import torch
import torch.nn.functional as F

from ssl_toolkit.audio import augment as A
from ssl_toolkit.registry import AUGMENTATIONS
from ssl_toolkit.views import ViewMaker, build_pipeline


def lms(b=8, f=64, t=96, seed=0):
    return torch.randn(b, 1, f, t, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def loop_reference_rrc(x, i, j, h, w, scale=1.5):
    """One F.interpolate per sample on an explicit canvas (the unbatched definition)."""
    f, t = x.shape[-2:]
    cw = int(t * scale)
    off = (cw - t) // 2
    out = []
    for k in range(x.shape[0]):
        canvas = torch.zeros(x.shape[1], f, cw)
        canvas[:, :, off : off + t] = x[k]
        crop = canvas[:, i[k] : i[k] + h[k], j[k] : j[k] + w[k]]
        out.append(F.interpolate(crop[None], size=(f, t), mode="bicubic", align_corners=True)[0])
    return torch.stack(out)


def test_rrc_batched_equals_per_sample_interpolate():
    op = A.RandomResizeCrop()
    x = lms(16)
    params = op.sample_params(16, x.device, gen(3))
    i, j, h, w = op.crop_boxes(params, 64, 96)
    assert (h >= 1).all() and (h <= 64).all() and (w >= 1).all() and (w <= 144).all()
    assert (i + h <= 64).all() and (j + w <= 144).all() and (i >= 0).all() and (j >= 0).all()
    expected = loop_reference_rrc(x, i.tolist(), j.tolist(), h.tolist(), w.tolist())
    torch.testing.assert_close(op.transform(x, params), expected, atol=2e-5, rtol=1e-5)


def test_rrc_edge_sizes():
    op = A.RandomResizeCrop()
    x = lms(3)
    boxes = {
        "i": torch.tensor([0, 63, 0]),
        "j": torch.tensor([0, 143, 24]),
        "h": torch.tensor([1, 1, 64]),
        "w": torch.tensor([1, 1, 96]),
    }
    expected = loop_reference_rrc(x, *[boxes[k].tolist() for k in "ijhw"])
    torch.testing.assert_close(op.transform(x, boxes), expected, atol=2e-5, rtol=1e-5)
    # the identity box (input area of the canvas, full size) returns the input
    ident = {"i": torch.tensor([0]), "j": torch.tensor([24]), "h": torch.tensor([64]), "w": torch.tensor([96])}
    torch.testing.assert_close(op.transform(x[:1], ident), x[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mixup", "random_resize_crop", "random_linear_fader"])
def test_parameters_differ_across_the_batch_and_repeat_with_the_seed(name):
    op = AUGMENTATIONS.build(name)
    p1 = op.sample_params(32, torch.device("cpu"), gen(5))
    p2 = op.sample_params(32, torch.device("cpu"), gen(5))
    for k, v in p1.items():
        assert v.shape[0] == 32
        torch.testing.assert_close(v, p2[k])
    first = next(v for k, v in p1.items() if k != "index")
    assert len(torch.unique(first)) > 16, f"{name}: per-sample draws look shared across the batch"


def test_outputs_differ_per_sample_for_identical_inputs():
    x = lms(1).repeat(8, 1, 1, 1)
    for name in ("random_resize_crop", "random_linear_fader"):
        y = AUGMENTATIONS.build(name)(x, gen(1))
        diffs = [(y[0] - y[k]).abs().max().item() for k in range(1, 8)]
        assert min(diffs) > 1e-3, name
    mix = A.Mixup(ratio=0.4)
    mix.push(lms(8, seed=9))
    y = mix(x, gen(1))
    assert min((y[0] - y[k]).abs().max().item() for k in range(1, 8)) > 1e-3


def test_fader_ramp_within_gain():
    op = A.RandomLinearFader(gain=0.5)
    x = torch.zeros(64, 1, 4, 20)
    y = op(x, gen(2))
    assert y.abs().max() <= 0.5 + 1e-6
    ramp = y[:, 0, 0]
    torch.testing.assert_close(y, ramp[:, None, None, :].expand_as(y))  # same offset for every mel bin
    d = ramp.diff(dim=1)
    torch.testing.assert_close(d, d[:, :1].expand_as(d), atol=1e-6, rtol=0)  # linear in time


def test_mixup_bank_fifo_and_first_batch_unmixed():
    op = A.Mixup(ratio=0.4, n_memory=5)
    a = lms(3, 2, 4, seed=1)
    assert torch.equal(op(a, gen()), a)  # empty bank: nothing to mix with
    assert op.count == 3
    b = lms(4, 2, 4, seed=2)
    op(b, gen())
    assert op.count == 5 and op.ptr == 2
    # FIFO: the bank holds a[2], b[0..3] (a[0], a[1] overwritten by b[2], b[3])
    held = {tuple(v.flatten().tolist()) for v in op.bank}
    assert held == {tuple(v.flatten().tolist()) for v in [a[2], *b]}
    big = lms(9, 2, 4, seed=3)
    op(big, gen())
    assert op.count == 5 and {tuple(v.flatten().tolist()) for v in op.bank} == {
        tuple(v.flatten().tolist()) for v in big[-5:]
    }


def test_mixup_alpha_range_and_partner_from_bank():
    op = A.Mixup(ratio=0.2, n_memory=16)
    p = op.sample_params(4096, torch.device("cpu"), gen())
    assert p["alpha"].min() >= 0 and p["alpha"].max() < 0.2 and p["alpha"].max() > 0.19
    bank = lms(16, 2, 3, seed=4)
    op.push(bank)
    p = op.sample_params(2000, torch.device("cpu"), gen())
    assert p["index"].min() == 0 and p["index"].max() == 15
    x = lms(2, 2, 3, seed=5)
    params = {"alpha": torch.tensor([0.1, 0.2]), "index": torch.tensor([3, 7])}
    expected = torch.stack([A.log_mixup_exp(x[0], bank[3], 0.1), A.log_mixup_exp(x[1], bank[7], 0.2)])
    torch.testing.assert_close(op.transform(x, params), expected)


def test_mixup_bank_survives_state_dict_into_a_fresh_instance():
    views_cfg = [{"name": "mixup", "ratio": 0.4, "n_memory": 8}, {"name": "random_resize_crop"}]
    pipe = build_pipeline(views_cfg)
    for s in range(3):
        pipe(lms(3, 4, 6, seed=s), gen(s))
    buf = io.BytesIO()
    torch.save(pipe.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = build_pipeline(views_cfg)
    fresh.load_state_dict(state)  # strict: a fresh instance accepts the saved bank
    old, new = pipe.ops[0], fresh.ops[0]
    assert (new.count, new.ptr) == (old.count, old.ptr) == (8, 1)
    assert torch.equal(new.bank, old.bank)
    x = lms(3, 4, 6, seed=7)
    torch.testing.assert_close(fresh(x, gen(11)), pipe(x, gen(11)))
    # an empty bank round-trips too
    empty = build_pipeline(views_cfg)
    build_pipeline(views_cfg).load_state_dict(empty.state_dict())


def test_mixup_bank_load_with_other_capacity_keeps_newest():
    op = A.Mixup(n_memory=4)
    data = torch.arange(6.0).view(6, 1, 1, 1)
    op.push(data)  # b >= n: bank = last 4 (2..5)
    op.push(torch.tensor([6.0, 7.0]).view(2, 1, 1, 1))
    small = A.Mixup(n_memory=3)
    small.load_state_dict(op.state_dict())
    assert small.count == 3
    assert sorted(small.bank.flatten().tolist()) == [5.0, 6.0, 7.0]


def test_pre_norm_fixed_and_unprepared():
    op = A.PreNorm(mean=-2.0, std=4.0)
    x = lms(2)
    torch.testing.assert_close(op(x), (x + 2.0) / 4.0)
    with pytest.raises(RuntimeError, match="pre_norm has no statistics"):
        A.PreNorm()(x)
    with pytest.raises(ValueError, match="both mean and std"):
        A.PreNorm(mean=1.0)


def test_post_norm_whole_batch_zero_mean_unit_std():
    y = A.PostNorm()(lms(6) * 3 + 1)
    assert abs(y.mean().item()) < 1e-5 and abs(y.std().item() - 1) < 1e-4
    const = A.PostNorm()(torch.ones(2, 1, 3, 3))  # std clamped at eps: no NaN
    assert torch.isfinite(const).all()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_view_pipelines_shapes_and_determinism(version):
    branch = [{"name": "mixup", "ratio": 0.4 if version == "v1" else 0.2}, {"name": "random_resize_crop"}]
    if version == "v2":
        branch.append({"name": "random_linear_fader"})
    cfg = type("Cfg", (), {})()
    cfg.input = [
        {"name": "log_mel", "frontend": "torchaudio_mel" if version == "v1" else "nnaudio_mel"},
        {"name": "pre_norm", "mean": -5.0, "std": 4.0},
    ]
    cfg.branches = [branch, [dict(b) for b in branch]]
    cfg.joint = [{"name": "post_norm"}]
    wave = torch.randn(4, 15200, generator=gen(0)) * 0.1
    outs = []
    for _ in range(2):
        vm = ViewMaker.from_config(cfg)
        vm(wave, gen(1))  # fills the banks
        outs.append(vm(wave, gen(2)))
    v1, v2 = outs[0]
    assert v1.shape == v2.shape == (4, 1, 64, 96)
    assert not torch.allclose(v1, v2)  # two different views
    both = torch.cat([v1, v2])
    assert abs(both.mean().item()) < 1e-4 and abs(both.std().item() - 1) < 1e-3
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(a, b)  # same generator seed -> same views
    # front-end filter banks are not checkpointed; the state has the pre_norm stats and mixup banks
    keys = set(vm.state_dict())
    assert not any("mel" in k for k in keys), keys
    assert {"input.ops.1.mean", "input.ops.1.std", "branches.0.ops.0._extra_state"} <= keys
