"""The SimCLR recipe's temperature, chosen on held-out TRAINING images (never the test split): one seed of
``recipes/variants/image/simclr_cifar10_cpu.yaml`` at its full size (20k images × 12 epochs) per temperature, then
the linear probe (1 run) and weighted kNN of ``recipes/eval/cifar10.yaml`` trained on training images 0–14,999 and
scored on training images 15,000–19,999 (``runs/cifar10_holdout.npz``, made from the subset on first use).

One JSON line per finished run in ``results/simclr_temperature_sweep.jsonl`` (a rerun skips them and resumes an
unfinished run from its checkpoint); ``results/simclr_temperature_sweep.md`` is the table and the choice.

    python benchmarks/claims/sweep_simclr_temperature.py [--temperatures 0.2 0.5 1.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "claims")]

from harness import train_or_reuse  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RECIPE = "recipes/variants/image/simclr_cifar10_cpu.yaml"
SUBSET = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"
HOLDOUT = ROOT / "runs" / "cifar10_holdout.npz"
SPLIT_AT = 15000


def holdout_file() -> Path:
    """The 20k training images split 15,000 (probe training) / 5,000 (held-out scoring); the test split unused."""
    if not HOLDOUT.exists():
        with np.load(SUBSET) as z:
            x, y, names = z["x_train"], z["y_train"], z["class_names"]
        HOLDOUT.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            HOLDOUT,
            x_train=x[:SPLIT_AT],
            y_train=y[:SPLIT_AT],
            x_test=x[SPLIT_AT:],
            y_test=y[SPLIT_AT:],
            class_names=names,
        )
    return HOLDOUT


def run_one(temperature: float, seed: int, out: Path) -> dict:
    from bench_variants import _last_metrics

    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe
    from ssl_toolkit.recipe import load_recipe

    overrides = [
        "trainer.progress=false",
        "trainer.tensorboard=false",
        "trainer.max_minutes=null",
        f"seed={seed}",
        f"method.temperature={temperature}",
    ]
    t0 = time.perf_counter()
    train_or_reuse(load_recipe(ROOT / RECIPE, overrides), out)
    ev = load_eval_recipe(
        ROOT / "recipes/eval/cifar10.yaml",
        [
            "baselines=[]",
            "plots.enabled=false",
            "cache=false",
            "linear.runs=1",
            f"tasks.0.dataset.path={holdout_file()}",
        ],
    )
    res = run_eval(ev, str(out), out_dir=out / "eval_holdout", quiet=True)
    tasks = {e["protocol"]: e["mean"] for e in res["tasks"].values()}
    return {
        "temperature": temperature,
        "seed": seed,
        "recipe": RECIPE,
        "overrides": overrides,
        "held_out": f"training images {SPLIT_AT}-19999 (probe trained on 0-{SPLIT_AT - 1})",
        "linear": tasks.get("linear"),
        "knn": tasks.get("knn"),
        **_last_metrics(out),
        "wall_s": round(time.perf_counter() - t0, 1),
        "finished": datetime.now().isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.2, 0.5, 1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import ssl_toolkit.components  # noqa: F401

    log = RESULTS / "simclr_temperature_sweep.jsonl"
    done = {(row["temperature"], row["seed"]): row for row in read_jsonl(log)}
    for t in args.temperatures:
        if (t, args.seed) in done:
            continue
        print(f"SimCLR T={t} seed {args.seed}", file=sys.stderr, flush=True)
        row = run_one(t, args.seed, ROOT / "runs" / "simclr_sweep" / f"T{t}-s{args.seed}")
        append_jsonl(log, [row])
        done[(t, args.seed)] = row
        print(f"    held-out linear {row['linear']:.4f} knn {row['knn']:.4f}", file=sys.stderr, flush=True)
    rows = sorted(done.values(), key=lambda r: r["temperature"])
    best = max(rows, key=lambda r: r["linear"])
    lines = [
        "# SimCLR temperature on held-out training images",
        "",
        f"One seed per temperature of `{RECIPE}` at its full size (20k images × 12 epochs, bf16, 2 threads); "
        f"linear probe (1 run) and weighted kNN trained on training images 0–{SPLIT_AT - 1} and scored on "
        f"training images {SPLIT_AT}–19,999. The test split is not read.",
        "",
        "| temperature | seed | held-out linear % | held-out kNN % | final loss | collapse | train s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['temperature']} | {r['seed']} | {100 * r['linear']:.2f} | {100 * r['knn']:.2f} | "
        f"{r['loss']:.3f} | {r['collapse']:.2f} | {r['train_s']:.0f} |"
        for r in rows
    ]
    lines += ["", f"Chosen (best held-out linear accuracy): **T = {best['temperature']}**."]
    (RESULTS / "simclr_temperature_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
