"""Quality at equal wall-clock: pretrain with each contender for the same budget on the CIFAR-10 subset,
then evaluate every encoder with the same downstream runner (recipes/eval/cifar10.yaml: linear probe over
3 seeds and weighted kNN on the 5,000 test images), beside the random-init encoder.

- ssl_toolkit: ``ssl-toolkit train recipes/image/byol_cifar10_cpu.yaml trainer.max_minutes=BUDGET`` (the
  shipped short-run recipe, its schedule sized to about 8 minutes on 2 CPU cores; the budget caps it).
- lightly, byol_pytorch: benchmarks/contenders.py ``train`` in the peers' environment (.venv-bench), the way
  their examples train, at the same width, batch and precision, stopped when the budget is spent.

One contender trains at a time. Writes benchmarks/results/bench_quality.{json,md}.

    python benchmarks/quality/bench_quality.py [--minutes 8] [--precision bf16] \
        [--contenders ssl_toolkit lightly byol_pytorch]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch  # noqa: E402
from contenders import CONTENDERS, PEERS_PYTHON, RECIPE, peers_missing  # noqa: E402
from harness import ROOT, environment, write_results

EVAL = ROOT / "recipes" / "eval" / "cifar10.yaml"


def pretrain(
    contender: str, minutes: float, precision: str, width: float, batch: int, peers_python: str, out: Path
) -> dict:
    """Run one contender for the budget; returns what the run reports plus the process wall time."""
    if contender == "ssl_toolkit":
        cmd = [
            str(Path(sys.executable).parent / "ssl-toolkit"),
            "train",
            str(RECIPE),
            f"trainer.max_minutes={minutes}",
            f"precision={precision}",
            f"model.encoder.width={width}",
            f"data.batch_size={batch}",
            "trainer.progress=false",
            "trainer.tensorboard=false",
            f"out_dir={out}",
        ]
    else:
        cmd = [
            peers_python,
            str(ROOT / "benchmarks" / "contenders.py"),
            "train",
            contender,
            "--minutes",
            str(minutes),
            "--precision",
            precision,
            "--width",
            str(width),
            "--batch",
            str(batch),
            "--out",
            str(out),
        ]
    print(f"[{contender}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if contender == "ssl_toolkit":
        from ssl_toolkit.training.metrics import read_metrics

        rows = read_metrics(out)
        steps, seconds = int(rows[-1]["step"]), float(rows[-1]["elapsed_s"])
        info = {"steps": steps, "images": steps * batch, "seconds": seconds, "images_per_s": steps * batch / seconds}
        checkpoint = str(out)
    else:
        import json

        info = json.loads((out / "train.json").read_text())
        checkpoint = str(out / "encoder.pt")
    return {**info, "process_wall_s": wall, "checkpoint": checkpoint}


def evaluate(checkpoint: str, out: Path, width: float) -> dict:
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    recipe = load_eval_recipe(
        EVAL, ["baselines=[]", "plots.enabled=false", "cache=false", f"model.encoder.width={width}"]
    )
    res = run_eval(recipe, checkpoint, out_dir=out, quiet=True)
    return {e["protocol"]: {"mean": e["mean"], "std": e["std"], "runs": e["runs"]} for e in res["tasks"].values()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="pretraining budget per contender")
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--peers-python", default=str(PEERS_PYTHON))
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_quality")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    if peers_missing(args.peers_python, args.contenders):
        return 2
    rows = []
    for c in args.contenders:
        run_dir = args.runs / c
        info = pretrain(c, args.minutes, args.precision, args.width, args.batch, args.peers_python, run_dir)
        rows.append({"contender": c, **info, **evaluate(info["checkpoint"], run_dir / "eval", args.width)})
        print(f"[{c}] {rows[-1]}", file=sys.stderr, flush=True)
    rows.append({"contender": "random init", **evaluate("random", args.runs / "random" / "eval", args.width)})
    env = environment(torch.device("cpu"))
    lines = [
        f"# BYOL quality at equal wall-clock ({args.minutes:g} min of pretraining each, CIFAR-10 subset, "
        f"ResNet-18 width {args.width:g}, batch {args.batch}, {args.precision}; {env['cpu_count']} CPUs, "
        f"{env['date']})",
        "",
        "Linear probe (3 seeds, mean ± std) and weighted kNN (k=200) from recipes/eval/cifar10.yaml on 5,000 "
        "test images.",
        "",
        "| contender | steps | images seen | img/s | linear % | kNN % |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = f"{r['steps']} | {r['images']} | {r['images_per_s']:.0f}" if "steps" in r else "– | – | –"
        lines.append(
            f"| {r['contender']} | {train} | {100 * r['linear']['mean']:.2f} ± {100 * r['linear']['std']:.2f}"
            f" | {100 * r['knn']['mean']:.2f} |"
        )
    md = write_results(
        args.out,
        "bench_quality",
        {"env": env, "args": {k: str(v) for k, v in vars(args).items()}, "results": rows},
        lines,
    )
    print("\n".join(lines))
    print(f"results: {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
