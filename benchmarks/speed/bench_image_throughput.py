"""Throughput of the image BYOL pipeline on this machine (CIFAR-10, 32×32, batch 128 by default).

Measures, with the recipe recipes/image/byol_cifar10_cpu.yaml on the shared CIFAR-10 subset:
  1. data alone: the trainer's loader (EpochSampler + collate, in-memory uint8 .npz), images/s;
  2. views alone: to_float + two BYOL views (crop, flip, jitter, grayscale, solarize) + normalize,
     ms per batch and a per-op breakdown of one view;
  3. the full step: next batch from the loader + two views + online/target forward + backward +
     LARS + EMA update, for ResNet-18 with the CIFAR stem at width 1 and width 0.25 (the narrow
     CPU ResNet), in fp32 and under bf16 autocast.
Results go to JSON and a markdown table.

    python benchmarks/speed/bench_image_throughput.py [--device cpu] [--batch 128] [--steps 10] [--widths 1,0.25]
                                                [--threads N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders

import torch  # noqa: E402
from harness import ROOT, byol_training_step, environment, time_per_call, trainer_batches, write_results

from ssl_toolkit.recipe import load_recipe  # noqa: E402
from ssl_toolkit.views import ViewMaker  # noqa: E402

RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"


def _recipe(width: float = 0.25, batch: int = 128):
    return load_recipe(
        RECIPE, [f"data.dataset.path={DATA}", f"model.encoder.width={width}", f"data.batch_size={batch}"]
    )


def bench_data(batch: int, steps: int, device) -> dict:
    it = trainer_batches(_recipe(batch=batch), device)
    sec, _ = time_per_call(lambda: next(it).to(device), steps, 2, device)
    return {
        "what": "data (npz in memory → batch)",
        "batch": batch,
        "precision": "-",
        "step_ms": sec * 1e3,
        "images_per_s": batch / sec,
    }


def bench_views(batch: int, steps: int, device) -> list[dict]:
    recipe = _recipe(batch=batch)
    views = ViewMaker.from_config(recipe.views).to(device)
    x = next(trainer_batches(recipe, device)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run():
        with torch.no_grad():
            views(x, gen)

    sec, _ = time_per_call(run, steps, 3, device)
    rows = [
        {
            "what": "views: to_float + 2 BYOL views + normalize",
            "batch": batch,
            "precision": "fp32",
            "step_ms": sec * 1e3,
            "images_per_s": batch / sec,
        }
    ]
    xf = views.input(x, gen)
    for op in views.branches[1].ops:  # the second view (it has solarize)
        inp = xf.clone()
        with torch.no_grad():
            s, _ = time_per_call(lambda: op(inp, gen), steps, 2, device)
            xf = op(xf, gen)
        rows.append(
            {
                "what": f"  op {type(op).__name__} (one view)",
                "batch": batch,
                "precision": "fp32",
                "step_ms": s * 1e3,
                "images_per_s": batch / s,
            }
        )
    return rows


def bench_train(width: float, precision: str, batch: int, steps: int, device) -> dict:
    recipe = _recipe(width, batch)
    step, method = byol_training_step(recipe, device, precision, batch)
    it = trainer_batches(recipe, device)
    sec, _ = time_per_call(lambda: step(next(it).to(device, non_blocking=True)), steps, 3, device)
    params = sum(p.numel() for p in method.online.encoder.parameters())
    return {
        "what": f"data + views + train step, ResNet-18 CIFAR stem width {width:g}",
        "batch": batch,
        "precision": precision,
        "step_ms": sec * 1e3,
        "images_per_s": batch / sec,
        "encoder_params": params,
    }


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
    env = environment(device)
    lines = [
        f"# Image BYOL throughput ({env['device']}, {env['threads']} threads, torch {env['torch']})",
        "",
        "| what | batch | precision | ms / batch | images / s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['batch']} | {r['precision']} | {r['step_ms']:.2f} | {r['images_per_s']:.1f} |"
        for r in rows
    ]
    write_results(args.out, "bench_image_throughput", {"env": env, "results": rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
