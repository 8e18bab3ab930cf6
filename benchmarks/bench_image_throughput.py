"""Throughput of the image BYOL pipeline on this machine (CIFAR-10, 32×32, batch 128 by default).

Measures, with the recipe recipes/image/byol_cifar10_cpu.yaml on the shared CIFAR-10 subset:
  1. data alone: the trainer's loader (EpochSampler + collate, in-memory uint8 .npz), images/s;
  2. views alone: to_float + two BYOL views (crop, flip, jitter, grayscale, solarize) + normalize,
     ms per batch and a per-op breakdown of one view;
  3. the full step: next batch from the loader + two views + online/target forward + backward +
     LARS + EMA update, for ResNet-18 with the CIFAR stem at width 1 and width 0.25 (the narrow
     CPU ResNet), in fp32 and under bf16 autocast.
Results go to JSON and a markdown table.

    python benchmarks/bench_image_throughput.py [--device cpu] [--batch 128] [--steps 10] [--widths 1,0.25]
                                                [--threads N] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ssl_toolkit.data import EpochSampler, collate_skipping_bad  # noqa: E402
from ssl_toolkit.recipe import load_recipe  # noqa: E402
from ssl_toolkit.registry import DATASETS  # noqa: E402
from ssl_toolkit.views import ViewMaker  # noqa: E402

RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"


def _recipe(width: float = 0.25, batch: int = 128):
    return load_recipe(RECIPE, [f"data.dataset.path={DATA}", f"model.encoder.width={width}",
                                f"data.batch_size={batch}"])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _batches(recipe):
    """An endless iterator over the trainer's loader (same sampler and collate)."""
    ds = DATASETS.build(recipe.data.dataset.name, **recipe.data.dataset.params)
    sampler = EpochSampler(len(ds), recipe.data.batch_size, seed=0)
    loader = DataLoader(ds, batch_size=recipe.data.batch_size, sampler=sampler, num_workers=0,
                        collate_fn=collate_skipping_bad)

    def gen():
        for epoch in itertools.count():
            sampler.set_position(epoch)
            for x, _, _ in loader:
                yield x

    return gen()


def bench_data(batch: int, steps: int, device) -> dict:
    it = _batches(_recipe(batch=batch))
    sec = _time(lambda: next(it).to(device), steps, 2, device)
    return {"what": "data (npz in memory → batch)", "batch": batch, "precision": "-", "step_ms": sec * 1e3,
            "images_per_s": batch / sec}


def bench_views(batch: int, steps: int, device) -> list[dict]:
    recipe = _recipe(batch=batch)
    views = ViewMaker.from_config(recipe.views).to(device)
    x = next(_batches(recipe)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run():
        with torch.no_grad():
            views(x, gen)

    sec = _time(run, steps, 3, device)
    rows = [{"what": "views: to_float + 2 BYOL views + normalize", "batch": batch, "precision": "fp32",
             "step_ms": sec * 1e3, "images_per_s": batch / sec}]
    xf = views.input(x, gen)
    for op in views.branches[1].ops:  # the second view (it has solarize)
        inp = xf.clone()
        with torch.no_grad():
            s = _time(lambda: op(inp, gen), steps, 2, device)
            xf = op(xf, gen)
        rows.append({"what": f"  op {type(op).__name__} (one view)", "batch": batch, "precision": "fp32",
                     "step_ms": s * 1e3, "images_per_s": batch / s})
    return rows


def bench_train(width: float, precision: str, batch: int, steps: int, device) -> dict:
    from ssl_toolkit.train.optim import build_optimizer
    from ssl_toolkit.train.trainer import build_method

    recipe = _recipe(width, batch)
    views = ViewMaker.from_config(recipe.views).to(device)
    method = build_method(recipe).to(device).train()
    optimizer, _ = build_optimizer(recipe.optimizer, method, batch)
    it = _batches(recipe)
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    step = [0]

    def run():
        x = next(it).to(device, non_blocking=True)
        with torch.no_grad():
            v = views(x, gen)
        with autocast:
            out = method(v)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.update_targets(step[0], 10_000)
        step[0] += 1

    sec = _time(run, steps, 3, device)
    params = sum(p.numel() for p in method.online.encoder.parameters())
    return {"what": f"data + views + train step, ResNet-18 CIFAR stem width {width:g}", "batch": batch,
            "precision": precision, "step_ms": sec * 1e3, "images_per_s": batch / sec, "encoder_params": params}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--widths", default="1,0.25", help="encoder widths to time, comma separated")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not DATA.exists():
        print(f"error: the CIFAR-10 subset is not at {DATA}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    rows = [bench_data(args.batch, args.steps * 5, device), *bench_views(args.batch, args.steps * 3, device)]
    for r in rows:
        print(f"{r['what']}: {r['step_ms']:.2f} ms, {r['images_per_s']:.0f} images/s", file=sys.stderr)
    for width in (float(w) for w in args.widths.split(",")):
        for precision in ("fp32", "bf16"):
            rows.append(bench_train(width, precision, args.batch, args.steps, device))
            print(f"{rows[-1]['what']} {precision}: {rows[-1]['images_per_s']:.1f} images/s", file=sys.stderr)
    env = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_image_throughput.json").write_text(json.dumps({"env": env, "results": rows}, indent=2))
    lines = [f"# Image BYOL throughput ({env['device']}, {env['threads']} threads, torch {env['torch']})", "",
             "| what | batch | precision | ms / batch | images / s |", "|---|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['batch']} | {r['precision']} | {r['step_ms']:.2f} | {r['images_per_s']:.1f} |"
              for r in rows]
    (out / "bench_image_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
