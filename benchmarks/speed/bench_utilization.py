"""How close a training step gets to this machine's matmul peak.

For each setting, the FLOPs of one full BYOL step (two views, online + target forward, backward) are
counted with ``torch.utils.flop_counter.FlopCounterMode``; the step (views + forward + backward +
optimizer + EMA) is timed (median of several steps after warm-up); achieved FLOP/s is compared with
the measured peak of a large square matmul in the same precision. Results go to JSON and markdown.

    python benchmarks/speed/bench_utilization.py [--steps 8] [--threads 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch  # noqa: E402
from harness import ROOT, byol_training_step, environment, write_results
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ssl_toolkit.recipe import load_recipe  # noqa: E402

SETTINGS = [  # (label, recipe, overrides, input maker)
    (
        "ResNet-18 CIFAR stem ×0.25, batch 128",
        "recipes/image/byol_cifar10_cpu.yaml",
        ["model.encoder.width=0.25"],
        lambda: torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8),
    ),
    (
        "ResNet-18 CIFAR stem ×1, batch 128",
        "recipes/image/byol_cifar10_cpu.yaml",
        ["model.encoder.width=1.0"],
        lambda: torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8),
    ),
    (
        "AudioNTT2020 d=512, batch 64",
        "recipes/audio/byola_fsdd.yaml",
        ["views.input.1.mean=-9.85", "views.input.1.std=7.0"],
        lambda: 0.1 * torch.randn(64, 15200),
    ),
]


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(label, recipe_path, overrides, make_input, precision, steps):
    recipe = load_recipe(ROOT / recipe_path, [*overrides, f"precision={precision}", "device=cpu"])
    torch.manual_seed(0)
    x = make_input()
    step, _ = byol_training_step(recipe, torch.device("cpu"), precision, recipe.data.batch_size)
    counter = FlopCounterMode(display=False)
    step(x, around_model=counter)
    flops = counter.get_total_flops()
    for _ in range(2):
        step(x)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    return {
        "setting": label,
        "precision": precision,
        "batch": x.shape[0],
        "step_s": t,
        "samples_per_s": x.shape[0] / t,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / t / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    rows = []
    for label, recipe, overrides, make_input in SETTINGS:
        for precision in ("fp32", "bf16"):
            r = measure(label, recipe, overrides, make_input, precision, args.steps)
            r["peak_gflops"] = peak[precision] / 1e9
            r["utilization"] = r["achieved_gflops"] / r["peak_gflops"]
            rows.append(r)
            print(
                f"{label:40s} {precision}: {r['samples_per_s']:7.1f} samples/s, {r['achieved_gflops']:6.1f} "
                f"GFLOP/s = {100 * r['utilization']:.1f}% of {r['peak_gflops']:.0f}",
                flush=True,
            )
    meta = {**environment(torch.device("cpu")), "peak_gflops": {k: v / 1e9 for k, v in peak.items()}}
    lines = [
        f"# Training-step utilization ({args.threads} threads, torch {torch.__version__})",
        "",
        f"Matmul peak (2048², best of 10): fp32 {meta['peak_gflops']['fp32']:.0f} GFLOP/s, "
        f"bf16 {meta['peak_gflops']['bf16']:.0f} GFLOP/s. FLOPs counted by FlopCounterMode over forward + "
        "backward, convolutions counted as direct ones (oneDNN may use Winograd for 3×3, so a step can exceed "
        "the matmul peak); the step time includes views, optimizer and EMA.",
        "",
        "| setting | precision | samples/s | GFLOP/step | achieved GFLOP/s | % of peak |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['setting']} | {r['precision']} | {r['samples_per_s']:.1f} | {r['gflop_per_step']:.2f} | "
        f"{r['achieved_gflops']:.1f} | {100 * r['utilization']:.1f} |"
        for r in rows
    ]
    print(f"wrote {write_results(args.out, 'bench_utilization', {'meta': meta, 'rows': rows}, lines)}")


if __name__ == "__main__":
    main()
