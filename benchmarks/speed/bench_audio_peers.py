"""BYOL-A training throughput side by side: ssl_toolkit's batched pipeline vs a per-sample pipeline.

Both contenders train BYOL-A v1 (recipes/audio/byola_v1.yaml) on every FSDD clip (../shared/data/fsdd,
else data/demo/fsdd_mini) with the same model: AudioNTT2020 at the given feature_d and the recipe's
projector/predictor (4096 → 256), built by ssl_toolkit's method registry: the same parameters and math; the
data/augmentation path, the optimizer implementation and the parameter-free layers differ (the baseline
keeps the official ReLU → nn.MaxPool2d and nn.Dropout, see ``official_layers``). Both use
batch 64, 0.95 s segments at 16 kHz (64 × 96 log-mels), fixed pre-norm statistics (no statistics pass is
timed), waves decoded and resampled once into memory, and the same precision.

- ``ssl_toolkit``: the trainer's data path: the recipe's ``audio_folder`` dataset (raw wave segments)
  through the trainer's own loader (``ssl_toolkit.training.builders.build_loader``), then
  ``harness.byol_training_step``: the views made batched on the device (log-mel,
  pre-norm, mixup, random resize crop, post-norm), forward/backward, Adam (foreach) and the EMA update.
- ``per_sample``: the structure of the official BYOL-A v1 code (Niizumi et al. 2021,
  github.com/nttcslab/byol-a), written here as the reference baseline: a Dataset whose ``__getitem__``
  cuts a random 0.95 s segment of one clip, computes its log-mel (the v1 front end: torchaudio
  MelSpectrogram, log(x + eps)), pre-normalizes it and makes two views, each by log-mixup-exp with a
  clip from a per-worker FIFO memory bank (ratio 0.4, 2048 clips) and a random resize crop (one bicubic
  F.interpolate per clip); default
  collate; the step concatenates the views, normalizes the whole batch (post-norm) and runs BYOL with
  torch.optim.Adam(lr 3e-4) as the official code does, then the EMA update.

Both DataLoaders use ``--workers`` worker processes (the recipe's 8 are for a GPU machine). Protocol (as
bench_peers.py): per setting each contender runs ``--warmup`` untimed steps, then the script alternates
timed windows, A then B, then B then A, ...; only one contender computes at a time. Each window creates
its contender's DataLoader iterator afresh (a new epoch) and shuts its workers down at the end, so the
idle contender's workers never take CPU from the other; before the clock starts, ``max(1, workers)``
untimed steps fill the pipeline (the workers' start-up burst is consumed, the prefetch queue is in its
steady state). A step is end-to-end: next batch + two views + online/target forward + backward +
optimizer + EMA. The figure is the median over windows of clips / s; the ratio is ssl_toolkit / per_sample.

    python benchmarks/speed/bench_audio_peers.py                              # d=512 and d=2048, fp32
    python benchmarks/speed/bench_audio_peers.py --feature-d 512 --precision bf16 --windows 3
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch
import torch.nn.functional as F
from harness import ROOT, autocast, byol_training_step, environment, sync, write_results
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssl_toolkit.audio.augment import log_mixup_exp, normalize_batch
from ssl_toolkit.audio.dataset import load_audio
from ssl_toolkit.audio.encoders import AudioNTT2020, AudioNTT2022
from ssl_toolkit.audio.frontend import torchaudio_mel
from ssl_toolkit.recipe import load_recipe

FSDD = ROOT.parent / "shared" / "data" / "fsdd"
DEMO = ROOT / "data" / "demo" / "fsdd_mini"
RECIPE = ROOT / "recipes" / "audio" / "byola_v1.yaml"
PRE_MEAN, PRE_STD = -6.0, 4.5  # fixed pre-norm statistics for both contenders (bench_audio_throughput's)
SETTINGS = {512: (5, 6), 2048: (5, 3)}  # feature_d: (windows, steps per window)
REFERENCE = {512: 31, 2048: 20}  # official BYOL-A, batch 64, fp32, this CPU: clips/s from our issue tracker
SAMPLE_RATE, UNIT_SEC = 16000, 0.95


def data_root() -> Path:
    return FSDD if (FSDD / "metadata.csv").is_file() else DEMO


def _recipe(root: Path, feature_d: int, precision: str, batch: int, workers: int):
    return load_recipe(
        RECIPE,
        [
            f"data.dataset.root={root}",
            "data.dataset.metadata=metadata.csv",
            "data.dataset.audio_dir=recordings",
            f"data.batch_size={batch}",
            f"data.num_workers={workers}",
            f"model.encoder.feature_d={feature_d}",
            f"precision={precision}",
            f"views.input.1.mean={PRE_MEAN}",
            f"views.input.1.std={PRE_STD}",
        ],
    )


# ----------------------------------------------------------------------------- contender 1: ssl_toolkit
class SslToolkit:
    """The trainer's loader (``build_loader``) feeding the trainer's step (harness.byol_training_step)."""

    name = "ssl_toolkit"

    def __init__(self, recipe, device: torch.device, precision: str):
        from ssl_toolkit.training.builders import build_loader

        self.device = device
        self.dataset, self.sampler, self.loader = build_loader(recipe, device)
        torch.manual_seed(0)
        self._step, self.method = byol_training_step(recipe, device, precision, recipe.data.batch_size)
        self.epoch, self.batches = -1, None

    def open(self) -> None:
        """A fresh iterator over a new epoch (the trainer's per-epoch loop)."""
        self.epoch += 1
        self.sampler.set_position(self.epoch, 0)
        self.dataset.set_epoch(self.epoch)
        self.batches = iter(self.loader)

    def close(self) -> None:
        self.batches = None  # the iterator's __del__ shuts its workers down

    def step(self) -> int:
        try:
            x, _, _ = next(self.batches)
        except StopIteration:
            self.open()
            x, _, _ = next(self.batches)
        self._step(x.to(self.device, non_blocking=True))
        return x.shape[0]


# ----------------------------------------------------------------------------- contender 2: per_sample
class MixupPerClip:
    """Log-mixup-exp of one log-mel with a random earlier one from this process's FIFO memory bank."""

    def __init__(self, ratio: float = 0.4, n_memory: int = 2048):
        self.ratio, self.n_memory = ratio, n_memory
        self.bank: list[torch.Tensor] = []
        self.next_slot = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bank:
            alpha = self.ratio * random.random()
            z = self.bank[random.randrange(len(self.bank))]
            mixed = log_mixup_exp(x, z, alpha)
        else:
            mixed = x
        if len(self.bank) < self.n_memory:  # then the current clip joins the bank, the oldest one leaves
            self.bank.append(x)
        else:
            self.bank[self.next_slot] = x
            self.next_slot = (self.next_slot + 1) % self.n_memory
        return mixed


class RandomResizeCropPerClip:
    """Crop a random box of a zero canvas (F, 1.5·T) holding the clip in the middle; bicubic back to (F, T)."""

    def __init__(self, virtual_crop_scale=(1.0, 1.5), freq_scale=(0.6, 1.5), time_scale=(0.6, 1.5)):
        self.virtual_crop_scale, self.freq_scale, self.time_scale = virtual_crop_scale, freq_scale, time_scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (1, F, T)
        _, f, t = x.shape
        ch, cw = int(f * self.virtual_crop_scale[0]), int(t * self.virtual_crop_scale[1])
        canvas = x.new_zeros(x.shape[0], ch, cw)
        top, left = (ch - f) // 2, (cw - t) // 2
        canvas[:, top : top + f, left : left + t] = x
        h = min(max(int(f * random.uniform(*self.freq_scale)), 1), ch)
        w = min(max(int(t * random.uniform(*self.time_scale)), 1), cw)
        i, j = random.randint(0, ch - h), random.randint(0, cw - w)
        crop = canvas[:, i : i + h, j : j + w]
        return F.interpolate(crop[None], size=(f, t), mode="bicubic", align_corners=True)[0]


class PerSampleViews(Dataset):
    """Item i: a random 0.95 s segment of clip i → log-mel (1, 64, 96) → pre-norm → two views, each
    mixup → random resize crop, drawn per clip and per view. Waves are decoded once, at construction."""

    def __init__(self, files: list[Path], mean: float, std: float):
        self.waves = [torch.from_numpy(load_audio(p, SAMPLE_RATE)) for p in files]
        self.unit_length = round(UNIT_SEC * SAMPLE_RATE)
        self.to_log_mel = torchaudio_mel(SAMPLE_RATE)  # the BYOL-A v1 front end, here applied to one clip
        self.mean, self.std = mean, std
        self.mixup, self.crop = MixupPerClip(0.4, 2048), RandomResizeCropPerClip()

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, index: int):
        wave = self.waves[index]
        if wave.shape[0] < self.unit_length:
            wave = F.pad(wave, (0, self.unit_length - wave.shape[0]))
        start = random.randint(0, wave.shape[0] - self.unit_length)
        wave = wave[start : start + self.unit_length]
        lms = self.to_log_mel(wave)[0]  # (1, 64, 96)
        lms = (lms - self.mean) / self.std
        return self.crop(self.mixup(lms)), self.crop(self.mixup(lms))


def official_layers(model: nn.Module) -> nn.Module:
    """Give every AudioNTT encoder in ``model`` the official code's torch layers, parameters untouched.

    ssl_toolkit's conv blocks run its 2×2 max-pool (fast path without autograd) before an in-place ReLU
    and its fc uses its vectorized Dropout (same outputs, gradients and mask distribution, see
    ``ssl_toolkit.audio.layers``); the baseline gets [conv, norm, nn.ReLU, nn.MaxPool2d] blocks and
    nn.Dropout as in the official code, so those differences count as ssl_toolkit's.
    """
    for m in model.modules():
        if isinstance(m, (AudioNTT2020, AudioNTT2022)):
            layers = list(m.features)
            m.features = nn.Sequential(
                *[
                    layer
                    for i in range(0, len(layers), 4)
                    for layer in (layers[i], layers[i + 1], nn.ReLU(), nn.MaxPool2d(2, stride=2))
                ]
            )
            m.fc[2] = nn.Dropout(p=m.fc[2].p).train(m.training)
    return model


def _metadata_files(root: Path) -> list[Path]:
    with (root / "metadata.csv").open(newline="", encoding="utf-8-sig") as f:
        return [root / "recordings" / row["file_name"] for row in csv.DictReader(f)]


class PerSample:
    """Official-structure per-sample pipeline + post-norm, the registry's BYOL model with the official layers
    (``official_layers``), torch.optim.Adam."""

    name = "per_sample"

    def __init__(self, recipe, root: Path, device: torch.device, precision: str, workers: int):
        from ssl_toolkit.engine.build import build_method

        self.device, self.precision = device, precision
        dataset = PerSampleViews(_metadata_files(root), PRE_MEAN, PRE_STD)
        self.loader = DataLoader(
            dataset, batch_size=recipe.data.batch_size, shuffle=True, drop_last=True, num_workers=workers
        )
        torch.manual_seed(0)
        self.method = official_layers(build_method(recipe)).to(device).train()
        self.optimizer = torch.optim.Adam([p for p in self.method.parameters() if p.requires_grad], lr=3e-4)
        self.steps, self.batches = 0, None

    def open(self) -> None:
        self.batches = iter(self.loader)

    def close(self) -> None:
        self.batches = None

    def step(self) -> int:
        try:
            v1, v2 = next(self.batches)
        except StopIteration:
            self.open()
            v1, v2 = next(self.batches)
        bs = v1.shape[0]
        with torch.no_grad():
            x = torch.cat([v1, v2]).to(self.device)
            x = normalize_batch(x)  # post-norm over the whole batch of both views
        with autocast(self.device, self.precision):
            loss = self.method([x[:bs], x[bs:]])["loss"]
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.update_targets(self.steps, 10_000)
        self.steps += 1
        return bs


# ----------------------------------------------------------------------------- protocol
def run_window(c, fill: int, steps: int, device: torch.device) -> dict:
    """Fresh iterator, ``fill`` untimed steps, ``steps`` timed ones, workers shut down."""
    c.open()
    try:
        for _ in range(fill):
            c.step()
        sync(device)
        start, clips = time.perf_counter(), 0
        for _ in range(steps):
            clips += c.step()
        sync(device)
        seconds = time.perf_counter() - start
    finally:
        c.close()
    return {"clips": clips, "seconds": seconds}


def bench_setting(feature_d: int, args, root: Path, device: torch.device) -> list[dict]:
    n_windows, steps = SETTINGS.get(feature_d, (5, 3))
    n_windows, steps = args.windows or n_windows, args.steps or steps
    fill = max(1, args.workers)
    recipe = _recipe(root, feature_d, args.precision, args.batch, args.workers)
    pool = [SslToolkit(recipe, device, args.precision), PerSample(recipe, root, device, args.precision, args.workers)]
    n_clips = len(pool[1].loader.dataset)
    for c in pool:
        if args.warmup:
            run_window(c, 0, args.warmup, device)
    rates: dict[str, list[float]] = {c.name: [] for c in pool}
    for i in range(n_windows):
        for c in pool[i % 2 :] + pool[: i % 2]:  # alternate who goes first
            r = run_window(c, fill, steps, device)
            rates[c.name].append(r["clips"] / r["seconds"])
            print(
                f"  d={feature_d} {args.precision} · {c.name} window {i + 1}: {rates[c.name][-1]:.1f} clips/s",
                file=sys.stderr,
                flush=True,
            )
    return [
        {
            "feature_d": feature_d,
            "precision": args.precision,
            "contender": name,
            "batch": args.batch,
            "workers": args.workers,
            "clips_in_set": n_clips,
            "steps_per_window": steps,
            "fill_steps": fill,
            "windows": r,
            "clips_per_s": statistics.median(r),
        }
        for name, r in rates.items()
    ]


def table(rows: list[dict]) -> list[str]:
    head = (
        "| encoder | precision | ssl_toolkit clips/s | per_sample clips/s | ssl_toolkit / per_sample "
        "| windows × steps |"
    )
    lines = [head, "|---|---|---:|---:|---:|---|"]
    for d in dict.fromkeys(r["feature_d"] for r in rows):
        by = {r["contender"]: r for r in rows if r["feature_d"] == d}
        ours, ref = by["ssl_toolkit"], by["per_sample"]
        lines.append(
            f"| AudioNTT2020 d={d} | {ours['precision']} | {ours['clips_per_s']:.1f} | "
            f"{ref['clips_per_s']:.1f} | {ours['clips_per_s'] / ref['clips_per_s']:.2f}× | "
            f"{len(ours['windows'])} × {ours['steps_per_window']} |"
        )
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feature-d", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of both contenders")
    ap.add_argument("--windows", type=int, default=None, help="timed windows per contender (default per feature_d)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per window (default per feature_d)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per contender before the first window")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    root = data_root()
    rows = []
    for d in args.feature_d:
        rows += bench_setting(d, args, root, device)
    env = environment(device)
    where = root.relative_to(ROOT.parent) if root.is_relative_to(ROOT.parent) else root
    title = (
        f"# BYOL-A training throughput: ssl_toolkit vs per-sample pipeline ({env['device']}, "
        f"{env['threads']} threads, torch {env['torch']}, {env['date']})"
    )
    setup = (
        f"FSDD, all {rows[0]['clips_in_set']} clips ({where}), batch {args.batch}, 0.95 s at 16 kHz → 64×96 "
        f"log-mels, BYOL-A v1 views. Median over alternating timed windows of end-to-end steps (next batch "
        f"+ 2 views + forward/backward + optimizer + EMA); DataLoader workers: {args.workers} for both; "
        f"per_sample follows the official BYOL-A v1 structure (per-clip log-mel, mixup, random resize crop "
        f"in the workers; Adam). Load average at the end: {env['load_average_1_5_15'][0]}."
    )
    reference = (
        "Reference (issue): the official BYOL-A code runs this at about "
        + " and ".join(f"{v} clips/s (d={d})" for d, v in REFERENCE.items())
        + ", batch 64, fp32, on this CPU (figure from our issue tracker, not measured here)."
    )
    lines = [title, "", setup, "", *table(rows), "", reference]
    payload = {
        "env": env,
        "args": vars(args),
        "data": str(root),
        "reference_issue_clips_per_s": REFERENCE,
        "results": rows,
    }
    md = write_results(args.out, f"bench_audio_peers_{args.precision}", payload, lines)
    print("\n".join(lines))
    print(f"results: {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
