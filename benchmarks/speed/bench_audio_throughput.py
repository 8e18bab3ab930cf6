"""Throughput of the BYOL-A audio pipeline on this machine.

Measures, at batch 64 (0.95 s clips at 16 kHz -> 64x96 log-mels):
  1. the batched on-device view pipeline alone (log-mel, pre-norm, mixup, random resize crop
     [, linear fader], post-norm; two views) for the v1 and v2 recipes, in clips/s;
  2. one full BYOL training step (views + online/target forward + backward + Adam + EMA update)
     with AudioNTT2020 d=512 and d=2048 (v1 views), in fp32 and under bf16 autocast.

The input batches are real FSDD clips from data/demo/fsdd_mini, decoded and cut beforehand, so
data loading is not part of the numbers. Results go to JSON and a markdown table.

    python benchmarks/speed/bench_audio_throughput.py [--device cpu] [--batch 64] [--steps 10] \
        [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders

import torch  # noqa: E402
from harness import ROOT, byol_training_step, environment, time_per_call, write_results

from ssl_toolkit.recipe import load_recipe  # noqa: E402
from ssl_toolkit.registry import DATASETS  # noqa: E402
from ssl_toolkit.views import ViewMaker  # noqa: E402

DEMO = ROOT / "data" / "demo" / "fsdd_mini"
# fixed pre-norm statistics, so that no statistics pass is timed (values of the demo set)
STATS = ["views.input.1.mean=-6.0", "views.input.1.std=4.5"]


def _recipe(version: str, feature_d: int | None = None):
    overrides = [
        f"data.dataset.root={DEMO}",
        "data.dataset.metadata=metadata.csv",
        "data.dataset.audio_dir=recordings",
        "data.num_workers=0",
        *STATS,
    ]
    if feature_d is not None:
        overrides.append(f"model.encoder.feature_d={feature_d}")
    return load_recipe(ROOT / "recipes" / "audio" / f"byola_{version}.yaml", overrides)


def _batch(recipe, batch: int, device) -> torch.Tensor:
    ds = DATASETS.build(recipe.data.dataset.name, **recipe.data.dataset.params)
    xs = [ds[i % len(ds)][0] for i in range(batch)]
    return torch.stack(xs).to(device)


def bench_views(version: str, batch: int, steps: int, device) -> dict:
    recipe = _recipe(version)
    views = ViewMaker.from_config(recipe.views).to(device)
    x = _batch(recipe, batch, device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run():
        with torch.no_grad():
            views(x, gen)

    sec, cpu = time_per_call(run, steps, 3, device)
    return {
        "what": f"views {version} (2 views)",
        "batch": batch,
        "precision": "fp32",
        "step_ms": sec * 1e3,
        "clips_per_s": batch / sec,
        "cpu_s_per_step": cpu,
    }


def bench_train(feature_d: int, precision: str, batch: int, steps: int, device) -> dict:
    recipe = _recipe("v1", feature_d)
    step, method = byol_training_step(recipe, device, precision, batch)
    x = _batch(recipe, batch, device)
    sec, cpu = time_per_call(lambda: step(x), steps, 2, device)
    params = sum(p.numel() for p in method.online.encoder.parameters())
    return {
        "what": f"train step AudioNTT2020 d={feature_d}",
        "batch": batch,
        "precision": precision,
        "step_ms": sec * 1e3,
        "clips_per_s": batch / sec,
        "cpu_s_per_step": cpu,
        "encoder_params": params,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = [
        bench_views("v1", args.batch, args.steps * 3, device),
        bench_views("v2", args.batch, args.steps * 3, device),
    ]
    for d in (512, 2048):
        for precision in ("fp32", "bf16"):
            rows.append(bench_train(d, precision, args.batch, args.steps, device))
            print(f"{rows[-1]['what']} {precision}: {rows[-1]['clips_per_s']:.1f} clips/s", file=sys.stderr)
    env = environment(device)
    lines = [
        f"# BYOL-A audio throughput ({env['device']}, {env['threads']} threads, torch {env['torch']}, "
        f"load average {env['load_average_1_5_15'][0]} at the end)",
        "",
        "| what | batch | precision | ms / step | clips / s | CPU s / step |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['batch']} | {r['precision']} | {r['step_ms']:.1f} | {r['clips_per_s']:.1f} "
        f"| {r['cpu_s_per_step']:.2f} |"
        for r in rows
    ]
    write_results(args.out, "bench_audio_throughput", {"env": env, "results": rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
