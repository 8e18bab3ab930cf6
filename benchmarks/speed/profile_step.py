"""Where a training step spends its time: torch.profiler over a few end-to-end steps of the shipped CPU
recipes (views + forward + backward + optimizer + EMA), grouped into phases and by operator.

    python benchmarks/speed/profile_step.py [--recipe image|audio] [--steps 5] [--set KEY=VALUE ...]
                                      [--out benchmarks/results]

The step is harness.byol_training_step (the one the throughput benchmarks time). Writes
profile_<recipe>.json / .md: time per phase (its record_function ranges: views, forward, backward, optimizer,
ema) and the operators with the most self CPU time. ``--set`` adds recipe overrides (e.g.
``model.encoder.feature_d=2048 precision=fp32``); the output is then named profile_<recipe>_<overrides>.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders

import torch  # noqa: E402
from harness import ROOT, byol_training_step, environment, write_results
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from ssl_toolkit.recipe import load_recipe  # noqa: E402
from ssl_toolkit.registry import DATASETS  # noqa: E402

RECIPES = {
    "image": (
        ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml",
        [f"data.dataset.path={ROOT.parent / 'shared' / 'data' / 'cifar10' / 'cifar10_subset_20k_5k.npz'}"],
    ),
    "audio": (ROOT / "recipes" / "audio" / "byola_fsdd.yaml", ["views.input.1.mean=-6.0", "views.input.1.std=4.5"]),
}
PHASES = ("views", "forward", "backward", "optimizer", "ema")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=tuple(RECIPES), default="image")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    from ssl_toolkit.recipe import import_components

    import_components()
    path, overrides = RECIPES[args.recipe]
    recipe = load_recipe(path, overrides + args.set)
    ds = DATASETS.build(recipe.data.dataset.name, **recipe.data.dataset.params)
    b = recipe.data.batch_size
    x = torch.stack([torch.as_tensor(ds[i % len(ds)][0]) for i in range(b)])
    step, _ = byol_training_step(recipe, torch.device("cpu"), recipe.precision, b)
    cl = recipe.trainer.channels_last
    for _ in range(2):
        step(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step(x)
    events = prof.key_averages()
    total = sum(e.cpu_time_total for e in events if e.key in PHASES)
    phases = {e.key: e.cpu_time_total / args.steps / 1e3 for e in events if e.key in PHASES}
    ops = sorted(
        (e for e in events if e.key not in PHASES and not e.key.startswith("ProfilerStep")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )[: args.top]
    op_rows = [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / args.steps / 1e3,
            "calls": e.count // args.steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in ops
    ]
    env = environment(torch.device("cpu"))
    lines = [
        f"# Profile of one training step: {path.name} (batch {b}, {recipe.precision}, channels_last {cl}; "
        f"{env['threads']} threads, {env['date']})" + "".join(f"; {o}" for o in args.set),
        "",
        "| phase | ms / step | share |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {phases.get(k, 0):.1f} | {100 * phases.get(k, 0) * 1e3 * args.steps / total:.1f} % |" for k in PHASES
    ]
    lines += ["", "| operator (self CPU time) | ms / step | calls / step | share of step |", "|---|---:|---:|---:|"]
    lines += [f"| {r['op']} | {r['self_ms_per_step']:.1f} | {r['calls']} | {100 * r['share']:.1f} % |" for r in op_rows]
    name = "_".join([f"profile_{args.recipe}", *(re.sub(r"[^A-Za-z0-9]+", "-", o) for o in args.set)])
    write_results(args.out, name, {"env": env, "overrides": args.set, "phases_ms": phases, "ops": op_rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
