"""Do the live quality signals mean something? RankMe and the probe monitor vs the linear evaluation, over training.

One run of a shipped recipe with dense monitors and kept checkpoints; every checkpoint is then evaluated with the
task's eval recipe (the EVAR linear probe, 3 seeds, for audio; the converged linear probe and kNN for CIFAR-10),
and the random-init row of those evals stands at step 0. Each evaluated checkpoint appends one JSON line to
``results/monitor_validity_<setup>.jsonl`` (a rerun skips evaluated steps and resumes the training with
``--resume auto``). Writes ``monitor_validity_<setup>.md`` (per checkpoint: linear, probe monitor, RankMe; the
Spearman rank correlations of the monitors with the linear score over the checkpoints) and a PNG of the three
curves.

    python benchmarks/monitors/bench_monitor_validity.py --setup demo       # make demo's recipe, ~7 minutes
    python benchmarks/monitors/bench_monitor_validity.py --setup cifar      # byol_cifar10_cpu.yaml, needs ../shared
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from harness import train_or_reuse  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# setup: (training recipe, overrides, eval recipe, task)
SETUPS = {
    "demo": (
        "recipes/audio/byola_demo.yaml",
        [
            "trainer.epochs=36",
            "trainer.checkpoint_every=21",
            "trainer.keep_checkpoints=100",
            "trainer.hooks=[{name: rankme, every: 21, pool: 504}, "
            "{name: probe, recipe: recipes/eval/emodb_demo.yaml, every_epochs: 3}]",
        ],
        "recipes/eval/emodb_demo.yaml",
        "emodb",
    ),
    "cifar": (
        "recipes/image/byol_cifar10_cpu.yaml",
        [
            "trainer.checkpoint_every=312",
            "trainer.keep_checkpoints=100",
            "trainer.hooks=[{name: rankme, every: 312, pool: 512}, "
            "{name: probe, recipe: recipes/eval/cifar10.yaml, every_epochs: 2}]",
        ],
        "recipes/eval/cifar10.yaml",
        "cifar10",
    ),
}


def train(setup: str, run_dir: Path) -> None:
    from ssl_toolkit.recipe import load_recipe

    recipe, overrides, *_ = SETUPS[setup]
    train_or_reuse(
        load_recipe(ROOT / recipe, ["trainer.progress=false", "trainer.tensorboard=false", *overrides]), run_dir
    )


def evaluate(setup: str, checkpoint: str, out: Path) -> dict:
    """{system: {metric: [runs]}} of one eval: the model's (and the random-init baseline's) linear (+ kNN) runs."""
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    _, _, eval_recipe, task = SETUPS[setup]
    recipe = load_eval_recipe(ROOT / eval_recipe, ["plots.enabled=false"])
    res = run_eval(recipe, checkpoint, out_dir=out, quiet=True)
    systems = {"model": res["tasks"], "random": res["baselines"]["random"]["tasks"]}
    return {name: _scores(tasks, task) for name, tasks in systems.items()}


def _scores(tasks: dict, task: str) -> dict:
    """A task's linear runs (and kNN score): one entry per task, or ``task/linear`` + ``task/knn`` when an eval
    task runs several protocols."""
    if task in tasks:
        return {"linear": tasks[task]["runs"], "knn": None}
    return {"linear": tasks[f"{task}/linear"]["runs"], "knn": tasks[f"{task}/knn"]["runs"][0]}


def monitors(run_dir: Path, task: str) -> dict[str, list[tuple[int, float]]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[tuple[int, float]]] = {}
    for col in ("rankme", "rankme_proj", f"monitor_{task}"):
        out[col] = [(int(r["step"]), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        init = next((float(r[col + "_init"]) for r in rows if r.get(col + "_init") not in (None, "")), None)
        if init is not None:
            out[col].insert(0, (0, init))
    return out


def monitors_steps(run_dir: Path) -> list[str]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [r["step"] for r in csv.DictReader(f)]


def nearest(series: list[tuple[int, float]], step: int) -> float:
    return min(series, key=lambda sv: (abs(sv[0] - step), sv[0]))[1]


def report(setup: str, rows: list[dict], mon: dict, task: str) -> None:
    import matplotlib
    import numpy as np
    from scipy.stats import spearmanr

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    linear = np.array([100 * np.mean(r["linear"]) for r in rows])
    spread = np.array([100 * np.std(r["linear"]) for r in rows])
    probe_col = f"monitor_{task}"
    paired = {c: [nearest(mon[c], s) for s in steps] for c in mon if mon[c]}
    rho = {c: spearmanr(v, linear).statistic for c, v in paired.items()}
    lines = [
        f"# Monitors vs linear evaluation over training (`{SETUPS[setup][0]}`, eval `{SETUPS[setup][2]}`)",
        "",
        f"{len(rows)} points (step 0: the eval's random-init row; then each kept checkpoint). Linear: mean ± std "
        "of the eval's linear-probe seeds, %. Monitor values: the measurement nearest each checkpoint's step.",
        "",
        f"| step | linear | {probe_col} | rankme | rankme_proj |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, s in enumerate(steps):
        cells = [
            f"{100 * paired[probe_col][i]:.1f}" if probe_col in paired else "–",
            *(f"{paired[c][i]:.1f}" if c in paired else "–" for c in ("rankme", "rankme_proj")),
        ]
        lines.append(f"| {s} | {linear[i]:.1f} ± {spread[i]:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Spearman rank correlation with the linear score over these points: "
        + ", ".join(f"{c} {r:+.2f}" for c, r in rho.items()),
        "",
    ]
    (RESULTS / f"monitor_validity_{setup}.md").write_text("\n".join(lines))
    print("\n".join(lines))

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    ax.errorbar(steps, linear, yerr=spread, marker="o", capsize=3, label="linear eval (checkpoint, 3 seeds)")
    if probe_col in mon:
        ax.plot(
            [s for s, _ in mon[probe_col]],
            [100 * v for _, v in mon[probe_col]],
            marker=".",
            label=f"probe monitor (live, {probe_col})",
        )
    ax.axhline(linear[0], color="grey", ls="--", lw=1, label=f"random init, linear {linear[0]:.1f}")
    ax.set(xlabel="step", ylabel=f"{task} accuracy (%)", title=f"{task}: live probe vs linear eval")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for c, style in (("rankme", "-"), ("rankme_proj", ":")):
        if mon.get(c):
            bx.plot(
                [s for s, _ in mon[c]],
                [v for _, v in mon[c]],
                style,
                marker=".",
                label=f"{c} (ρ with linear {rho[c]:+.2f})",
            )
    bx.set(xlabel="step", ylabel="RankMe", title="RankMe (label-free), step 0 = random init")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3)
    fig.suptitle(f"{setup}: ρ(probe, linear) = {rho.get(probe_col, float('nan')):+.2f}")
    fig.tight_layout()
    fig.savefig(RESULTS / f"monitor_validity_{setup}.png", dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", choices=sorted(SETUPS), default="demo")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "monitor_validity")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    task = SETUPS[args.setup][3]
    run_dir = args.out / args.setup
    log = RESULTS / f"monitor_validity_{args.setup}.jsonl"
    train(args.setup, run_dir)
    done = {r["step"]: r for r in read_jsonl(log)}
    points = [(int(p.stem.split("_")[1]), str(p)) for p in sorted((run_dir / "checkpoints").glob("step_*.pt"))]
    final = int(monitors_steps(run_dir)[-1])
    points = [(0, "random")] + points + ([(final, str(run_dir))] if final not in {p for p, _ in points} else [])
    for step, ckpt in points:
        if step in done:
            continue
        res = evaluate(args.setup, str(run_dir) if ckpt == "random" else ckpt, run_dir / "eval" / f"step_{step}")
        if ckpt == str(run_dir):
            ckpt = str(run_dir / "checkpoints" / "last.pt")
        row = {
            "setup": args.setup,
            "step": step,
            "checkpoint": ckpt,
            "units": "fraction",
            **(res["random"] if ckpt == "random" else res["model"]),
        }
        append_jsonl(log, [row])
        done[step] = row
        print(f"step {step}: linear {100 * sum(row['linear']) / len(row['linear']):.1f}", flush=True)
    report(args.setup, list(done.values()), monitors(run_dir, task), task)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
